//! An API key: `rk_<id>_<secret>`. The id (64 random bits, hex) names the key and is shown in
//! lists as its prefix; the secret (192 random bits, hex) is shown once, at creation, and only its
//! SHA-256 is kept. A key is checked by its id's record and a constant-time comparison of the
//! secret's hash.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

pub const KEY_PREFIX: &str = "rk_";
pub const MAX_NAME_CHARS: usize = 100;

/// What a key may do: the role of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    Service,
    Admin,
}

impl KeyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Admin => "admin",
        }
    }
}

/// A key as stored: never its secret.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    /// 16 hex characters.
    pub id: String,
    pub name: String,
    pub role: KeyRole,
    /// Hex SHA-256 of the secret part.
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// What lists show of the key: `rk_<id>`.
    pub fn prefix(&self) -> String {
        format!("{KEY_PREFIX}{}", self.id)
    }

    /// Whether `secret` is this key's, compared in constant time.
    pub fn admits(&self, secret: &str) -> bool {
        let given = hex::encode(Sha256::digest(secret.as_bytes()));
        constant_time_eq(given.as_bytes(), self.secret_hash.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A key just made: its record, and the whole key to show once.
pub struct NewKey {
    pub record: ApiKey,
    pub key: String,
}

impl NewKey {
    pub fn generate(name: String, role: KeyRole, at: DateTime<Utc>) -> Self {
        let mut id = [0u8; 8];
        rand::fill(&mut id);
        let mut secret = [0u8; 24];
        rand::fill(&mut secret);
        let id = hex::encode(id);
        let secret = hex::encode(secret);
        Self {
            key: format!("{KEY_PREFIX}{id}_{secret}"),
            record: ApiKey {
                id,
                name,
                role,
                secret_hash: hex::encode(Sha256::digest(secret.as_bytes())),
                created_at: at,
                last_used_at: None,
                revoked_at: None,
            },
        }
    }
}

/// Why a key cannot be made with these fields.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFieldError {
    #[error("a key's name has 1 to {MAX_NAME_CHARS} characters")]
    Name,
    #[error("a key's role is service or admin")]
    Role,
}

/// The name and role of a key to make, checked.
pub fn key_fields(
    name: Option<&str>,
    role: Option<&str>,
) -> Result<(String, KeyRole), KeyFieldError> {
    let name = name.map(str::trim).unwrap_or_default();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(KeyFieldError::Name);
    }
    let role = match role.map(str::trim) {
        Some("service") => KeyRole::Service,
        Some("admin") => KeyRole::Admin,
        _ => return Err(KeyFieldError::Role),
    };
    Ok((name.to_owned(), role))
}

/// The id and secret of a presented key; `None` for anything not of a key's form.
pub fn split_key(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_admits_its_secret_only() {
        let made = NewKey::generate("billing".to_owned(), KeyRole::Service, Utc::now());
        let (id, secret) = split_key(&made.key).expect("a key's form");
        assert_eq!(id, made.record.id);
        assert!(made.record.admits(secret));
        assert!(!made.record.admits("not-the-secret"));
        assert!(!made.key.contains(&made.record.secret_hash));
        assert_eq!(made.record.prefix(), format!("rk_{id}"));
        // 192 random bits of secret, 64 of id.
        assert_eq!(secret.len(), 48);
        assert!(!secret.contains('_'));
        for bad in [
            "rk_",
            "rk_abc_x",
            "rk_0123456789abcdef_",
            "xx_0123456789abcdef_s",
        ] {
            assert!(split_key(bad).is_none(), "{bad}");
        }
    }
}
