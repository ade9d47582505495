//! Every rule about referrers and referees: a new code for a new e-mail (the existing code
//! otherwise, collisions retried, never returned), who a caller's referrer is, and the order of
//! the redemption checks.

use chrono::{DateTime, Utc};

use super::{
    domain::{AccountId, CodeRefusal, Referee, ReferralCode, Referrer, RulesChange, Via},
    store::{Redeemed, ReferralStore, ReferrerConflict},
};
use crate::{email::Email, storage::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReferralError {
    #[error("no referrer has this e-mail")]
    EmailNotFound,
    #[error("no referrer has this code")]
    ReferrerNotFound,
    /// A redemption names a code no referrer has (redeem, landlord).
    #[error("the redeemed code does not exist")]
    CodeNotFound,
    /// `apply` names a code no referrer has: the seed answers this one 422.
    #[error("the applied code does not exist")]
    AppliedCodeNotFound,
    #[error("the account owns the code")]
    OwnCode,
    #[error("the account redeemed another code before")]
    DifferentCodeBefore,
    #[error("the code is switched off or past its expiry")]
    CodeExpired,
    #[error("the code reached its redemption limit")]
    CodeLimitReached,
    #[error("the account redeemed no code")]
    RefereeNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = ReferralError> = std::result::Result<T, E>;

/// Attempts before giving up on finding a free code (each new code has ~34 random bits).
pub const MAX_ATTEMPTS: usize = 16;

/// Who is registering as a referrer.
pub struct Applicant {
    pub email: Email,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The token `sub` of an internal user.
    pub user_id: Option<String>,
}

/// The referrer of this applicant: found by user id, then by e-mail (an existing referrer gets
/// the user id if it had none), else created with a code from `next_code`.
pub async fn register(
    store: &dyn ReferralStore,
    applicant: Applicant,
    at: DateTime<Utc>,
    mut next_code: impl FnMut(&Applicant) -> ReferralCode + Send,
) -> Result<Referrer> {
    for _ in 0..MAX_ATTEMPTS {
        if let Some(found) = existing(store, &applicant).await? {
            return Ok(found);
        }
        let referrer = Referrer::new(
            applicant.email.clone(),
            applicant.first_name.clone(),
            applicant.last_name.clone(),
            next_code(&applicant),
            applicant.user_id.clone(),
            at,
        );
        match store.insert_referrer(&referrer).await? {
            Ok(()) => return Ok(referrer),
            Err(ReferrerConflict::CodeTaken) => {
                tracing::debug!("referral code collision, retrying");
            }
            // Registered concurrently: the next round finds it.
            Err(ReferrerConflict::EmailTaken | ReferrerConflict::UserTaken) => {}
        }
    }
    Err(StoreError::Backend(format!(
        "no free referral code after {MAX_ATTEMPTS} attempts"
    ))
    .into())
}

async fn existing(store: &dyn ReferralStore, applicant: &Applicant) -> Result<Option<Referrer>> {
    if let Some(user_id) = &applicant.user_id {
        if let Some(found) = store.referrer_by_user(user_id).await? {
            return Ok(Some(found));
        }
        return Ok(store.link_user(&applicant.email, user_id).await?);
    }
    Ok(store.referrer_by_email(&applicant.email).await?)
}

/// The referrer of a signed-in user: by its account, else by the token's e-mail.
pub async fn own_referrer(
    store: &dyn ReferralStore,
    user_id: &str,
    email: Option<&Email>,
) -> Result<Referrer> {
    if let Some(found) = store.referrer_by_user(user_id).await? {
        return Ok(found);
    }
    match email {
        Some(email) => store.referrer_by_email(email).await?,
        None => None,
    }
    .ok_or(ReferralError::ReferrerNotFound)
}

pub async fn referrer_by_email(store: &dyn ReferralStore, email: &Email) -> Result<Referrer> {
    store
        .referrer_by_email(email)
        .await?
        .ok_or(ReferralError::EmailNotFound)
}

/// By code, in any letter case.
pub async fn referrer_by_code(store: &dyn ReferralStore, code: &ReferralCode) -> Result<Referrer> {
    store
        .referrer_by_code(code)
        .await?
        .ok_or(ReferralError::ReferrerNotFound)
}

pub async fn referee(store: &dyn ReferralStore, account: &AccountId) -> Result<Referee> {
    store
        .referee(account)
        .await?
        .ok_or(ReferralError::RefereeNotFound)
}

/// A successful redemption.
#[derive(Clone, Debug, PartialEq)]
pub enum Redemption {
    /// This request stored the account's code.
    First(Referee),
    /// The account had redeemed this same code before; nothing changed.
    Again(Referee),
}

/// Redeems `code` for `account`, in the contract's order: the code must exist and must not be
/// the account's own (by account, or by `email`, the redeeming user's address, naming the
/// referrer's mailbox); the account may hold one code ever (the same one again is fine); and a
/// new redemption must pass the code's rules.
pub async fn redeem(
    store: &dyn ReferralStore,
    account: AccountId,
    email: Option<&Email>,
    code: &ReferralCode,
    via: Via,
    at: DateTime<Utc>,
) -> Result<Redemption> {
    let not_found = || match via {
        Via::Apply => ReferralError::AppliedCodeNotFound,
        Via::Redeem | Via::Landlord => ReferralError::CodeNotFound,
    };
    let Some(referrer) = store.referrer_by_code(code).await? else {
        return Err(not_found());
    };
    let own_account = referrer.user_id.as_deref() == Some(account.as_str());
    let own_mailbox = email.is_some_and(|email| email.mailbox() == referrer.email.mailbox());
    if own_account || own_mailbox {
        return Err(ReferralError::OwnCode);
    }
    let referee = Referee {
        account_id: account,
        referral_code: referrer.referral_code,
        redeemed_at: at,
        via,
    };
    match store.redeem(&referee, at).await? {
        Redeemed::Stored => Ok(Redemption::First(referee)),
        Redeemed::Held(held) if held.referral_code.key() == referee.referral_code.key() => {
            Ok(Redemption::Again(held))
        }
        Redeemed::Held(_) => Err(ReferralError::DifferentCodeBefore),
        Redeemed::Refused(CodeRefusal::Expired) => Err(ReferralError::CodeExpired),
        Redeemed::Refused(CodeRefusal::LimitReached) => Err(ReferralError::CodeLimitReached),
        Redeemed::UnknownCode => Err(not_found()),
    }
}

/// Sets or clears the rules of a code (any letter case).
pub async fn change_rules(
    store: &dyn ReferralStore,
    code: &ReferralCode,
    change: &RulesChange,
) -> Result<Referrer> {
    store
        .change_rules(code, change)
        .await?
        .ok_or(ReferralError::ReferrerNotFound)
}

/// How many referees a signed-in referrer's code has had, with the newest redemptions.
pub const OWN_REFEREES_SHOWN: usize = 100;

/// The signed-in user's referrer and its newest referees.
pub async fn own_referees(
    store: &dyn ReferralStore,
    user_id: &str,
    email: Option<&Email>,
) -> Result<(Referrer, Vec<Referee>)> {
    let referrer = own_referrer(store, user_id, email).await?;
    let referees = store
        .referees_of(&referrer.referral_code, OWN_REFEREES_SHOWN)
        .await?;
    Ok((referrer, referees))
}

/// A generated code, from the applicant's first name or e-mail.
pub fn random_code(applicant: &Applicant) -> ReferralCode {
    ReferralCode::generate(applicant.first_name.as_deref(), &applicant.email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::EmbeddedStore;

    fn now() -> DateTime<Utc> {
        crate::clock::now()
    }

    fn applicant(email: &str, user_id: Option<&str>) -> Applicant {
        Applicant {
            email: Email::parse(email).expect("email"),
            first_name: Some("Ana".to_owned()),
            last_name: None,
            user_id: user_id.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn a_colliding_code_is_retried_never_returned() {
        let dir = tempfile::tempdir().expect("dir");
        let store = EmbeddedStore::open(dir.path(), crate::stores::embedded_schema())
            .await
            .expect("store");
        let mut codes = ["ANA-AAAAAAA", "ana-aaaaaaa", "ANA-AAAAAAA", "ANA-BBBBBBB"]
            .into_iter()
            .map(|c| ReferralCode::parse(c).expect("code"));
        let mut next = move |_: &Applicant| codes.next().expect("enough codes");
        let first = register(&store, applicant("a@example.com", None), now(), &mut next)
            .await
            .expect("first");
        let second = register(&store, applicant("b@example.com", None), now(), &mut next)
            .await
            .expect("second");
        assert_eq!(first.referral_code.as_str(), "ANA-AAAAAAA");
        assert_eq!(second.referral_code.as_str(), "ANA-BBBBBBB");
    }

    #[tokio::test]
    async fn an_existing_email_keeps_its_code_and_gains_the_user_id() {
        let dir = tempfile::tempdir().expect("dir");
        let store = EmbeddedStore::open(dir.path(), crate::stores::embedded_schema())
            .await
            .expect("store");
        let external = register(&store, applicant("a@example.com", None), now(), random_code)
            .await
            .expect("external");
        let internal = register(
            &store,
            applicant("a@example.com", Some("acc-1")),
            now(),
            random_code,
        )
        .await
        .expect("internal");
        assert_eq!(internal.referral_code, external.referral_code);
        assert_eq!(internal.user_id.as_deref(), Some("acc-1"));
    }
}
