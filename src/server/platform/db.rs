//! The database: one [`sqlx::AnyPool`] over SQLite (default, embedded) or PostgreSQL (several instances).
//!
//! Compiled only with `ssr`. SQL is written once in the dialect both engines accept (`$1` placeholders,
//! `ON CONFLICT`, `RETURNING`); the few places that differ ask [`Db::backend`]. Times are stored as
//! `BIGINT` Unix seconds, JSON as `TEXT`, encrypted values as `BLOB`/`BYTEA`, flags as `0`/`1` integers.
//! Migrations live in `migrations/sqlite` and `migrations/postgres` and run at start.

use std::{str::FromStr, time::Duration};

use anyhow::Context as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

/// The `VALUES` list of a multi-row `INSERT` of `rows` rows of `columns` parameters each, numbered from `$1`
/// row by row: `($1, $2), ($3, $4)` for 2 × 2. Keep `rows × columns` within the engines' parameter limits
/// (SQLite 32,766; PostgreSQL 65,535).
pub fn values_placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns).map(|c| format!("${}", r * columns + c)).collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (single instance).
    Sqlite,
    /// A PostgreSQL server (shared by several instances).
    Postgres,
}

/// A cloneable handle on the connection pool.
#[derive(Clone)]
pub struct Db {
    /// The pool; use it with `sqlx::query(...)`.
    pub pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the URL: it may carry a password.
        f.debug_struct("Db").field("backend", &self.backend).finish()
    }
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and runs the migrations of that backend.
    ///
    /// # Errors
    /// An unknown scheme, an unreachable server, or a failed migration.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres://");
        };
        if backend == Backend::Sqlite {
            if let Some(path) = sqlite_path(url) {
                if let Some(parent) = std::path::Path::new(&path).parent() {
                    if !parent.as_os_str().is_empty() {
                        std::fs::create_dir_all(parent)
                            .with_context(|| format!("creating {}", parent.display()))?;
                    }
                }
            }
        }
        let options = AnyConnectOptions::from_str(url).context("parsing DATABASE_URL")?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { max_connections.max(2) } else { max_connections })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Temporary sorts in memory, and reads of the first GiB through a memory map rather than a
                        // copy per page (docs/deployment.md; BENCHMARKS.md "Pages as groups").
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
                             PRAGMA mmap_size = 1073741824;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .context("connecting to the database")?;
        let db = Db { pool, backend };
        db.migrate().await?;
        Ok(db)
    }

    /// The engine behind this pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&self.pool).await,
        }
        .context("running database migrations")
    }

    /// Starts a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: a deferred transaction that
    /// reads first and then writes cannot wait for a concurrent writer (SQLite answers `database is locked`
    /// at once to avoid a deadlock), whereas an immediate one waits up to the busy timeout.
    ///
    /// # Errors
    /// Database errors (including a busy timeout).
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// `SELECT 1`: is the database reachable (for `/readyz`)?
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// `FOR UPDATE SKIP LOCKED` on PostgreSQL (rows leased by one instance are skipped by the others);
    /// empty on SQLite, where a single writer makes the conditional update atomic on its own.
    pub fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(path.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_path_strips_scheme_and_query() {
        assert_eq!(sqlite_path("sqlite://data/link.db?mode=rwc").as_deref(), Some("data/link.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[test]
    fn values_placeholders_number_row_by_row() {
        assert_eq!(values_placeholders(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(values_placeholders(1, 3), "($1, $2, $3)");
        assert_eq!(values_placeholders(0, 8), "");
    }
}
