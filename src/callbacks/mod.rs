//! Part C: the credit events owed to the billing service.
//!
//! An event is written in the same atomic step as the state change that causes it (see the
//! indication stores), so a crash can neither lose nor duplicate a credit. Each one waits as
//! `pending` until it is delivered.

pub mod domain;
pub mod store;

pub use domain::{CallbackStatus, CreditEvent, CreditEventType};
pub use store::CallbackOutbox;
