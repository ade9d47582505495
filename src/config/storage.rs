//! The storage section: MongoDB or the embedded store, and where the embedded store lives.

use std::{fmt, path::PathBuf, time::Duration};

use serde::Deserialize;

use super::{ConfigError, Vars, positive_duration, section};

/// How long a request waits for MongoDB to answer before it gets a 503.
pub const DEFAULT_DATABASE_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_DATA_DIR: &str = "./data";

/// Where the records live.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// MongoDB through the official driver; the URL may hold credentials, so it is never printed.
    /// `timeout` bounds finding a server and every call to it: past it, requests get a 503.
    Mongo { url: String, timeout: Duration },
    /// The embedded store in this directory.
    Embedded { data_dir: PathBuf },
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mongo { timeout, .. } => f
                .debug_struct("Mongo")
                .field("url", &"<redacted>")
                .field("timeout", timeout)
                .finish(),
            Self::Embedded { data_dir } => f
                .debug_struct("Embedded")
                .field("data_dir", data_dir)
                .finish(),
        }
    }
}

#[derive(Deserialize)]
struct StorageVars {
    database_url: Option<String>,
    database_timeout: Option<String>,
    data_dir: Option<String>,
}

pub(super) struct Storage {
    pub config: StorageConfig,
    pub data_dir: PathBuf,
}

impl Storage {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        let raw: StorageVars = section(vars)?;
        let data_dir = PathBuf::from(raw.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned()));
        let config = match raw.database_url {
            None => StorageConfig::Embedded {
                data_dir: data_dir.clone(),
            },
            Some(url) if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") => {
                let timeout = positive_duration(
                    "DATABASE_TIMEOUT",
                    raw.database_timeout,
                    DEFAULT_DATABASE_TIMEOUT,
                )?;
                StorageConfig::Mongo { url, timeout }
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "must start with mongodb:// or mongodb+srv:// (leave it unset for the embedded store)",
                ));
            }
        };
        Ok(Self { config, data_dir })
    }
}
