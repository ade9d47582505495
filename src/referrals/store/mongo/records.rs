//! Referrers and referees as MongoDB stores them: the upper-cased code as a key, BSON dates.

use super::*;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ReferrerDoc {
    #[serde(rename = "_id")]
    pub(super) email: String,
    pub(super) first_name: Option<String>,
    pub(super) last_name: Option<String>,
    pub(super) referral_code: String,
    pub(super) code_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) user_id: Option<String>,
    pub(super) created_at: mongodb::bson::DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) expires_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) max_redemptions: Option<i64>,
    #[serde(default = "active_by_default")]
    pub(super) active: bool,
    #[serde(default)]
    pub(super) redemptions: i64,
    /// Feed events waiting for the events relay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) events: Vec<Document>,
}

impl ReferrerDoc {
    pub(super) fn from_referrer(r: &Referrer) -> Self {
        Self {
            email: r.email.to_string(),
            first_name: r.first_name.clone(),
            last_name: r.last_name.clone(),
            referral_code: r.referral_code.to_string(),
            code_key: r.referral_code.key(),
            user_id: r.user_id.clone(),
            created_at: to_bson_datetime(r.created_at),
            expires_at: r.rules.expires_at.map(to_bson_datetime),
            max_redemptions: r.rules.max_redemptions.map(count_to_bson),
            active: r.rules.active,
            redemptions: count_to_bson(r.redemptions),
            events: Vec::new(),
        }
    }

    pub(super) fn into_referrer(self) -> Result<Referrer, StoreError> {
        Ok(Referrer {
            email: Email::from_stored(self.email),
            first_name: self.first_name,
            last_name: self.last_name,
            referral_code: ReferralCode::from_stored(self.referral_code),
            user_id: self.user_id,
            created_at: from_bson_datetime(self.created_at)?,
            rules: CodeRules {
                expires_at: self.expires_at.map(from_bson_datetime).transpose()?,
                max_redemptions: self
                    .max_redemptions
                    .map(|max| u64::try_from(max).unwrap_or(0)),
                active: self.active,
            },
            redemptions: u64::try_from(self.redemptions).unwrap_or(0),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RefereeDoc {
    #[serde(rename = "_id")]
    pub(super) account_id: String,
    pub(super) referral_code: String,
    pub(super) code_key: String,
    pub(super) redeemed_at: mongodb::bson::DateTime,
    pub(super) via: Via,
    /// Feed events waiting for the events relay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) events: Vec<Document>,
}

impl RefereeDoc {
    pub(super) fn into_referee(self) -> Result<Referee, StoreError> {
        Ok(Referee {
            via: self.via,
            account_id: AccountId::from_stored(self.account_id),
            referral_code: ReferralCode::from_stored(self.referral_code),
            redeemed_at: from_bson_datetime(self.redeemed_at)?,
        })
    }
}
