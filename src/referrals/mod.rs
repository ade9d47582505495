//! Referral codes: referrers and their codes, referees who redeem them.

pub mod domain;
pub mod import;
mod routes;
pub mod service;
pub mod store;

pub use domain::{Referee, ReferralCode, Referrer};
pub use routes::router;
pub use store::ReferralStore;
