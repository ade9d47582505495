//! The indication program: users, registrations of indicated users, invoices, statements, e-mail indications.

pub mod domain;
pub mod import;
pub mod release;
mod routes;
pub mod service;
pub mod store;
pub mod totals;

pub use domain::{LedgerEntry, LedgerOperation, User, UserHash};
pub use routes::router;
pub use store::{IndicationStore, LedgerScan};
