//! Credit callbacks: the credit events owed to the billing service, and their delivery.
//!
//! An event is written in the same atomic step as the state change that causes it (see the
//! indication stores), so a crash can neither lose nor duplicate a credit. The [`worker`]
//! delivers each one at least once, signed, under its stable id.

pub mod delivery;
pub mod domain;
mod routes;
pub mod service;
pub mod store;
pub mod worker;

pub use delivery::SigningSecret;
pub use domain::{CallbackFilter, CallbackStatus, CreditEvent, CreditEventType, RetrySchedule};
pub use routes::router;
pub use store::CallbackOutbox;
pub use worker::OutboxSignal;
