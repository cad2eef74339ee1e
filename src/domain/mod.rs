//! Values both builds share (server and wasm): the closed sets the product stores and sends, each with its
//! spellings written once ([`spelling`]). Never secrets.

pub(crate) mod spelling;

mod authorization;
mod endpoint_health;
mod exit_code;
mod link_event;
mod link_step;
mod mode;
mod sync;
mod usage;

pub use authorization::{AuthorizationState, StateReason};
pub use endpoint_health::{AttemptOutcome, HealthStatus};
pub use exit_code::ExitCode;
pub use link_event::LinkEventName;
pub use link_step::LinkStep;
pub use mode::Mode;
pub use sync::{IncompleteType, Incremental, SkippedType, SyncChanges, SyncStats, SyncStatus};
pub use usage::{Usage, ONE_TIME_TTL_SECS};
