//! The limits every request is held to: body size and answer time.

use std::time::Duration;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Beyond this the outer guard stops reading a body at all (413 and the connection closed);
/// between the two, the extractors read and drop the rest so that the client sees the 413.
pub const DRAIN_LIMIT: usize = 1024 * 1024;
/// A request that takes longer is answered 408 and its work dropped.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
