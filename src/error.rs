//! The library's error type, and which errors are the user's input.

use std::path::PathBuf;

use crate::data::DataError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tournament or strategy file that cannot be used as written.
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    /// A dataset that cannot be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A flag or argument that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The run was interrupted; what completed is on disk.
    #[error("interrupted: partial results kept in {}", .0.display())]
    Interrupted(PathBuf),
    /// Anything else (disk full, a folder that vanished).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn config(file: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config {
            file: file.into(),
            message: message.into(),
        }
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// The process exit code DESIGN.md assigns to this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. } | Error::Data(_) | Error::Usage(_) => 2,
            Error::Interrupted(_) => 130,
            Error::Io { .. } => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
