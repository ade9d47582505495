//! referral-api: referral programs, indications and credits, and referral codes, over HTTP.

pub mod app;
pub mod auth;
pub mod callbacks;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cursor;
pub mod email;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod indication;
pub mod limits;
pub mod meta;
pub mod money;
pub mod openapi;
pub mod ops;
pub mod programs;
pub mod referrals;
pub mod routing;
pub mod sentences;
pub mod startup;
pub mod state;
pub mod storage;
pub mod stores;
pub mod telemetry;
