//! The engine's errors at its boundary: a scenario that cannot be compiled, a run that cannot start, signal
//! handling that cannot be installed. Each carries the message shown to the user as it always read.

/// Why the engine could not compile a plan or run it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The scenario cannot become a plan (an invalid header, template, JSON path, loop target...).
    #[error("{0}")]
    Plan(String),
    /// A request could not be built or its response judged: recorded as a check failure, never fatal.
    #[error("{0}")]
    Step(String),
    /// The run could not start (its runtime or a worker thread).
    #[error("{0}")]
    Start(String),
    /// A `--stages` test plan that does not parse.
    #[error("{0}")]
    Stages(String),
    /// The stop signals could not be handled.
    #[error("{0}")]
    Signals(String),
}

/// Plan compilation builds its messages in many shapes; they all describe the scenario.
impl From<String> for EngineError {
    fn from(message: String) -> Self {
        EngineError::Plan(message)
    }
}
