//! One delivery attempt: the form the billing service receives, signed after the Standard
//! Webhooks scheme, sent with the shared HTTP client, and its result classified.

use std::{fmt, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

use super::domain::CreditEvent;

/// How much of a failed answer's body `last_error` keeps.
const ERROR_EXCERPT_CHARS: usize = 200;

/// Everything but the unreserved characters of RFC 3986 is encoded in a hash put in the URL.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A `whsec_…` signing secret, decoded. Never printed.
#[derive(Clone)]
pub struct SigningSecret(Hmac<Sha256>);

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// Why a text is not a Standard Webhooks secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("must start with `whsec_`")]
    Prefix,
    #[error("the part after `whsec_` must be base64 of at least 24 bytes")]
    Key,
}

impl SigningSecret {
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        let key = raw
            .trim()
            .strip_prefix("whsec_")
            .ok_or(SecretError::Prefix)?;
        let bytes = STANDARD.decode(key).map_err(|_| SecretError::Key)?;
        if bytes.len() < 24 {
            return Err(SecretError::Key);
        }
        // Keyed once, here: signing cannot fail afterwards.
        Hmac::<Sha256>::new_from_slice(&bytes)
            .map(Self)
            .map_err(|_| SecretError::Key)
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// Where and how callbacks are sent.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// With `%s` or `{user_hash}` for the credited user's URL-encoded hash, or neither.
    pub url_template: String,
    pub secret: Option<SigningSecret>,
}

impl Endpoint {
    pub fn url_for(&self, user_hash: &str) -> String {
        let encoded = utf8_percent_encode(user_hash, PATH_SEGMENT).to_string();
        self.url_template
            .replace("{user_hash}", &encoded)
            .replace("%s", &encoded)
    }
}

/// The form body of an event: the original's three fields, then the event's identity.
pub fn form_body(event: &CreditEvent) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("amount", &event.amount.to_string())
        .append_pair("program_name", &event.program_name)
        .append_pair("user_indicator_hash", event.user_indicator_hash.as_str())
        .append_pair("event_id", &event.id)
        .append_pair("event_type", &event.event_type.to_string())
        .append_pair("user_hash", event.user_hash.as_str())
        .finish()
}

/// What one attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Delivered,
    /// A non-2xx answer (status and a body excerpt) or a transport failure.
    Failed(String),
}

/// The shared HTTP client (rustls, pooled connections) and the endpoint.
#[derive(Clone, Debug)]
pub struct Sender {
    client: reqwest::Client,
    endpoint: Endpoint,
}

pub const USER_AGENT: &str = concat!("referral-api/", env!("CARGO_PKG_VERSION"));

impl Sender {
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self { client, endpoint })
    }

    /// Sends one attempt, stamped `timestamp` (unix seconds).
    pub async fn send(&self, event: &CreditEvent, timestamp: i64) -> Sent {
        let body = form_body(event);
        let mut request = self
            .client
            .post(self.endpoint.url_for(event.user_hash.as_str()))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("Idempotency-Key", &event.id);
        if let Some(secret) = &self.endpoint.secret {
            request = request.header(
                "webhook-signature",
                secret.sign(&event.id, timestamp, &body),
            );
        }
        match request.body(body).send().await {
            Ok(response) if response.status().is_success() => Sent::Delivered,
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let excerpt: String = text.chars().take(ERROR_EXCERPT_CHARS).collect();
                Sent::Failed(format!("HTTP {}: {}", status.as_u16(), excerpt.trim()))
            }
            Err(err) if err.is_timeout() => Sent::Failed("timed out".to_owned()),
            Err(err) if err.is_connect() => Sent::Failed("connection failed".to_owned()),
            Err(err) => Sent::Failed(format!("request failed: {}", without_url(&err))),
        }
    }
}

/// A transport error's text without the URL, which may carry credentials in its query.
fn without_url(err: &reqwest::Error) -> String {
    let mut err = format!("{}", RedactedUrl(err));
    err.truncate(ERROR_EXCERPT_CHARS);
    err
}

struct RedactedUrl<'a>(&'a reqwest::Error);

impl fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(self.0);
        let mut last = None;
        while let Some(err) = source {
            last = Some(err);
            source = err.source();
        }
        match last {
            Some(root) => write!(f, "{root}"),
            None => f.write_str("unknown error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_take_the_encoded_hash() {
        let endpoint = |url: &str| Endpoint {
            url_template: url.to_owned(),
            secret: None,
        };
        assert_eq!(
            endpoint("http://b/credit/%s").url_for("a b/c"),
            "http://b/credit/a%20b%2Fc"
        );
        assert_eq!(
            endpoint("http://b/u/{user_hash}/credit").url_for("x"),
            "http://b/u/x/credit"
        );
        assert_eq!(endpoint("http://b/credit").url_for("x"), "http://b/credit");
    }

    #[test]
    fn secrets_need_the_prefix_and_a_real_key() {
        assert_eq!(
            SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").err(),
            Some(SecretError::Prefix)
        );
        assert_eq!(
            SigningSecret::parse("whsec_not base64").err(),
            Some(SecretError::Key)
        );
        assert!(SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    }

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification and its reference libraries.
        let secret =
            SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
