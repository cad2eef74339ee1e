//! The `consents` table: each patient's choice on the consent screen, with the exact text shown, its version
//! and SHA-256 hash, linked later to the authorization it led to. The only module that writes SQL on it.

use sqlx::Row as _;

use crate::{
    domain::spelling::spelled_enum,
    i18n::CONSENT_TEXT_VERSION,
    server::{
        platform::{crypto, db::Db},
        store::link_sessions::LinkSession,
    },
};

spelled_enum! {
    /// The patient's answer on the consent screen (`consents.choice`).
    pub enum ConsentChoice {
        /// Agreed to share.
        Given = "given",
        /// Declined.
        Declined = "declined",
    }
}

/// A consent choice to record.
pub struct NewConsent<'a> {
    /// The session the consent screen belonged to.
    pub session: &'a LinkSession,
    /// SMART patient scopes of what will be read (see `services::link_flow::consent_scope`).
    pub scope: &'a str,
    /// The exact text shown.
    pub text: &'a str,
    /// Its language (`en`, `es`, `ko`).
    pub language: &'a str,
    /// Agreed or declined.
    pub choice: ConsentChoice,
    /// The typed e-signature, when the app requires one.
    pub signature_name: Option<&'a str>,
}

/// Records the patient's choice with the exact text shown, its version ([`CONSENT_TEXT_VERSION`]) and SHA-256
/// hash; returns the record's id.
///
/// # Errors
/// Database errors.
pub async fn record(db: &Db, now: i64, c: NewConsent<'_>) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO consents (id, link_session_id, app_id, external_id, usage, scope, text_version, text_hash, \
         text, language, choice, signature_name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&id)
    .bind(&c.session.id)
    .bind(&c.session.app_id)
    .bind(&c.session.external_id)
    .bind(c.session.usage.as_str())
    .bind(c.scope)
    .bind(CONSENT_TEXT_VERSION)
    .bind(crypto::hash_token(c.text))
    .bind(c.text)
    .bind(c.language)
    .bind(c.choice.as_str())
    .bind(c.signature_name)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(id)
}

/// Whether the patient gave consent in this session.
///
/// # Errors
/// Database errors.
pub async fn given_in_session(db: &Db, session_id: &str) -> anyhow::Result<bool> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM consents WHERE link_session_id = $1 AND choice = $2")
        .bind(session_id)
        .bind(ConsentChoice::Given.as_str())
        .fetch_one(&db.pool)
        .await?;
    let n: i64 = row.try_get("n")?;
    Ok(n > 0)
}

/// Links the session's given consent to the authorization it led to.
///
/// # Errors
/// Database errors.
pub async fn attach_authorization<'e, E>(ex: E, session_id: &str, authorization_id: &str) -> anyhow::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE consents SET authorization_id = $1 WHERE link_session_id = $2 AND choice = $3 \
         AND authorization_id IS NULL",
    )
    .bind(authorization_id)
    .bind(session_id)
    .bind(ConsentChoice::Given.as_str())
    .execute(ex)
    .await?;
    Ok(())
}
