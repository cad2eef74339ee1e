//! Domain services: the rules of the product, over the store. The payer client, sync, lifecycle (expiry,
//! refresh, revocation), webhooks, repair mode and insights (the steps of Link sessions, the funnel). No HTTP surface of ours lives here.

pub mod access;
pub mod console;
pub mod directory;
pub mod hosted_links;
pub mod insights;
pub mod lifecycle;
pub mod link_flow;
pub mod payer;
pub mod repair;
pub mod sync;
pub mod webhooks;
