//! The library's behaviour, in one test binary (one link instead of eleven). Tests that
//! need a process of their own stand apart: `env` (environment variables), `observability`
//! (a global subscriber), `cli` (the `lro` binary).

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod chaos;
mod client;
mod fake;
mod json;
mod listing;
mod other_apis;
mod properties;
mod protocol;
mod proxy;
#[cfg(feature = "rest")]
mod rest;
mod scale;
mod transport;
mod typed;
mod vision;
mod wait;
