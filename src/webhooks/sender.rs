//! One request to an endpoint: the JSON body, Standard Webhooks headers signed with each of the
//! endpoint's current secrets, through a client that connects only to addresses the guard
//! allows, follows no redirect and uses no proxy; and what the answer means for the schedule.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{StatusCode, header};

use super::{
    domain::{Answer, WebhookEndpoint},
    guard,
};
use crate::callbacks::delivery::USER_AGENT;

/// What the webhook routes need beside the store: the client that sends tests, and the
/// settings.
#[derive(Clone, Debug)]
pub struct WebhookAdmin {
    pub client: WebhookClient,
    /// `WEBHOOK_ROTATION_OVERLAP`.
    pub rotation_overlap: chrono::Duration,
}

/// How much of a failed answer's body `last_error` keeps.
const ERROR_EXCERPT_CHARS: usize = 200;

/// The HTTP client of every webhook endpoint: connections are pooled per host and kept alive.
#[derive(Clone, Debug)]
pub struct WebhookClient {
    client: reqwest::Client,
    allow_private: bool,
}

impl WebhookClient {
    pub fn new(timeout: Duration, allow_private: bool) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if !allow_private {
            builder = builder.dns_resolver(guard::resolver());
        }
        Ok(Self {
            client: builder.build()?,
            allow_private,
        })
    }

    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// Posts `body` to the endpoint as message `id`, stamped `at`, within `CALLBACK_TIMEOUT`.
    pub async fn post(
        &self,
        endpoint: &WebhookEndpoint,
        id: &str,
        body: &str,
        at: DateTime<Utc>,
    ) -> Answer {
        self.post_within(endpoint, id, body, at, None).await
    }

    /// As [`Self::post`], within `limit` when one is given (an admin's test waits for it).
    pub async fn post_within(
        &self,
        endpoint: &WebhookEndpoint,
        id: &str,
        body: &str,
        at: DateTime<Utc>,
        limit: Option<Duration>,
    ) -> Answer {
        let failed = |error: &str| Answer::Failed {
            status: None,
            error: error.to_owned(),
            retry_after: None,
        };
        let Ok(url) = url::Url::parse(&endpoint.url) else {
            return failed("the endpoint's URL does not parse");
        };
        if !self.allow_private && guard::literal_is_forbidden(&url) {
            return failed("not sent: the address is loopback, link-local, private or unspecified");
        }
        let timestamp = at.timestamp();
        let signatures: Vec<String> = endpoint
            .signing_secrets(at)
            .iter()
            .map(|secret| secret.sign(id, timestamp, body))
            .collect();
        let mut request = self.client.post(url);
        if let Some(limit) = limit {
            request = request.timeout(limit);
        }
        let request = request
            .header(header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures.join(" "))
            .body(body.to_owned());
        match request.send().await {
            Ok(response) => answer(response).await,
            Err(err) if err.is_timeout() => failed("timed out"),
            Err(err) if is_forbidden_address(&err) => failed(
                "not sent: the host resolves to a loopback, link-local, private or unspecified address",
            ),
            Err(err) if err.is_connect() => failed("connection failed"),
            Err(_) => failed("request failed"),
        }
    }
}

fn is_forbidden_address(err: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(err) = source {
        if err.is::<guard::ForbiddenAddress>() {
            return true;
        }
        source = err.source();
    }
    false
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    if status.is_success() {
        return Answer::Accepted {
            status: status.as_u16(),
        };
    }
    if status == StatusCode::GONE {
        return Answer::Gone;
    }
    let retry_after = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
    .then(|| retry_after(response.headers(), Utc::now()))
    .flatten();
    let text = response.text().await.unwrap_or_default();
    let excerpt: String = text.chars().take(ERROR_EXCERPT_CHARS).collect();
    Answer::Failed {
        status: Some(status.as_u16()),
        error: format!("HTTP {}: {}", status.as_u16(), excerpt.trim()),
        retry_after,
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    (at - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = header::HeaderMap::new();
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        headers.insert(header::RETRY_AFTER, "120".parse().expect("header"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        headers.insert(
            header::RETRY_AFTER,
            "Thu, 01 Jan 2026 00:01:00 GMT".parse().expect("header"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(60)));
        headers.insert(header::RETRY_AFTER, "soon".parse().expect("header"));
        assert_eq!(retry_after(&headers, now), None);
    }
}
