//! Creating referrers: a new code for a new e-mail, the existing code otherwise, and collisions
//! retried, never returned.

use super::{
    domain::{ReferralCode, Referrer},
    store::{ReferralStore, ReferrerConflict},
};
use crate::{email::Email, storage::StoreError};

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
    mut next_code: impl FnMut(&Applicant) -> ReferralCode + Send,
) -> Result<Referrer, StoreError> {
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
    )))
}

async fn existing(
    store: &dyn ReferralStore,
    applicant: &Applicant,
) -> Result<Option<Referrer>, StoreError> {
    if let Some(user_id) = &applicant.user_id {
        if let Some(found) = store.referrer_by_user(user_id).await? {
            return Ok(Some(found));
        }
        return store.link_user(&applicant.email, user_id).await;
    }
    store.referrer_by_email(&applicant.email).await
}

/// A generated code, from the applicant's first name or e-mail.
pub fn random_code(applicant: &Applicant) -> ReferralCode {
    ReferralCode::generate(applicant.first_name.as_deref(), &applicant.email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::EmbeddedStore;

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
        let store = EmbeddedStore::open(dir.path()).await.expect("store");
        let mut codes = ["ANA-AAAAAAA", "ana-aaaaaaa", "ANA-AAAAAAA", "ANA-BBBBBBB"]
            .into_iter()
            .map(|c| ReferralCode::parse(c).expect("code"));
        let mut next = move |_: &Applicant| codes.next().expect("enough codes");
        let first = register(&store, applicant("a@example.com", None), &mut next)
            .await
            .expect("first");
        let second = register(&store, applicant("b@example.com", None), &mut next)
            .await
            .expect("second");
        assert_eq!(first.referral_code.as_str(), "ANA-AAAAAAA");
        assert_eq!(second.referral_code.as_str(), "ANA-BBBBBBB");
    }

    #[tokio::test]
    async fn an_existing_email_keeps_its_code_and_gains_the_user_id() {
        let dir = tempfile::tempdir().expect("dir");
        let store = EmbeddedStore::open(dir.path()).await.expect("store");
        let external = register(&store, applicant("a@example.com", None), random_code)
            .await
            .expect("external");
        let internal = register(
            &store,
            applicant("a@example.com", Some("acc-1")),
            random_code,
        )
        .await
        .expect("internal");
        assert_eq!(internal.referral_code, external.referral_code);
        assert_eq!(internal.user_id.as_deref(), Some("acc-1"));
    }
}
