//! Persistence: one module per table (or per pair of tables that only exist together), the only place that
//! table's SQL is written. Functions take the [`Db`](crate::server::platform::db::Db) (or a transaction) and
//! plain values; they hold no flow logic.

pub mod apps;
pub mod audit;
pub mod authorizations;
pub mod endpoints;
pub mod link_sessions;
pub mod resources;
pub mod tokens;
