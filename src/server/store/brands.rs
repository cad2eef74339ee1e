//! The `brands` and `brand_endpoints` tables: User-access Brands (SMART App Launch 2.2, "User-access Brands and
//! Endpoints"), what a patient recognises in the plan picker, each pointing to the endpoints that serve it.
//! Several brands may share one endpoint, and a brand may have several endpoints. The only module that writes
//! SQL on these two tables.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::{domain::Mode, server::platform::db::Db};

use super::endpoints::like_pattern;

/// One brand of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Brand {
    /// Stable UUID (derived from the brand's identifier, so a re-import updates it in place).
    pub id: String,
    /// `test` or `live`, as its endpoints.
    pub mode: Mode,
    /// The name patients know (`Organization.name`).
    pub name: String,
    /// Other names (`Organization.alias`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Logo (`organization-brand` `brandLogo`).
    #[serde(default)]
    pub logo_url: Option<String>,
    /// The brand's primary web presence (`Organization.telecom` url, or its identifier URL).
    #[serde(default)]
    pub website: Option<String>,
    /// The portal's name (`organization-portal` `portalName`), e.g. "MyHealth".
    #[serde(default)]
    pub portal_name: Option<String>,
    /// Where members create or use their online account (`portalUrl`).
    #[serde(default)]
    pub portal_url: Option<String>,
    /// Who the portal is for (`portalDescription`, markdown as published).
    #[serde(default)]
    pub portal_description: Option<String>,
    /// Category codes (`Organization.type`, e.g. `ins` for an insurer).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Plan types served (e.g. "Medicare Advantage", "Medicaid"), when the directory says.
    #[serde(default)]
    pub plan_types: Vec<String>,
    /// The endpoints that serve it (ids), by id.
    #[serde(default)]
    pub endpoint_ids: Vec<String>,
}

fn search_text(b: &Brand) -> String {
    let mut parts = vec![b.name.to_lowercase()];
    parts.extend(b.aliases.iter().map(|a| a.to_lowercase()));
    parts.join("\n")
}

const COLUMNS: &str = "id, mode, name, aliases, logo_url, website, portal_name, portal_url, portal_description, \
                       categories, plan_types";

fn json_list(row: &sqlx::any::AnyRow, column: &str) -> anyhow::Result<Vec<String>> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).with_context(|| format!("brands.{column} is not a JSON array"))
}

fn from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<Brand> {
    let mode: String = row.try_get("mode")?;
    Ok(Brand {
        id: row.try_get("id")?,
        mode: Mode::parse(&mode).context("brands.mode")?,
        name: row.try_get("name")?,
        aliases: json_list(row, "aliases")?,
        logo_url: row.try_get("logo_url")?,
        website: row.try_get("website")?,
        portal_name: row.try_get("portal_name")?,
        portal_url: row.try_get("portal_url")?,
        portal_description: row.try_get("portal_description")?,
        categories: json_list(row, "categories")?,
        plan_types: json_list(row, "plan_types")?,
        endpoint_ids: Vec::new(),
    })
}

async fn with_endpoints(db: &Db, mut brands: Vec<Brand>) -> anyhow::Result<Vec<Brand>> {
    for b in &mut brands {
        b.endpoint_ids = endpoint_ids(db, &b.id).await?;
    }
    Ok(brands)
}

/// The endpoint ids of a brand, by id.
///
/// # Errors
/// Database errors.
pub async fn endpoint_ids(db: &Db, brand_id: &str) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query("SELECT endpoint_id FROM brand_endpoints WHERE brand_id = $1 ORDER BY endpoint_id")
        .bind(brand_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get("endpoint_id")?)).collect()
}

/// Inserts the brand, or updates every field of the one with the same id, and makes its endpoint links exactly
/// `b.endpoint_ids` (every id must be an endpoint), in one transaction.
///
/// # Errors
/// Database errors (an unknown endpoint id).
pub async fn upsert(db: &Db, now: i64, b: &Brand) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO brands (id, mode, name, aliases, logo_url, website, portal_name, portal_url, portal_description, \
         categories, plan_types, search_text, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) \
         ON CONFLICT (id) DO UPDATE SET mode = excluded.mode, name = excluded.name, aliases = excluded.aliases, \
         logo_url = excluded.logo_url, website = excluded.website, portal_name = excluded.portal_name, \
         portal_url = excluded.portal_url, portal_description = excluded.portal_description, \
         categories = excluded.categories, plan_types = excluded.plan_types, search_text = excluded.search_text, \
         updated_at = excluded.updated_at",
    )
    .bind(&b.id)
    .bind(b.mode.as_str())
    .bind(&b.name)
    .bind(serde_json::to_string(&b.aliases)?)
    .bind(b.logo_url.clone())
    .bind(b.website.clone())
    .bind(b.portal_name.clone())
    .bind(b.portal_url.clone())
    .bind(b.portal_description.clone())
    .bind(serde_json::to_string(&b.categories)?)
    .bind(serde_json::to_string(&b.plan_types)?)
    .bind(search_text(b))
    .bind(now)
    .execute(&mut *tx)
    .await
    .context("upserting brand")?;
    sqlx::query("DELETE FROM brand_endpoints WHERE brand_id = $1").bind(&b.id).execute(&mut *tx).await?;
    for e in &b.endpoint_ids {
        sqlx::query("INSERT INTO brand_endpoints (brand_id, endpoint_id) VALUES ($1, $2)")
            .bind(&b.id)
            .bind(e)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("linking brand {} to endpoint {e}", b.id))?;
    }
    tx.commit().await?;
    Ok(())
}

/// The brand with this id, with its endpoint ids.
///
/// # Errors
/// Database errors.
pub async fn get(db: &Db, id: &str) -> anyhow::Result<Option<Brand>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM brands WHERE id = $1")).bind(id).fetch_optional(&db.pool).await?;
    let Some(b) = row.as_ref().map(from_row).transpose()? else { return Ok(None) };
    Ok(with_endpoints(db, vec![b]).await?.pop())
}

/// Every brand, by name, with its endpoint ids.
///
/// # Errors
/// Database errors.
pub async fn list(db: &Db) -> anyhow::Result<Vec<Brand>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM brands ORDER BY mode DESC, name, id")).fetch_all(&db.pool).await?;
    let brands = rows.iter().map(from_row).collect::<anyhow::Result<Vec<_>>>()?;
    with_endpoints(db, brands).await
}

/// Brands of `mode` whose name or an alias contains `query` (case-insensitive), by name, at most `limit`
/// (clamped to 1..=200), with their endpoint ids.
///
/// # Errors
/// Database errors.
pub async fn search(db: &Db, mode: Mode, query: &str, limit: i64) -> anyhow::Result<Vec<Brand>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM brands WHERE mode = $1 AND search_text LIKE $2 ESCAPE '\\' ORDER BY name, id LIMIT $3"
    ))
    .bind(mode.as_str())
    .bind(like_pattern(query))
    .bind(limit.clamp(1, 200))
    .fetch_all(&db.pool)
    .await?;
    let brands = rows.iter().map(from_row).collect::<anyhow::Result<Vec<_>>>()?;
    with_endpoints(db, brands).await
}

/// The brands served by an endpoint, by name, with their endpoint ids.
///
/// # Errors
/// Database errors.
pub async fn of_endpoint(db: &Db, endpoint_id: &str) -> anyhow::Result<Vec<Brand>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM brands WHERE id IN (SELECT brand_id FROM brand_endpoints WHERE endpoint_id = $1) \
         ORDER BY name, id"
    ))
    .bind(endpoint_id)
    .fetch_all(&db.pool)
    .await?;
    let brands = rows.iter().map(from_row).collect::<anyhow::Result<Vec<_>>>()?;
    with_endpoints(db, brands).await
}

/// Removes every link of an endpoint to its brands, through `conn` (deleting an endpoint); a brand left with no
/// endpoint stays, offered nowhere, until an import links it again.
///
/// # Errors
/// Database errors.
pub async fn unlink_endpoint(conn: &mut sqlx::AnyConnection, endpoint_id: &str) -> anyhow::Result<u64> {
    Ok(sqlx::query("DELETE FROM brand_endpoints WHERE endpoint_id = $1").bind(endpoint_id).execute(conn).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_has_name_and_aliases() {
        let b = Brand {
            id: "x".into(),
            mode: Mode::Live,
            name: "Lakeside Health".into(),
            aliases: vec!["LH Medicare".into()],
            logo_url: None,
            website: None,
            portal_name: None,
            portal_url: None,
            portal_description: None,
            categories: vec![],
            plan_types: vec![],
            endpoint_ids: vec![],
        };
        assert_eq!(search_text(&b), "lakeside health\nlh medicare");
    }
}
