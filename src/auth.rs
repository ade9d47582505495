//! Token authentication: JWT verification with exactly one configured algorithm, the caller
//! extracted from its claims, role checks, and minting for the `token` command.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{HeaderMap, header, request::Parts},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{
    config::{JwtConfig, JwtKeyConfig, LegacyRoutesAuth},
    error::ApiError,
};

/// File in `DATA_DIR` holding the generated HS256 secret of an embedded deployment.
pub const GENERATED_SECRET_FILE: &str = "jwt-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Service => "service",
        }
    }
}

/// The claims this service reads. `sub` and `exp` are required; the rest are optional.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// The outcome of verifying a request's token (`None`: no valid token).
#[derive(Clone)]
struct Verified(Option<Caller>);

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub sub: String,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub roles: Vec<String>,
    /// The API key's id, for a caller with a key: what its idempotency keys are scoped to.
    pub key_id: Option<String>,
}

impl Caller {
    /// What tells this caller's idempotency keys apart from another's: the API key's id, else
    /// the token's `sub`.
    pub fn scope(&self) -> String {
        match &self.key_id {
            Some(id) => format!("key-id:{id}"),
            None => self.sub.clone(),
        }
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|r| r == role.as_str())
    }

    pub fn is_admin(&self) -> bool {
        self.has_role(Role::Admin)
    }

    /// Admin or service: back-end callers that may see every record.
    pub fn is_privileged(&self) -> bool {
        self.is_admin() || self.has_role(Role::Service)
    }

    fn require(self, allowed: &[Role]) -> Result<Self, ApiError> {
        if allowed.iter().any(|role| self.has_role(*role)) {
            Ok(self)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("JWT_PUBLIC_KEY is neither an RSA nor an EC (P-256) public key in PEM")]
    UnsupportedPublicKey,
    #[error("cannot read or create the generated JWT secret at {path}: {source}")]
    GeneratedSecret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "this deployment verifies tokens with JWT_PUBLIC_KEY; tokens must be minted by the holder of the private key"
    )]
    CannotMint,
    #[error("cannot sign the token: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
}

/// Verifies tokens, and signs them when the key is a shared secret.
pub struct Authenticator {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    legacy_routes: LegacyRoutesAuth,
}

impl Authenticator {
    pub fn new(
        config: &JwtConfig,
        data_dir: &Path,
        legacy_routes: LegacyRoutesAuth,
    ) -> Result<Self, KeyError> {
        let (algorithm, decoding, encoding) = match &config.key {
            JwtKeyConfig::Secret(secret) => hs256(secret.as_bytes()),
            JwtKeyConfig::Generated => hs256(&load_or_generate_secret(data_dir)?),
            JwtKeyConfig::PublicKeyPem(pem) => {
                if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
                    (Algorithm::RS256, key, None)
                } else if let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) {
                    (Algorithm::ES256, key, None)
                } else {
                    return Err(KeyError::UnsupportedPublicKey);
                }
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 30;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            algorithm,
            decoding,
            encoding,
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            legacy_routes,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Verifies a token: signature with the one configured algorithm, `exp`, and issuer and
    /// audience when configured. Any failure is the same 401.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| {
                tracing::debug!(reason = %err, "token refused");
                ApiError::Unauthorized
            })?;
        let claims = data.claims;
        if claims.sub.trim().is_empty() {
            return Err(ApiError::Unauthorized);
        }
        Ok(Caller {
            sub: claims.sub,
            email: claims.email,
            given_name: claims.given_name,
            family_name: claims.family_name,
            roles: claims.roles,
            key_id: None,
        })
    }

    /// Signs a token for the `token` command (and tests) with the configured secret.
    pub fn mint(&self, mut claims: Claims, ttl: Duration) -> Result<String, KeyError> {
        let key = self.encoding.as_ref().ok_or(KeyError::CannotMint)?;
        claims.exp = unix_now() + ttl.as_secs();
        if claims.iss.is_none() {
            claims.iss = self.issuer.clone();
        }
        if claims.aud.is_none() {
            claims.aud = self.audience.clone();
        }
        Ok(jsonwebtoken::encode(
            &Header::new(self.algorithm),
            &claims,
            key,
        )?)
    }

    /// The request's caller, verified once per request: the first look (a middleware or an
    /// extractor) keeps the outcome in the request's extensions for the next.
    pub fn caller_of(
        &self,
        headers: &HeaderMap,
        extensions: &mut axum::http::Extensions,
    ) -> Result<Caller, ApiError> {
        if let Some(Verified(known)) = extensions.get::<Verified>() {
            return known.clone().ok_or(ApiError::Unauthorized);
        }
        let caller = self.caller_from_headers(headers);
        extensions.insert(Verified(caller.as_ref().ok().cloned()));
        caller
    }

    fn caller_from_headers(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        self.verify(bearer_token(headers).ok_or(ApiError::Unauthorized)?)
    }
}

/// The token of the `Authorization` header: `Bearer <token>`, or the bare token the seed
/// sends; `None` without one or with another scheme.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?
        .trim();
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => Some(rest.trim()),
        Some(_) => None,
        None => Some(value),
    }
}

/// Keeps the caller a layer found for the request (an API key's; `None`: refused), so that
/// every later look at the caller takes it instead of verifying the header as a token.
pub fn remember_caller(extensions: &mut axum::http::Extensions, caller: Option<Caller>) {
    extensions.insert(Verified(caller));
}

fn hs256(secret: &[u8]) -> (Algorithm, DecodingKey, Option<EncodingKey>) {
    (
        Algorithm::HS256,
        DecodingKey::from_secret(secret),
        Some(EncodingKey::from_secret(secret)),
    )
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads the generated secret of an embedded deployment, creating it (readable by the owner
/// only) on first use.
fn load_or_generate_secret(data_dir: &Path) -> Result<Vec<u8>, KeyError> {
    let path = data_dir.join(GENERATED_SECRET_FILE);
    let wrap = |source| KeyError::GeneratedSecret {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(wrap(err)),
    }
    std::fs::create_dir_all(data_dir).map_err(wrap)?;
    let mut bytes = [0u8; 48];
    rand::fill(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let tmp = data_dir.join(format!("{GENERATED_SECRET_FILE}.tmp"));
    write_private(&tmp, secret.as_bytes()).map_err(wrap)?;
    std::fs::rename(&tmp, &path).map_err(wrap)?;
    tracing::info!(path = %path.display(), "generated a JWT secret for this embedded deployment");
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Any valid token: an end user, a service or an admin.
pub type AnyCaller = Caller;

/// Any valid token.
impl<S> FromRequestParts<S> for Caller
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Arc::<Authenticator>::from_ref(state).caller_of(&parts.headers, &mut parts.extensions)
    }
}

/// Access to the indication program routes (programs and indication): a token with role `service` or `admin`, unless the deployment
/// set `LEGACY_ROUTES_AUTH=none`.
pub struct ServiceAccess;

impl<S> FromRequestParts<S> for ServiceAccess
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Authenticator>::from_ref(state);
        if auth.legacy_routes == LegacyRoutesAuth::None {
            return Ok(Self);
        }
        auth.caller_of(&parts.headers, &mut parts.extensions)?
            .require(&[Role::Service, Role::Admin])?;
        Ok(Self)
    }
}

/// A token with role `admin`.
pub struct AdminAccess(pub Caller);

/// A back-end integration on the token routes: a token with role `service` or `admin`, always
/// (`LEGACY_ROUTES_AUTH` concerns the indication program routes only).
pub struct BackendAccess(pub Caller);

/// An extractor for callers holding one of `$roles`.
macro_rules! role_extractor {
    ($name:ident, $roles:expr) => {
        impl<S> FromRequestParts<S> for $name
        where
            Arc<Authenticator>: FromRef<S>,
            S: Send + Sync,
        {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                let caller = Caller::from_request_parts(parts, state).await?;
                caller.require($roles).map(Self)
            }
        }
    };
}

role_extractor!(AdminAccess, &[Role::Admin]);
role_extractor!(BackendAccess, &[Role::Service, Role::Admin]);
