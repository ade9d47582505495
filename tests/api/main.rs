//! The contract suite: real HTTP against the real router, on both storage backends.
//!
//! Every test in a `contract_tests!` list runs twice: on the embedded store (a fresh directory)
//! and on MongoDB (a fresh database on `TEST_MONGODB_URL`). `scripts/test.sh` starts a MongoDB
//! wire-protocol server and sets that variable; without it the MongoDB half fails, on purpose.

mod helpers;

mod api_keys;
mod audit;
mod auth;
mod bodies;
mod callbacks;
mod code_rules;
mod credits;
mod daily;
mod embedded;
mod events;
mod exports;
mod faults;
mod figures;
mod fuzz;
mod idempotency;
mod import;
mod indication;
mod meta;
mod migrations;
mod operations;
mod process;
mod programs;
mod referrals;
mod review;
mod webhooks;
