//! The `resource_params` table: the search index of stored resources, one row per value of a search parameter
//! (`fhir::search::param_values`: a token's system and code, a date element's range), so that token and date
//! filters run in SQL. Every SQL statement on this table is in this module.
//!
//! Rows are replaced with their resource ([`replace`], in the transaction that stores it) and deleted with it
//! (foreign key `ON DELETE CASCADE`). With resources encrypted at rest no rows are written (identifier values
//! and dates would be in clear): searches then match the opened JSON instead.
//!
//! PostgreSQL text cannot hold U+0000: a token value containing it is not indexed, and a searched token value
//! containing it matches nothing (on both databases alike).

use sqlx::AnyConnection;

use crate::server::fhir::search::{Criterion, ParamValue, Prefix, TokenValue};

/// The version of the index rules rows are written with (`resources.params_version`; rows below it are
/// indexed again at start). Raise it when `fhir::search::param_values` changes what it reads.
pub const PARAMS_VERSION: i64 = 1;

/// Rows written per INSERT statement (8 bound values each, far below SQLite's and PostgreSQL's limits).
const ROWS_PER_INSERT: usize = 100;

/// Replaces the index rows of one resource through `conn` (the transaction storing it): deletes them, then
/// writes `params` (`None`: none, the resource is not indexed).
///
/// # Errors
/// Database errors.
pub async fn replace(
    conn: &mut AnyConnection,
    authorization_id: &str,
    resource_type: &str,
    id: &str,
    params: Option<&[ParamValue]>,
) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM resource_params WHERE authorization_id = $1 AND resource_type = $2 AND id = $3")
        .bind(authorization_id)
        .bind(resource_type)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let params: Vec<&ParamValue> = params.unwrap_or_default().iter().filter(|p| storable(p)).collect();
    for chunk in params.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO resource_params (authorization_id, resource_type, id, param, system, code, lo, hi) VALUES {}",
            crate::server::platform::db::values_placeholders(chunk.len(), 8)
        );
        let mut q = sqlx::query(&sql);
        for p in chunk.iter().copied() {
            q = q.bind(authorization_id).bind(resource_type).bind(id);
            q = match p {
                ParamValue::Token { param, system, code } => {
                    q.bind(*param).bind(system.clone()).bind(Some(code.clone())).bind(None::<i64>).bind(None::<i64>)
                }
                ParamValue::Date { param, lo, hi } => {
                    q.bind(*param).bind(None::<String>).bind(None::<String>).bind(Some(*lo)).bind(Some(*hi))
                }
            };
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Whether a value can be stored as text on both databases (no U+0000).
fn storable(p: &ParamValue) -> bool {
    match p {
        ParamValue::Token { system, code, .. } => !code.contains('\0') && !system.as_deref().is_some_and(|s| s.contains('\0')),
        ParamValue::Date { .. } => true,
    }
}

/// The SQL condition that a row `r` of `resources` meets a criterion, on its index rows: `EXISTS` one whose
/// value matches one of the criterion's values (`NOT EXISTS` for `:not`), exactly as `Criterion::matches`
/// decides on the JSON. Text values are bound through `bind` (which returns the placeholder); date bounds are
/// integers written into the statement.
pub fn criterion_sql(c: &Criterion, bind: &mut dyn FnMut(&str) -> String) -> String {
    let (name, alternatives, negate) = match c {
        Criterion::Token { name, values, negate, .. } => {
            (name, values.iter().map(|t| token_sql(t, &mut *bind)).collect::<Vec<_>>(), *negate)
        }
        Criterion::Date { name, values, .. } => (name, values.iter().map(|d| date_sql(d.prefix, d.range)).collect(), false),
    };
    let param = bind(name);
    format!(
        "{}EXISTS (SELECT 1 FROM resource_params p WHERE p.authorization_id = r.authorization_id \
         AND p.resource_type = r.resource_type AND p.id = r.id AND p.param = {param} AND ({}))",
        if negate { "NOT " } else { "" },
        alternatives.join(" OR ")
    )
}

/// One token value on `p.system` / `p.code` (`TokenValue::matches_pair`).
fn token_sql(t: &TokenValue, bind: &mut dyn FnMut(&str) -> String) -> String {
    if t.system.as_deref().is_some_and(|s| s.contains('\0')) || t.code.as_deref().is_some_and(|c| c.contains('\0')) {
        return "(1 = 0)".into();
    }
    let mut c = Vec::new();
    match t.system.as_deref() {
        None => {}
        Some("") => c.push("(p.system IS NULL OR p.system = '')".to_string()),
        Some(s) => c.push(format!("p.system = {}", bind(s))),
    }
    if let Some(code) = &t.code {
        c.push(format!("p.code = {}", bind(code)));
    }
    c.push("p.code IS NOT NULL".into());
    format!("({})", c.join(" AND "))
}

/// One date value `(prefix, [p0, p1))` on the element range `[p.lo, p.hi)` (`DateValue::matches`).
fn date_sql(prefix: Prefix, (p0, p1): (i64, i64)) -> String {
    let c = match prefix {
        Prefix::Eq => format!("p.lo >= {p0} AND p.hi <= {p1}"),
        Prefix::Ne => format!("NOT (p.lo >= {p0} AND p.hi <= {p1})"),
        Prefix::Gt => format!("p.hi > {p1}"),
        Prefix::Lt => format!("p.lo < {p0}"),
        Prefix::Ge => format!("p.hi > {p0}"),
        Prefix::Le => format!("p.lo < {p1}"),
        Prefix::Sa => format!("p.lo >= {p1}"),
        Prefix::Eb => format!("p.hi <= {p0}"),
        Prefix::Ap => format!("p.lo < {p1} AND p.hi > {p0}"),
    };
    format!("(p.lo IS NOT NULL AND {c})")
}
