//! Events: every move of a credit and every redemption, written in the same atomic step as the
//! move, and read back as a feed (`GET /events`) in the order they were written.

pub mod daily;
pub mod domain;
pub mod retention;
mod routes;
pub mod store;

pub use domain::{Event, EventType};
pub use routes::router;
pub use store::{EventFeed, FeedQuery};
