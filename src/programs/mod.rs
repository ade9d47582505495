//! Referral programs: their terms and figures.

pub mod domain;
mod routes;
pub mod service;
pub mod store;

pub use domain::{Program, ProgramId};
pub use routes::router;
pub use store::ProgramStore;
