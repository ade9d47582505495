//! Referrers, who own a referral code, and referees, who redeemed one (once per account, ever).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    email::Email,
    events::{Event, EventType},
};

/// Characters of the random part of a code: digits and upper-case letters without the ones
/// that read alike (0/O, 1/I/L, U/V).
pub const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTWXYZ";
/// Random characters in a generated code: 7 × log2(29) ≈ 34 bits.
pub const CODE_RANDOM_CHARS: usize = 7;
pub const MAX_CODE_CHARS: usize = 64;
pub const MAX_ACCOUNT_CHARS: usize = 128;
pub const MAX_NAME_CHARS: usize = 100;

/// A referral code as spelled when created or imported (`ALBE-7KQ2MZP`, `ABC-6add-T`).
/// Codes match case-insensitively, through [`ReferralCode::key`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ReferralCode(String);

impl ReferralCode {
    /// A code is 1 to 64 ASCII letters, digits, `-` or `_`; anything else cannot be a code.
    pub fn parse(raw: &str) -> Option<Self> {
        let code = raw.trim();
        let valid = !code.is_empty()
            && code.len() <= MAX_CODE_CHARS
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| Self(code.to_owned()))
    }

    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// A new code: up to four letters of the first name (else of the e-mail's local part, else
    /// `REF`), a dash, and random characters from [`CODE_ALPHABET`].
    pub fn generate(first_name: Option<&str>, email: &Email) -> Self {
        Self::generate_with(&mut rand::rng(), first_name, email)
    }

    /// [`ReferralCode::generate`] with the given source of randomness.
    pub fn generate_with(
        rng: &mut impl rand::Rng,
        first_name: Option<&str>,
        email: &Email,
    ) -> Self {
        use rand::RngExt;
        let letters = |s: &str| -> String {
            s.chars()
                .flat_map(char::to_uppercase)
                .filter(char::is_ascii_uppercase)
                .take(4)
                .collect()
        };
        let local = email.as_str().split('@').next().unwrap_or("");
        let prefix = [first_name.map(letters), Some(letters(local))]
            .into_iter()
            .flatten()
            .find(|p| !p.is_empty())
            .unwrap_or_else(|| "REF".to_owned());
        let random: String = (0..CODE_RANDOM_CHARS)
            .map(|_| char::from(CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())]))
            .collect();
        Self(format!("{prefix}-{random}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive identity of the code.
    pub fn key(&self) -> String {
        self.0.to_ascii_uppercase()
    }
}

impl fmt::Display for ReferralCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account id (the token's `sub`): 1 to 128 characters, opaque.
/// An account of the web front end (a token's `sub`): 1 to 128 characters once trimmed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(raw: &str) -> Option<Self> {
        let account = raw.trim();
        (!account.is_empty() && account.chars().count() <= MAX_ACCOUNT_CHARS)
            .then(|| Self(account.to_owned()))
    }

    /// For ids read back from a store, which were validated when written.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Referrer {
    pub email: Email,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub referral_code: ReferralCode,
    /// The token `sub` of an internal user.
    pub user_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub rules: CodeRules,
    /// Accounts that redeemed the code.
    pub redemptions: u64,
}

/// The rules a referrer's code may carry; the default (no expiry, no limit, active) is a code
/// as the seed knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeRules {
    pub expires_at: Option<DateTime<Utc>>,
    pub max_redemptions: Option<u64>,
    pub active: bool,
}

impl Default for CodeRules {
    fn default() -> Self {
        Self {
            expires_at: None,
            max_redemptions: None,
            active: true,
        }
    }
}

/// Why a code refuses a new redemption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeRefusal {
    /// Switched off, or past its expiry.
    Expired,
    /// At its `max_redemptions`.
    LimitReached,
}

impl CodeRules {
    /// Whether a new account may redeem the code at `now`, with `redemptions` made so far.
    pub fn admits(&self, now: DateTime<Utc>, redemptions: u64) -> Result<(), CodeRefusal> {
        if !self.active || self.expires_at.is_some_and(|at| at <= now) {
            return Err(CodeRefusal::Expired);
        }
        if self.max_redemptions.is_some_and(|max| redemptions >= max) {
            return Err(CodeRefusal::LimitReached);
        }
        Ok(())
    }
}

/// A change to a code's rules: `None` leaves a rule as it is; `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesChange {
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub max_redemptions: Option<Option<u64>>,
    /// `Some(None)` restores the default, active.
    pub active: Option<Option<bool>>,
}

impl RulesChange {
    pub fn apply(&self, rules: &mut CodeRules) {
        if let Some(expires_at) = self.expires_at {
            rules.expires_at = expires_at;
        }
        if let Some(max) = self.max_redemptions {
            rules.max_redemptions = max;
        }
        if let Some(active) = self.active {
            rules.active = active.unwrap_or(true);
        }
    }
}

impl Referrer {
    pub fn new(
        email: Email,
        first_name: Option<String>,
        last_name: Option<String>,
        referral_code: ReferralCode,
        user_id: Option<String>,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            email,
            first_name,
            last_name,
            referral_code,
            user_id,
            created_at,
            rules: CodeRules::default(),
            redemptions: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Redeem,
    Apply,
    Landlord,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Referee {
    pub account_id: AccountId,
    pub referral_code: ReferralCode,
    pub redeemed_at: DateTime<Utc>,
    pub via: Via,
}

/// A referee as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefereeBody {
    #[schema(example = "acc-123")]
    pub id: String,
    #[serde(rename = "referralCode")]
    #[schema(example = "ALBE-7KQ2MZP")]
    pub referral_code: String,
    /// `YYYY-MM-DD HH:MM`, UTC.
    #[serde(rename = "redeemOn")]
    #[schema(example = "2018-01-01 00:00")]
    pub redeem_on: String,
}

impl From<&Referee> for RefereeBody {
    fn from(referee: &Referee) -> Self {
        Self {
            id: referee.account_id.to_string(),
            referral_code: referee.referral_code.to_string(),
            redeem_on: referee.redeemed_at.format("%Y-%m-%d %H:%M").to_string(),
        }
    }
}

impl Referrer {
    /// The feed's `referrer.created` event, at the referrer's creation.
    pub fn created_event(&self) -> Event {
        Event::new(
            EventType::ReferrerCreated,
            serde_json::json!({
                "referral_code": self.referral_code.to_string(),
                "email": self.email.as_str(),
                "first_name": self.first_name,
                "last_name": self.last_name,
            }),
            self.created_at,
        )
    }
}

impl Referee {
    /// The feed's `referral.redeemed` event, at the account's first redemption.
    pub fn redeemed_event(&self) -> Event {
        Event::new(
            EventType::ReferralRedeemed,
            serde_json::json!({
                "referral_code": self.referral_code.to_string(),
                "account_id": self.account_id.to_string(),
                "redeemed_at": crate::clock::rfc3339_millis_string(self.redeemed_at),
                "via": self.via,
            }),
            self.redeemed_at,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn generated_codes_have_a_prefix_and_no_look_alikes() {
        let email = Email::parse("email@molt-bonic.com").expect("email");
        assert!(
            ReferralCode::generate(Some("Albert"), &email)
                .as_str()
                .starts_with("ALBE-")
        );
        assert!(
            ReferralCode::generate(Some("Zoë"), &email)
                .as_str()
                .starts_with("ZO-")
        );
        assert!(
            ReferralCode::generate(None, &email)
                .as_str()
                .starts_with("EMAI-")
        );
        assert!(
            ReferralCode::generate(Some("李"), &Email::parse("42@x.com").expect("email"))
                .as_str()
                .starts_with("REF-")
        );
    }

    #[test]
    fn ten_thousand_codes_collide_never_and_avoid_look_alikes() {
        use rand::SeedableRng;
        // Seeded, so that the run is the same every time; the stores retry real collisions.
        let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
        let email = Email::parse("ana@example.com").expect("email");
        let mut keys = HashSet::new();
        for _ in 0..10_000 {
            let code = ReferralCode::generate_with(&mut rng, Some("Ana"), &email);
            let (_, random) = code.as_str().split_once('-').expect("dash");
            assert_eq!(random.len(), CODE_RANDOM_CHARS);
            assert!(random.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
            assert!(
                !random.contains(['0', 'O', '1', 'I', 'L', 'U', 'V']),
                "{code}"
            );
            assert!(ReferralCode::parse(code.as_str()).is_some());
            assert!(keys.insert(code.key()), "collision: {code}");
        }
    }

    #[test]
    fn rules_refuse_inactive_expired_and_exhausted_codes() {
        let now = crate::clock::now();
        let hour = chrono::Duration::hours(1);
        assert_eq!(CodeRules::default().admits(now, 1_000_000), Ok(()));
        let expiring = CodeRules {
            expires_at: Some(now + hour),
            ..CodeRules::default()
        };
        assert_eq!(expiring.admits(now, 0), Ok(()));
        assert_eq!(expiring.admits(now + hour, 0), Err(CodeRefusal::Expired));
        let off = CodeRules {
            active: false,
            ..CodeRules::default()
        };
        assert_eq!(off.admits(now, 0), Err(CodeRefusal::Expired));
        let limited = CodeRules {
            max_redemptions: Some(2),
            ..CodeRules::default()
        };
        assert_eq!(limited.admits(now, 1), Ok(()));
        assert_eq!(limited.admits(now, 2), Err(CodeRefusal::LimitReached));
        let mut rules = limited;
        RulesChange {
            max_redemptions: Some(None),
            active: Some(Some(false)),
            ..RulesChange::default()
        }
        .apply(&mut rules);
        assert_eq!(rules.max_redemptions, None);
        assert!(!rules.active);
    }

    #[test]
    fn codes_keep_their_spelling_and_match_in_any_case() {
        let code = ReferralCode::parse(" ABC-6add-T ").expect("valid");
        assert_eq!(code.as_str(), "ABC-6add-T");
        assert_eq!(
            code.key(),
            ReferralCode::parse("abc-6ADD-t").expect("valid").key()
        );
        for bad in ["", "a b", "x$y", "{\"$ne\":1}", &"A".repeat(65)] {
            assert!(ReferralCode::parse(bad).is_none(), "{bad}");
        }
    }
}
