//! Domain services: the rules of the product, over the store. The payer client, sync, lifecycle (expiry,
//! refresh, revocation), webhooks and insights (the steps of Link sessions, the funnel). No HTTP surface of ours lives here.

pub mod access;
pub mod console;
pub mod directory;
pub mod insights;
pub mod lifecycle;
pub mod link_flow;
pub mod payer;
pub mod sync;
pub mod webhooks;
