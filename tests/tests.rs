//! The one integration-test binary: drives the real `run-load-test` binary against the embedded mock gateway
//! (or a standalone `run-load-test mock`), on loopback only, each run bounded in time and count.

mod agent;
mod client_limits;
mod common;
mod errors;
mod exchange_capture;
mod gates;
mod gateway_attribution;
mod gateway_portkey;
mod hostile;
mod html;
mod lifecycle;
mod limits;
mod load_models;
mod merge;
mod open_pool;
mod outputs;
mod prometheus;
mod render;
mod run_mock;
mod secrets;
mod shards;
mod signals;
mod streaming;
mod vars;
mod verdicts;
