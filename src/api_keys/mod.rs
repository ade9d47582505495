//! API keys for back-end callers that should not mint tokens: `rk_…` keys, shown once, stored
//! as a hash, accepted as `Authorization: Bearer rk_…` wherever a token is, with the key's role.

pub mod domain;
pub mod resolve;
mod routes;
pub mod store;

pub use domain::{ApiKey, NewKey};
pub use resolve::{KeyResolver, resolve};
pub use routes::router;
pub use store::ApiKeyStore;
