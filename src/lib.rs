//! run-load-test: load-test HTTP services and AI agent gateways, record exact latency distributions, and gate
//! CI on SLOs. Data flows cli → config → engine (client, mock) → metrics → report; see DESIGN.md.

pub mod app;
pub mod background;
pub mod baseline;
pub mod cli;
pub mod client;
pub mod config;
pub mod engine;
pub mod limits;
pub mod metrics;
pub mod mock;
pub mod redact;
pub mod report;
pub mod scenario;
pub mod slo;
