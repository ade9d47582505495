//! Idempotent writes. A `POST`, `PUT`, `PATCH` or `DELETE` with `Idempotency-Key` runs
//! once per caller and key for 24 hours; a repeat gets the first answer again, byte for byte.

pub mod middleware;
pub mod store;

pub use store::IdempotencyStore;
