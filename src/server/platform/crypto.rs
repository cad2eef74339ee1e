//! Tokens we issue, hashes, constant-time comparison, and AEAD encryption at rest. Compiled only with `ssr`.
//!
//! - Tokens are 32 random bytes (256 bits) from the OS CSPRNG, base64url, behind a typed prefix
//!   (`public-token-…`, `at_…`): only their SHA-256 hash is stored.
//! - Payer tokens and other secrets at rest are sealed with AES-256-GCM (a 96-bit random nonce per value);
//!   the key id is stored beside each ciphertext so keys can be rotated.

use std::{collections::HashMap, path::Path};

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Nonce,
};
use anyhow::Context as _;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, engine::general_purpose::STANDARD, Engine as _};
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// A new random token: `{prefix}{base64url(32 random bytes)}` (256 bits of entropy).
///
/// # Security
/// The returned string is a bearer secret: hash it with [`hash_token`] before storing, never log it.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A random identifier of `n` bytes, base64url (for nonces, ids that need not be UUIDs).
pub fn random_id(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Lower-case hex SHA-256 of a token, the only form in which tokens we issue are stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two byte strings (length may leak, content does not).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// An AES-256-GCM keyring: one current key for sealing, every known key for opening.
#[derive(Clone)]
pub struct Cipher {
    current: String,
    keys: HashMap<String, Aes256Gcm>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cipher").field("current_key_id", &self.current).field("keys", &"[redacted]").finish()
    }
}

/// Key id derived from the key itself (first 8 hex chars of SHA-256 over a label and the key), so the same
/// key always has the same id and rotation needs no extra bookkeeping.
fn key_id(key: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"link-sdk key id");
    h.update(key);
    hex::encode(&h.finalize()[..4])
}

impl Cipher {
    /// A keyring from base64 32-byte keys; the first one seals new values.
    ///
    /// # Errors
    /// A key that is not base64 or not 32 bytes.
    pub fn new(keys_b64: &[SecretString]) -> anyhow::Result<Self> {
        let mut keys = HashMap::new();
        let mut current = None;
        for k in keys_b64 {
            let raw = STANDARD
                .decode(k.expose_secret().trim())
                .or_else(|_| URL_SAFE_NO_PAD.decode(k.expose_secret().trim()))
                .context("encryption key is not base64")?;
            anyhow::ensure!(raw.len() == 32, "encryption key must be 32 bytes, got {}", raw.len());
            let id = key_id(&raw);
            current.get_or_insert_with(|| id.clone());
            keys.insert(id, Aes256Gcm::new_from_slice(&raw).expect("32-byte key"));
        }
        let current = current.context("no encryption key given")?;
        Ok(Cipher { current, keys })
    }

    /// Loads keys from a file (one base64 key per line; the first seals), creating it with a fresh key when
    /// `create` is true and the file is missing (local mode).
    ///
    /// # Errors
    /// An unreadable file, or a malformed key.
    pub fn from_file(path: &Path, create: bool) -> anyhow::Result<Self> {
        if !path.exists() && create {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut raw = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            write_private(path, &format!("{}\n", STANDARD.encode(raw)))?;
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let keys: Vec<SecretString> =
            text.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| SecretString::from(l.to_string())).collect();
        Self::new(&keys)
    }

    /// The id of the key that seals new values.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Seals `plaintext`: returns `nonce (12 bytes) || ciphertext+tag` and the key id used.
    /// `aad` binds the value to its context (e.g. the row id) so a ciphertext cannot be moved to another row.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> (Vec<u8>, String) {
        let cipher = &self.keys[&self.current];
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), aes_gcm::aead::Payload { msg: plaintext, aad })
            .expect("AES-GCM encryption cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        (out, self.current.clone())
    }

    /// Opens a value sealed by [`Cipher::seal`] with key `key_id` and the same `aad`.
    ///
    /// # Errors
    /// Unknown key id, or a value that fails authentication (tampered, wrong aad, wrong key).
    pub fn open(&self, sealed: &[u8], key_id: &str, aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        let cipher = self.keys.get(key_id).context("unknown encryption key id")?;
        anyhow::ensure!(sealed.len() > 12, "sealed value too short");
        let (nonce, ct) = sealed.split_at(12);
        cipher
            .decrypt(Nonce::from_slice(nonce), aes_gcm::aead::Payload { msg: ct, aad })
            .map_err(|_| anyhow::anyhow!("sealed value failed authentication"))
    }

    /// [`Cipher::seal`] for a string secret.
    pub fn seal_str(&self, secret: &str, aad: &str) -> (Vec<u8>, String) {
        self.seal(secret.as_bytes(), aad.as_bytes())
    }

    /// [`Cipher::open`] for a string secret.
    ///
    /// # Errors
    /// As [`Cipher::open`], or a value that is not UTF-8.
    pub fn open_str(&self, sealed: &[u8], key_id: &str, aad: &str) -> anyhow::Result<SecretString> {
        let raw = self.open(sealed, key_id, aad.as_bytes())?;
        Ok(SecretString::from(String::from_utf8(raw).context("sealed value is not UTF-8")?))
    }
}

/// Writes a file readable only by its owner (0600 on Unix).
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretString {
        SecretString::from(STANDARD.encode([7u8; 32]))
    }

    #[test]
    fn tokens_are_256_bit_and_prefixed() {
        let t = random_token("at_");
        assert!(t.starts_with("at_"));
        assert_eq!(URL_SAFE_NO_PAD.decode(&t[3..]).unwrap().len(), 32);
        assert_ne!(random_token("at_"), random_token("at_"));
    }

    #[test]
    fn seal_open_roundtrip_and_aad_binding() {
        let c = Cipher::new(&[key()]).unwrap();
        let (ct, kid) = c.seal(b"payer-secret", b"row-1");
        assert!(!ct.windows(12).any(|w| w == b"payer-secret"));
        assert_eq!(c.open(&ct, &kid, b"row-1").unwrap(), b"payer-secret");
        assert!(c.open(&ct, &kid, b"row-2").is_err());
    }

    #[test]
    fn rotation_keeps_old_keys_readable() {
        let old = Cipher::new(&[key()]).unwrap();
        let (ct, kid) = old.seal(b"x", b"");
        let new_key = SecretString::from(STANDARD.encode([9u8; 32]));
        let rotated = Cipher::new(&[new_key, key()]).unwrap();
        assert_ne!(rotated.current_key_id(), kid);
        assert_eq!(rotated.open(&ct, &kid, b"").unwrap(), b"x");
    }

    #[test]
    fn debug_redacts_keys() {
        let c = Cipher::new(&[key()]).unwrap();
        assert!(format!("{c:?}").contains("[redacted]"));
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
