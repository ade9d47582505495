//! Webhooks: endpoints that admins subscribe to event types, each event delivered to each
//! matching endpoint, signed with the endpoint's own secret, retried on its own schedule.

pub mod domain;
pub mod guard;
pub mod routes;
pub mod sender;
pub mod store;
pub mod worker;

pub use routes::router;
pub use store::WebhookStore;
