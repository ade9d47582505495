//! The audit log: one entry for every change made by a person or a back-end caller (programs,
//! code rules, credit decisions, callback retries, webhook endpoints, API keys), with who, what
//! (before and after), why and the request id; read newest first as JSON or CSV, never changed
//! or deleted through the API.

pub mod domain;
mod pending;
pub mod recorder;
mod routes;
pub mod store;

pub use domain::{AuditEntry, Changes};
pub use recorder::{Audit, Done, Subject, Why};
pub use routes::router;
pub use store::AuditLog;
