//! The authentication section: the key that verifies tokens, and whether the indication
//! program routes need one.

use std::fmt;

use serde::Deserialize;

use super::{ConfigError, StorageConfig, Vars, choice, section};

/// HS256 secrets shorter than this are refused: a short shared secret can be brute-forced.
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// The key that verifies tokens. Secrets are redacted from `Debug`.
#[derive(Clone)]
pub enum JwtKeyConfig {
    /// HS256 with a shared secret.
    Secret(String),
    /// RS256 or ES256 with a PEM public key (the algorithm follows the key type).
    PublicKeyPem(String),
    /// No key configured: in embedded mode one is generated and kept in `DATA_DIR`.
    Generated,
}

impl fmt::Debug for JwtKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(<redacted>)"),
            Self::PublicKeyPem(_) => f.write_str("PublicKeyPem(..)"),
            Self::Generated => f.write_str("Generated"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct JwtConfig {
    pub key: JwtKeyConfig,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// Whether the indication program routes require a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyRoutesAuth {
    /// A token with role `service` or `admin` (the default).
    Token,
    /// No authentication, for deployments that keep those routes on a private network.
    None,
}

#[derive(Deserialize)]
struct AuthVars {
    jwt_secret: Option<String>,
    jwt_public_key: Option<String>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    legacy_routes_auth: Option<String>,
}

pub(super) struct Auth {
    pub jwt: JwtConfig,
    pub legacy_routes: LegacyRoutesAuth,
}

impl Auth {
    /// The storage decides whether a key may be generated (embedded) or must be given.
    pub(super) fn read(vars: &Vars, storage: &StorageConfig) -> Result<Self, ConfigError> {
        let raw: AuthVars = section(vars)?;
        let jwt = JwtConfig {
            key: parse_jwt_key(raw.jwt_secret, raw.jwt_public_key, storage)?,
            issuer: raw.jwt_issuer,
            audience: raw.jwt_audience,
        };
        let legacy_routes = choice(
            "LEGACY_ROUTES_AUTH",
            raw.legacy_routes_auth.as_deref(),
            &[
                ("token", LegacyRoutesAuth::Token),
                ("none", LegacyRoutesAuth::None),
            ],
        )?;
        Ok(Self { jwt, legacy_routes })
    }
}

fn parse_jwt_key(
    secret: Option<String>,
    public_key: Option<String>,
    storage: &StorageConfig,
) -> Result<JwtKeyConfig, ConfigError> {
    match (secret, public_key) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            "JWT_SECRET",
            "set either JWT_SECRET (HS256) or JWT_PUBLIC_KEY (RS256/ES256), not both",
        )),
        (Some(secret), None) if secret.len() < MIN_JWT_SECRET_LEN => Err(ConfigError::new(
            "JWT_SECRET",
            format!("must be at least {MIN_JWT_SECRET_LEN} characters long"),
        )),
        (Some(secret), None) => Ok(JwtKeyConfig::Secret(secret)),
        (None, Some(pem)) => Ok(JwtKeyConfig::PublicKeyPem(read_pem(pem)?)),
        (None, None) => match storage {
            StorageConfig::Embedded { .. } => Ok(JwtKeyConfig::Generated),
            StorageConfig::Mongo { .. } => Err(ConfigError::new(
                "JWT_SECRET",
                "with DATABASE_URL set, JWT_SECRET or JWT_PUBLIC_KEY is required",
            )),
        },
    }
}

/// `JWT_PUBLIC_KEY` holds the PEM text itself or the path of a PEM file.
fn read_pem(value: String) -> Result<String, ConfigError> {
    if value.starts_with("-----BEGIN") {
        return Ok(value.replace("\\n", "\n"));
    }
    std::fs::read_to_string(&value).map_err(|e| {
        ConfigError::new(
            "JWT_PUBLIC_KEY",
            format!("neither PEM text nor a readable file ({e})"),
        )
    })
}
