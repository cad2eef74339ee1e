//! `link-sdk endpoints import`: reads a directory file, works out what would change, and applies it.
//!
//! Two formats, told apart by their content:
//! - our JSON: an array of endpoint entries, or `{"endpoints": [...], "brands": [...]}` (see
//!   `docs/endpoints.example.json`); every field of an entry is the operator's;
//! - a SMART User-access Brands bundle (SMART App Launch 2.2, "User-access Brands and Endpoints"): a FHIR R4
//!   `Bundle` of `Organization` brands (`organization-brand` logo, `organization-portal` portal name, URL and
//!   description, `alias`, `identifier`, `partOf`, `endpoint`) and `Endpoint`s (`address` = FHIR base). A
//!   publisher knows its FHIR bases but not our client registration, so an endpoint new to the directory is
//!   created without a client id (offered to no patient until `endpoints set ID --client-id …`), and one the
//!   directory already has (same mode and FHIR base) keeps every field the operator set.
//!
//! Importing is idempotent: ids are stable (a brand's is derived from its identifier, a bundle endpoint's from
//! its FHIR base), and [`plan`] lists only real differences, so importing the same file twice changes nothing
//! the second time. `--dry-run` prints the plan and writes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{
    domain::Mode,
    server::{
        platform::db::Db,
        store::{
            brands::{self, Brand},
            endpoints::{self, Endpoint},
        },
    },
};

/// An endpoint as a file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// From our JSON: the whole entry is the operator's.
    Entry(Endpoint),
    /// From a brands bundle: only what the publisher knows (a stable id, the mode imported into, a fallback
    /// name and the FHIR base).
    Published {
        /// Derived from the FHIR base (used when the directory has no endpoint with that base).
        id: String,
        /// The mode imported into.
        mode: Mode,
        /// `Endpoint.name` (a fallback: patients see brand names).
        name: String,
        /// `Endpoint.address`.
        fhir_base_url: String,
    },
}

/// What a file holds, parsed and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryFile {
    /// The endpoints, in file order.
    pub endpoints: Vec<Incoming>,
    /// The brands, with `endpoint_ids` naming entries of `endpoints` (a bundle's are resolved by [`plan`]).
    pub brands: Vec<Brand>,
    /// Entries skipped, each with why (inactive, not FHIR R4, no address…).
    pub skipped: Vec<String>,
}

/// One difference between the file and the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new endpoint.
    CreateEndpoint(Endpoint),
    /// An endpoint whose listed fields differ.
    UpdateEndpoint(Endpoint, Vec<&'static str>),
    /// A new brand.
    CreateBrand(Brand),
    /// A brand whose listed fields differ.
    UpdateBrand(Brand, Vec<&'static str>),
}

/// What an import would do: the changes and how many entries are already as the file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The differences, endpoints first.
    pub changes: Vec<Change>,
    /// Endpoints already as the file says.
    pub unchanged_endpoints: usize,
    /// Brands already as the file says.
    pub unchanged_brands: usize,
    /// Entries of the file that were skipped, with why.
    pub skipped: Vec<String>,
}

impl Plan {
    /// `(created, updated)` endpoints.
    pub fn endpoint_counts(&self) -> (usize, usize) {
        let c = self.changes.iter().filter(|c| matches!(c, Change::CreateEndpoint(_))).count();
        let u = self.changes.iter().filter(|c| matches!(c, Change::UpdateEndpoint(..))).count();
        (c, u)
    }

    /// `(created, updated)` brands.
    pub fn brand_counts(&self) -> (usize, usize) {
        let c = self.changes.iter().filter(|c| matches!(c, Change::CreateBrand(_))).count();
        let u = self.changes.iter().filter(|c| matches!(c, Change::UpdateBrand(..))).count();
        (c, u)
    }

    /// One line per change, for the operator (what `--dry-run` prints).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.changes {
            out.push(match c {
                Change::CreateEndpoint(e) => {
                    let todo = if e.client_id.is_empty() {
                        format!("  (no client id yet: link-sdk endpoints set {} --client-id <your id at the payer>)", e.id)
                    } else {
                        String::new()
                    };
                    format!("create endpoint {} \"{}\" {} [{}]{todo}", e.id, e.name, e.fhir_base_url, e.mode)
                }
                Change::UpdateEndpoint(e, fields) => format!("update endpoint {} \"{}\": {}", e.id, e.name, fields.join(", ")),
                Change::CreateBrand(b) => {
                    format!("create brand {} \"{}\" -> {} endpoint(s) [{}]", b.id, b.name, b.endpoint_ids.len(), b.mode)
                }
                Change::UpdateBrand(b, fields) => format!("update brand {} \"{}\": {}", b.id, b.name, fields.join(", ")),
            });
        }
        for s in &self.skipped {
            out.push(format!("skip {s}"));
        }
        out
    }
}

/// A stable UUID for `key` (RFC 9562 version 8, from SHA-256), so that the same bundle entry gets the same id
/// on every import and on every server.
pub fn stable_id(key: &str) -> String {
    let digest = Sha256::digest(format!("link-sdk directory\n{key}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string()
}

/// Parses a directory file of either format; `mode` is where a brands bundle's entries go (our JSON says its
/// own).
///
/// # Errors
/// Malformed JSON, an invalid entry (with its position), a client secret in the file, a bundle with no usable
/// brand or endpoint.
pub fn parse(text: &str, mode: Mode) -> anyhow::Result<DirectoryFile> {
    let value: Value = serde_json::from_str(text).context("the file is not JSON")?;
    if value.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        return parse_bundle(&value, mode);
    }
    parse_entries(value)
}

/// Our JSON: an array of endpoint entries, or an object with `endpoints` (and optionally `brands`).
fn parse_entries(value: Value) -> anyhow::Result<DirectoryFile> {
    let (array, brand_values) = match value {
        Value::Array(a) => (a, Vec::new()),
        Value::Object(mut o) => {
            let brands = match o.remove("brands") {
                Some(Value::Array(b)) => b,
                None => Vec::new(),
                Some(_) => anyhow::bail!("\"brands\" must be an array"),
            };
            match o.remove("endpoints") {
                Some(Value::Array(a)) => (a, brands),
                _ => anyhow::bail!("expected an array of endpoints or {{\"endpoints\": [...]}}"),
            }
        }
        _ => anyhow::bail!("expected an array of endpoints or {{\"endpoints\": [...]}}"),
    };
    let mut out = DirectoryFile::default();
    let mut seen = std::collections::HashSet::new();
    for (i, v) in array.into_iter().enumerate() {
        if v.get("client_secret").is_some() {
            anyhow::bail!(
                "entry {i}: put the client secret in an environment variable and name it in client_secret_ref; \
                 never in the file"
            );
        }
        let e: Endpoint = serde_json::from_value(v).with_context(|| format!("entry {i} is not a valid endpoint"))?;
        e.validate().with_context(|| format!("entry {i}"))?;
        anyhow::ensure!(seen.insert(e.id.clone()), "entry {i}: duplicate id {}", e.id);
        out.endpoints.push(Incoming::Entry(e));
    }
    for (i, v) in brand_values.into_iter().enumerate() {
        let b: Brand = serde_json::from_value(v).with_context(|| format!("brand {i} is not a valid brand"))?;
        uuid::Uuid::parse_str(&b.id).with_context(|| format!("brand {i}: id {:?} is not a UUID", b.id))?;
        anyhow::ensure!(!b.name.trim().is_empty(), "brand {i}: name is empty");
        for u in [&b.logo_url, &b.website, &b.portal_url].into_iter().flatten() {
            check_web_url(u).with_context(|| format!("brand {i}"))?;
        }
        out.brands.push(b);
    }
    Ok(out)
}

fn check_web_url(u: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(u).with_context(|| format!("{u:?} is not a URL"))?;
    anyhow::ensure!(matches!(parsed.scheme(), "http" | "https"), "{u:?} must be http(s)");
    Ok(())
}

const BRAND_EXT: &str = "http://hl7.org/fhir/StructureDefinition/organization-brand";
const PORTAL_EXT: &str = "http://hl7.org/fhir/StructureDefinition/organization-portal";
const FHIR_VERSION_EXT: &str = "http://hl7.org/fhir/StructureDefinition/endpoint-fhir-version";

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

fn array_at<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// The extensions of `v` with this `url`.
fn extensions<'a>(v: &'a Value, url: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    array_at(v, "extension").iter().filter(move |e| str_at(e, "url") == Some(url))
}

/// The `value[x]` of the sub-extension `name` of a complex extension.
fn sub_value<'a>(ext: &'a Value, name: &str) -> Option<&'a Value> {
    array_at(ext, "extension").iter().find(|e| str_at(e, "url") == Some(name)).and_then(|e| {
        e.as_object().and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")).map(|(_, v)| v))
    })
}

fn sub_str(ext: &Value, name: &str) -> Option<String> {
    sub_value(ext, name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// The keys a reference to this entry may use: `Type/id` and the entry's `fullUrl`.
fn entry_keys(entry: &Value, resource: &Value, rtype: &str) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(id) = str_at(resource, "id") {
        keys.push(format!("{rtype}/{id}"));
    }
    if let Some(full) = str_at(entry, "fullUrl") {
        keys.push(full.to_string());
    }
    keys
}

/// A `Reference.reference` resolved to an entry key (relative `Type/id`, an absolute URL, or a `urn:uuid:`).
fn reference_key(r: &Value) -> Option<String> {
    let reference = str_at(r, "reference")?;
    Some(reference.to_string())
}

/// Finds the entry a reference points to among `index` (absolute URLs also match their `Type/id` tail).
fn resolve<'a>(index: &'a HashMap<String, usize>, reference: &str) -> Option<&'a usize> {
    index.get(reference).or_else(|| {
        let tail: Vec<&str> = reference.rsplitn(3, '/').collect();
        (tail.len() >= 2).then(|| format!("{}/{}", tail[1], tail[0])).and_then(|k| index.get(&k))
    })
}

struct BundleEndpoint {
    incoming: Incoming,
    id: String,
}

/// A SMART User-access Brands bundle.
fn parse_bundle(bundle: &Value, mode: Mode) -> anyhow::Result<DirectoryFile> {
    let mut out = DirectoryFile::default();
    let entries = array_at(bundle, "entry");
    // Endpoints first, so brands can point at them.
    let mut endpoint_index: HashMap<String, usize> = HashMap::new();
    let mut bundle_endpoints: Vec<BundleEndpoint> = Vec::new();
    for entry in entries {
        let Some(r) = entry.get("resource") else { continue };
        if str_at(r, "resourceType") != Some("Endpoint") {
            continue;
        }
        let label = str_at(r, "id").map(|i| format!("Endpoint/{i}")).unwrap_or_else(|| "an Endpoint".into());
        match published_endpoint(r, mode) {
            Ok(incoming) => {
                let Incoming::Published { id, .. } = &incoming else { unreachable!("published_endpoint gives Published") };
                let id = id.clone();
                for k in entry_keys(entry, r, "Endpoint") {
                    endpoint_index.insert(k, bundle_endpoints.len());
                }
                bundle_endpoints.push(BundleEndpoint { incoming, id });
            }
            Err(why) => out.skipped.push(format!("{label}: {why}")),
        }
    }
    // Organizations: index them for `partOf`, then build each brand.
    let orgs: Vec<(&Value, &Value)> = entries
        .iter()
        .filter_map(|e| e.get("resource").map(|r| (e, r)))
        .filter(|(_, r)| str_at(r, "resourceType") == Some("Organization"))
        .collect();
    let mut org_index: HashMap<String, usize> = HashMap::new();
    for (i, (entry, r)) in orgs.iter().enumerate() {
        for k in entry_keys(entry, r, "Organization") {
            org_index.insert(k, i);
        }
    }
    let mut used_endpoints = BTreeSet::new();
    let mut brand_ids = BTreeSet::new();
    for (entry, org) in &orgs {
        let label = str_at(org, "name").map(|n| format!("brand \"{n}\"")).unwrap_or_else(|| "an Organization".into());
        if org.get("active").and_then(Value::as_bool) == Some(false) {
            out.skipped.push(format!("{label}: not active"));
            continue;
        }
        let Some(name) = str_at(org, "name") else {
            out.skipped.push(format!("{label}: no name"));
            continue;
        };
        // Its own endpoints, else (an affiliate) those of the brand it is `partOf` (one level, as the spec allows).
        let parent = org.get("partOf").and_then(reference_key).and_then(|k| resolve(&org_index, &k)).map(|i| orgs[*i].1);
        let endpoint_refs = |o: &Value| -> Vec<String> {
            let mut refs: Vec<String> = array_at(o, "endpoint").iter().filter_map(reference_key).collect();
            for portal in extensions(o, PORTAL_EXT) {
                for ext in array_at(portal, "extension").iter().filter(|e| str_at(e, "url") == Some("portalEndpoint")) {
                    if let Some(k) = ext.get("valueReference").and_then(reference_key) {
                        refs.push(k);
                    }
                }
            }
            refs
        };
        let mut refs = endpoint_refs(org);
        if refs.is_empty() {
            if let Some(p) = parent {
                refs = endpoint_refs(p);
            }
        }
        let mut endpoint_ids: Vec<String> = refs
            .iter()
            .filter_map(|k| resolve(&endpoint_index, k))
            .map(|i| bundle_endpoints[*i].id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if endpoint_ids.is_empty() {
            out.skipped.push(format!("{label}: no usable endpoint"));
            continue;
        }
        endpoint_ids.sort();
        used_endpoints.extend(endpoint_ids.iter().cloned());
        let portal = extensions(org, PORTAL_EXT).next().or_else(|| parent.and_then(|p| extensions(p, PORTAL_EXT).next()));
        let logo = extensions(org, BRAND_EXT)
            .find_map(|b| sub_str(b, "brandLogo"))
            .or_else(|| parent.and_then(|p| extensions(p, BRAND_EXT).find_map(|b| sub_str(b, "brandLogo"))));
        let identifier = array_at(org, "identifier")
            .iter()
            .find_map(|i| str_at(i, "value").map(|v| format!("{}|{v}", str_at(i, "system").unwrap_or(""))));
        let key = identifier
            .or_else(|| str_at(entry, "fullUrl").map(str::to_string))
            .or_else(|| str_at(org, "id").map(|i| format!("Organization/{i}")))
            .unwrap_or_else(|| name.to_string());
        let website = array_at(org, "telecom")
            .iter()
            .find(|t| str_at(t, "system") == Some("url"))
            .and_then(|t| str_at(t, "value"))
            .map(str::to_string);
        let categories: Vec<String> = array_at(org, "type")
            .iter()
            .flat_map(|t| array_at(t, "coding").iter())
            .filter_map(|c| str_at(c, "code").map(str::to_string))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let web = |u: Option<String>| u.filter(|u| check_web_url(u).is_ok());
        let brand = Brand {
            id: stable_id(&format!("brand|{}|{key}", mode.as_str())),
            mode,
            name: name.to_string(),
            aliases: array_at(org, "alias").iter().filter_map(Value::as_str).map(str::to_string).collect(),
            logo_url: web(logo),
            website: web(website),
            portal_name: portal.and_then(|p| sub_str(p, "portalName")),
            portal_url: web(portal.and_then(|p| sub_str(p, "portalUrl"))),
            portal_description: portal.and_then(|p| sub_str(p, "portalDescription")),
            categories,
            plan_types: Vec::new(),
            endpoint_ids,
        };
        if !brand_ids.insert(brand.id.clone()) {
            out.skipped.push(format!("{label}: the same identifier as an earlier brand"));
            continue;
        }
        out.brands.push(brand);
    }
    for be in bundle_endpoints {
        if used_endpoints.contains(&be.id) {
            out.endpoints.push(be.incoming);
        } else if let Incoming::Published { name, .. } = &be.incoming {
            out.skipped.push(format!("endpoint \"{name}\": no brand points to it"));
        }
    }
    anyhow::ensure!(!out.endpoints.is_empty(), "the bundle has no usable brand with an endpoint ({})", out.skipped.join("; "));
    Ok(out)
}

/// An `Endpoint` of a brands bundle, if Link can use it: active, `hl7-fhir-rest`, FHIR R4 when it says, an
/// http(s) `address` (https in live mode).
fn published_endpoint(r: &Value, mode: Mode) -> Result<Incoming, String> {
    if let Some(status) = str_at(r, "status") {
        if status != "active" {
            return Err(format!("status is {status}"));
        }
    }
    if let Some(code) = r.pointer("/connectionType/code").and_then(Value::as_str) {
        if code != "hl7-fhir-rest" {
            return Err(format!("connectionType is {code}, not hl7-fhir-rest"));
        }
    }
    let versions: Vec<&str> = extensions(r, FHIR_VERSION_EXT).filter_map(|e| e.get("valueCode").and_then(Value::as_str)).collect();
    if !versions.is_empty() && !versions.iter().any(|v| v.starts_with("4.0")) {
        return Err(format!("FHIR version {} (Link reads FHIR R4, 4.0.x)", versions.join(", ")));
    }
    let address = str_at(r, "address").ok_or("no address")?;
    let url = url::Url::parse(address).map_err(|_| format!("address {address:?} is not a URL"))?;
    match (url.scheme(), mode) {
        ("https", _) | ("http", Mode::Test) => {}
        _ => return Err(format!("address {address:?} must be https")),
    }
    let base = address.trim_end_matches('/').to_string();
    Ok(Incoming::Published {
        id: stable_id(&format!("endpoint|{}|{base}", mode.as_str())),
        mode,
        name: str_at(r, "name").map(str::to_string).unwrap_or_else(|| url.host_str().unwrap_or(address).to_string()),
        fhir_base_url: base,
    })
}

/// The fields of `after` that differ from `before`.
fn endpoint_diff(before: &Endpoint, after: &Endpoint) -> Vec<&'static str> {
    let mut d = Vec::new();
    let mut check = |name: &'static str, same: bool| {
        if !same {
            d.push(name);
        }
    };
    check("name", before.name == after.name);
    check("aliases", before.aliases == after.aliases);
    check("logo_url", before.logo_url == after.logo_url);
    check("mode", before.mode == after.mode);
    check("fhir_base_url", before.fhir_base_url == after.fhir_base_url.trim_end_matches('/'));
    check("authorize_url", before.authorize_url == after.authorize_url);
    check("token_url", before.token_url == after.token_url);
    check("client_id", before.client_id == after.client_id);
    check("client_secret_ref", before.client_secret_ref == after.client_secret_ref);
    check("scopes", before.scopes == after.scopes);
    check("refreshable", before.refreshable == after.refreshable);
    check("resource_types", before.resource_types == after.resource_types);
    d
}

fn brand_diff(before: &Brand, after: &Brand) -> Vec<&'static str> {
    let mut d = Vec::new();
    let mut check = |name: &'static str, same: bool| {
        if !same {
            d.push(name);
        }
    };
    check("mode", before.mode == after.mode);
    check("name", before.name == after.name);
    check("aliases", before.aliases == after.aliases);
    check("logo_url", before.logo_url == after.logo_url);
    check("website", before.website == after.website);
    check("portal_name", before.portal_name == after.portal_name);
    check("portal_url", before.portal_url == after.portal_url);
    check("portal_description", before.portal_description == after.portal_description);
    check("categories", before.categories == after.categories);
    check("plan_types", before.plan_types == after.plan_types);
    check("endpoints", before.endpoint_ids == after.endpoint_ids);
    d
}

/// Compares a parsed file with the directory: what would be created or updated, and what is already so.
/// A bundle endpoint the directory already has (same mode and FHIR base, or its derived id) keeps the
/// operator's fields, so only new ones are created.
///
/// # Errors
/// Database errors; a brand pointing at an endpoint that is neither in the file nor in the directory.
pub async fn plan(db: &Db, file: &DirectoryFile) -> anyhow::Result<Plan> {
    let mut out = Plan { skipped: file.skipped.clone(), ..Plan::default() };
    // Bundle ids → the ids they resolve to in the directory.
    let mut resolved: BTreeMap<String, String> = BTreeMap::new();
    let mut known: BTreeSet<String> = BTreeSet::new();
    for incoming in &file.endpoints {
        match incoming {
            Incoming::Entry(e) => {
                known.insert(e.id.clone());
                match endpoints::get(db, &e.id).await? {
                    None => out.changes.push(Change::CreateEndpoint(e.clone())),
                    Some(before) => {
                        let fields = endpoint_diff(&before, e);
                        if fields.is_empty() {
                            out.unchanged_endpoints += 1;
                        } else {
                            out.changes.push(Change::UpdateEndpoint(e.clone(), fields));
                        }
                    }
                }
            }
            Incoming::Published { id, mode, name, fhir_base_url } => {
                let existing = match endpoints::get(db, id).await? {
                    Some(e) => Some(e),
                    None => endpoints::find_by_fhir_base(db, *mode, fhir_base_url).await?,
                };
                match existing {
                    Some(e) => {
                        resolved.insert(id.clone(), e.id.clone());
                        known.insert(e.id.clone());
                        out.unchanged_endpoints += 1;
                    }
                    None => {
                        known.insert(id.clone());
                        out.changes.push(Change::CreateEndpoint(Endpoint {
                            id: id.clone(),
                            name: name.clone(),
                            aliases: Vec::new(),
                            logo_url: None,
                            mode: *mode,
                            fhir_base_url: fhir_base_url.clone(),
                            authorize_url: None,
                            token_url: None,
                            client_id: String::new(),
                            client_secret_ref: None,
                            scopes: None,
                            refreshable: false,
                            resource_types: Vec::new(),
                        }));
                    }
                }
            }
        }
    }
    for b in &file.brands {
        let mut b = b.clone();
        b.endpoint_ids = b.endpoint_ids.iter().map(|id| resolved.get(id).cloned().unwrap_or_else(|| id.clone())).collect();
        b.endpoint_ids.sort();
        b.endpoint_ids.dedup();
        for id in &b.endpoint_ids {
            if !known.contains(id) && endpoints::get(db, id).await?.is_none() {
                anyhow::bail!("brand \"{}\": endpoint {id} is neither in the file nor in the directory", b.name);
            }
        }
        match brands::get(db, &b.id).await? {
            None => out.changes.push(Change::CreateBrand(b)),
            Some(before) => {
                let fields = brand_diff(&before, &b);
                if fields.is_empty() {
                    out.unchanged_brands += 1;
                } else {
                    out.changes.push(Change::UpdateBrand(b, fields));
                }
            }
        }
    }
    Ok(out)
}

/// Applies a plan's changes (endpoints before the brands that point at them).
///
/// # Errors
/// Database errors (changes applied before the failure stay: importing again finishes the job).
pub async fn apply(db: &Db, now: i64, plan: &Plan) -> anyhow::Result<()> {
    for c in &plan.changes {
        if let Change::CreateEndpoint(e) | Change::UpdateEndpoint(e, _) = c {
            endpoints::upsert(db, now, e).await?;
        }
    }
    for c in &plan.changes {
        if let Change::CreateBrand(b) | Change::UpdateBrand(b, _) = c {
            brands::upsert(db, now, b).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_ids_are_uuids_and_stable() {
        let a = stable_id("brand|live|urn:ietf:rfc:3986|https://lakeside.example");
        assert_eq!(a, stable_id("brand|live|urn:ietf:rfc:3986|https://lakeside.example"));
        assert_ne!(a, stable_id("brand|test|urn:ietf:rfc:3986|https://lakeside.example"));
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 8);
    }

    #[test]
    fn our_json_still_reads_and_refuses_inline_secrets() {
        let entry = r#"{"id":"6f1c2f9e-2f3a-4b7e-9a51-0c1d2e3f4a5b","name":"X","mode":"live",
            "fhir_base_url":"https://x.example/fhir","client_id":"c"}"#;
        assert_eq!(parse(&format!("[{entry}]"), Mode::Live).unwrap().endpoints.len(), 1);
        assert_eq!(parse(&format!("{{\"endpoints\":[{entry}]}}"), Mode::Live).unwrap().endpoints.len(), 1);
        assert!(parse(&format!("[{entry},{entry}]"), Mode::Live).is_err());
        let secret = entry.replace("\"client_id\":\"c\"", "\"client_id\":\"c\",\"client_secret\":\"oops\"");
        assert!(parse(&format!("[{secret}]"), Mode::Live).is_err());
    }

    #[test]
    fn bundle_endpoints_must_be_fhir_r4_and_https_in_live_mode() {
        let ep = |address: &str, version: &str| {
            serde_json::json!({"resourceType": "Endpoint", "id": "e", "status": "active",
                "extension": [{"url": FHIR_VERSION_EXT, "valueCode": version}],
                "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
                "address": address})
        };
        assert!(published_endpoint(&ep("https://fhir.example/r4", "4.0.1"), Mode::Live).is_ok());
        assert!(published_endpoint(&ep("http://fhir.example/r4", "4.0.1"), Mode::Live).is_err());
        assert!(published_endpoint(&ep("http://127.0.0.1:9/r4", "4.0.1"), Mode::Test).is_ok());
        assert!(published_endpoint(&ep("https://fhir.example/r5", "5.0.0"), Mode::Live).is_err());
    }
}
