//! Persistence: one module per table (`apps` and `api_keys` together, as they only exist together), the only
//! place that table's SQL is written. Functions take the [`Db`](crate::server::platform::db::Db), or an
//! executor (the pool or a transaction) when a caller must write several tables in one transaction, and plain
//! values; they hold no flow logic. Persisted states are the typed enums of [`crate::domain`].

pub mod apps;
pub mod audit;
pub mod authorizations;
pub mod brands;
pub mod connections_grants;
pub mod console_sign_ins;
pub mod consents;
pub mod endpoint_attempts;
pub mod endpoint_health;
pub mod endpoints;
pub mod hosted_links;
pub mod link_events;
pub mod link_outcomes;
pub mod link_sessions;
pub mod payer_auth_requests;
pub mod plan_requests;
pub mod resource_params;
pub mod resources;
pub mod sync_jobs;
pub mod tokens;
pub mod webhook_deliveries;
