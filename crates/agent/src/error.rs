//! Errors of the agent and the exit code each one stands for.

use thiserror::Error;

/// Something that stopped an agent command; [`AgentError::exit_code`] is what
/// the process exits with.
#[derive(Debug, Error)]
pub enum AgentError {
    /// A usage problem clap cannot see (a missing key, a malformed URL): exit 2.
    #[error("{0}")]
    Usage(String),
    /// The server refused the key, or its signing key is not the expected one: exit 3.
    #[error("refused: {0}")]
    Refused(String),
    /// The name is taken by another host: exit 4.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The server found the request invalid (400, 422): exit 5.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The server could not be reached within the retry budget: exit 6.
    #[error("server not reachable: {0}")]
    Unreachable(String),
    /// The server answered something the agent does not understand: exit 1.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The state directory or file could not be read or written: exit 1.
    #[error("state: {0}")]
    State(String),
    /// Anything else that stopped the command (the listening address taken,
    /// the runtime gone): exit 1.
    #[error("{0}")]
    Failed(String),
}

impl AgentError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Usage(_) => 2,
            AgentError::Refused(_) => 3,
            AgentError::Conflict(_) => 4,
            AgentError::Invalid(_) => 5,
            AgentError::Unreachable(_) => 6,
            AgentError::Protocol(_) | AgentError::State(_) | AgentError::Failed(_) => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_documented_exit_code() {
        let codes = [
            (AgentError::Usage(String::new()), 2),
            (AgentError::Refused(String::new()), 3),
            (AgentError::Conflict(String::new()), 4),
            (AgentError::Invalid(String::new()), 5),
            (AgentError::Unreachable(String::new()), 6),
            (AgentError::Protocol(String::new()), 1),
            (AgentError::State(String::new()), 1),
            (AgentError::Failed(String::new()), 1),
        ];
        for (error, code) in codes {
            assert_eq!(error.exit_code(), code, "{error:?}");
        }
    }
}
