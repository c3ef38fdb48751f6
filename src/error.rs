//! The library's error type: every failure a command can meet, each naming what went wrong and
//! where.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Teacher(#[from] crate::teacher::TeacherError),
    #[error(transparent)]
    Plot(#[from] crate::report::plot::PlotError),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Network(#[from] crate::snn::SnnError),
    #[error(transparent)]
    Store(#[from] crate::snn::store::StoreError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
