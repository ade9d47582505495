//! The HTTP front: Prometheus metrics, rate limits on the code routes, and the server
//! loop with its connection limits.

pub mod deadline;
pub mod metrics;
pub mod rate_limit;
pub mod server;
