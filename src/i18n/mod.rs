//! Patient-facing words, in both builds: the message catalogue (English, Spanish and Korean) and the consent text.

mod catalogue;
mod consent;

pub use catalogue::*;
pub use consent::{ConsentText, CONSENT_TEXT_VERSION};
