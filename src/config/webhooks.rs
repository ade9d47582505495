//! The webhooks section: which addresses endpoints may have, how long a rotated secret still
//! signs, and how long an endpoint may fail before it is switched off.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Vars, choice, positive_duration, section};

pub const DEFAULT_ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// `WEBHOOK_ALLOW_PRIVATE`: endpoints on loopback, link-local, private and unspecified
    /// addresses are allowed (for a receiver on the same host or network, and for tests).
    pub allow_private: bool,
    /// `WEBHOOK_ROTATION_OVERLAP`: how long the old secret still signs after a rotation.
    pub rotation_overlap: Duration,
    /// `WEBHOOK_DISABLE_AFTER`: an endpoint whose deliveries have all failed this long is
    /// switched off.
    pub disable_after: Duration,
}

#[derive(Deserialize)]
struct WebhookVars {
    webhook_allow_private: Option<String>,
    webhook_rotation_overlap: Option<String>,
    webhook_disable_after: Option<String>,
}

pub(super) fn read(vars: &Vars) -> Result<WebhookConfig, ConfigError> {
    let WebhookVars {
        webhook_allow_private,
        webhook_rotation_overlap,
        webhook_disable_after,
    } = section(vars)?;
    Ok(WebhookConfig {
        allow_private: choice(
            "WEBHOOK_ALLOW_PRIVATE",
            webhook_allow_private.as_deref(),
            &[("false", false), ("true", true)],
        )?,
        rotation_overlap: positive_duration(
            "WEBHOOK_ROTATION_OVERLAP",
            webhook_rotation_overlap,
            DEFAULT_ROTATION_OVERLAP,
        )?,
        disable_after: positive_duration(
            "WEBHOOK_DISABLE_AFTER",
            webhook_disable_after,
            DEFAULT_DISABLE_AFTER,
        )?,
    })
}
