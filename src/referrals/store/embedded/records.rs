//! Referrers and referees as the embedded store keeps them: JSON records, times in milliseconds.

use super::*;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ReferrerRecord {
    pub(super) email: String,
    pub(super) first_name: Option<String>,
    pub(super) last_name: Option<String>,
    pub(super) referral_code: String,
    pub(super) user_id: Option<String>,
    #[serde(rename = "created_at_ms", with = "millis")]
    pub(super) created_at: DateTime<Utc>,
    #[serde(
        default,
        rename = "expires_at_ms",
        with = "opt_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) max_redemptions: Option<u64>,
    #[serde(default = "active_by_default")]
    pub(super) active: bool,
    #[serde(default)]
    pub(super) redemptions: u64,
}

impl ReferrerRecord {
    pub(super) fn from_referrer(r: &Referrer) -> Self {
        Self {
            email: r.email.to_string(),
            first_name: r.first_name.clone(),
            last_name: r.last_name.clone(),
            referral_code: r.referral_code.to_string(),
            user_id: r.user_id.clone(),
            created_at: r.created_at,
            expires_at: r.rules.expires_at,
            max_redemptions: r.rules.max_redemptions,
            active: r.rules.active,
            redemptions: r.redemptions,
        }
    }

    pub(super) fn into_referrer(self) -> Result<Referrer, StoreError> {
        Ok(Referrer {
            created_at: self.created_at,
            email: Email::from_stored(self.email),
            first_name: self.first_name,
            last_name: self.last_name,
            referral_code: ReferralCode::from_stored(self.referral_code),
            user_id: self.user_id,
            rules: CodeRules {
                expires_at: self.expires_at,
                max_redemptions: self.max_redemptions,
                active: self.active,
            },
            redemptions: self.redemptions,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RefereeRecord {
    pub(super) account_id: String,
    pub(super) referral_code: String,
    #[serde(rename = "redeemed_at_ms", with = "millis")]
    pub(super) redeemed_at: DateTime<Utc>,
    pub(super) via: Via,
}

impl RefereeRecord {
    pub(super) fn into_referee(self) -> Result<Referee, StoreError> {
        Ok(Referee {
            redeemed_at: self.redeemed_at,
            account_id: AccountId::from_stored(self.account_id),
            referral_code: ReferralCode::from_stored(self.referral_code),
            via: self.via,
        })
    }
}
