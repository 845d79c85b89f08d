//! run-load-test: load-test HTTP services and AI agent gateways, record exact latency distributions, and gate
//! CI on SLOs. Data flows cli → config → engine (client, mock) → metrics → report; see DESIGN.md.
// Functions stay under 120 lines (clippy.toml); tests may be longer.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod app;
pub mod background;
pub mod baseline;
pub mod cli;
pub mod client;
pub mod config;
pub mod engine;
pub mod limits;
pub mod llm;
pub mod merge;
pub mod metrics;
pub mod mock;
pub mod redact;
pub mod render;
pub mod report;
pub mod result;
pub mod scenario;
pub mod slo;
