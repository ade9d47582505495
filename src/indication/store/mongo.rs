//! Users are documents keyed by their hash (`_id`, unique by nature). An indicated user's
//! document also carries the ledger entries and credit events about it, so that register and
//! the credit unlock are each one single-document write: atomic on a standalone server.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::{
    Collection,
    bson::{Bson, Decimal128, Document, doc, oid::ObjectId},
    error::ErrorKind,
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};

use super::{IndicationStore, RegisterOutcome, UsersCreated};
use crate::{
    callbacks::store::mongo::CallbackDoc,
    email::Email,
    indication::domain::{
        EmailIndication, IndicatorCredit, LedgerEntry, LedgerOperation, Payment, Registration,
        Unlock, User, UserHash,
    },
    money::Money,
    programs::ProgramId,
    storage::{
        StoreError,
        mongo::{
            DUPLICATE_KEY, INDICATED_EMAILS, MongoStore, USERS, from_bson_datetime,
            from_decimal128, is_duplicate_key, store_error, to_bson, to_bson_datetime,
            to_decimal128,
        },
    },
};

/// Where the indicator's credit for this user stands, as stored in `credit.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CreditState {
    Pending,
    Acquired,
}

#[derive(Debug, Serialize, Deserialize)]
struct CreditDoc {
    status: CreditState,
    amount: Option<Decimal128>,
    acquired_at: Option<mongodb::bson::DateTime>,
}

/// A user as stored. `ledger` and `callbacks` are written with the document and read only by
/// the ledger and the outbox.
#[derive(Debug, Serialize, Deserialize)]
struct UserDoc {
    #[serde(rename = "_id")]
    hash: String,
    user_indicator: Option<String>,
    program_id: Option<ObjectId>,
    total_amount_paid: Decimal128,
    created_at: mongodb::bson::DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credit: Option<CreditDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ledger: Vec<LedgerDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    callbacks: Vec<CallbackDoc>,
}

impl UserDoc {
    fn from_user(user: &User) -> Result<Self, StoreError> {
        let credit = match &user.credit {
            None => None,
            Some(IndicatorCredit::Pending) => Some(CreditDoc {
                status: CreditState::Pending,
                amount: None,
                acquired_at: None,
            }),
            Some(IndicatorCredit::Acquired { amount, at }) => Some(CreditDoc {
                status: CreditState::Acquired,
                amount: Some(to_decimal128(*amount)?),
                acquired_at: Some(to_bson_datetime(*at)),
            }),
        };
        Ok(Self {
            hash: user.hash.to_string(),
            user_indicator: user.indicator.as_ref().map(ToString::to_string),
            program_id: user.program_id.map(ProgramId::object_id),
            total_amount_paid: to_decimal128(user.total_amount_paid)?,
            created_at: to_bson_datetime(user.created_at),
            credit,
            ledger: Vec::new(),
            callbacks: Vec::new(),
        })
    }

    fn into_user(self) -> Result<User, StoreError> {
        let credit = match self.credit {
            None => None,
            Some(credit) if credit.status == CreditState::Pending => Some(IndicatorCredit::Pending),
            Some(CreditDoc {
                amount: Some(amount),
                acquired_at: Some(at),
                ..
            }) => Some(IndicatorCredit::Acquired {
                amount: from_decimal128(amount)?,
                at: from_bson_datetime(at)?,
            }),
            Some(_) => {
                return Err(StoreError::Corrupt(format!(
                    "user {}: bad credit",
                    self.hash
                )));
            }
        };
        Ok(User {
            hash: UserHash::from_stored(self.hash),
            indicator: self.user_indicator.map(UserHash::from_stored),
            program_id: self.program_id.map(ProgramId::from_object_id),
            total_amount_paid: from_decimal128(self.total_amount_paid)?,
            created_at: from_bson_datetime(self.created_at)?,
            credit,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct LedgerDoc {
    operation: LedgerOperation,
    user_indicator: Option<String>,
    user_indicated: String,
    program_id: Option<ObjectId>,
    amount: Decimal128,
    created_at: mongodb::bson::DateTime,
}

impl LedgerDoc {
    fn from_entry(entry: &LedgerEntry) -> Result<Self, StoreError> {
        Ok(Self {
            operation: entry.operation,
            user_indicator: entry.user_indicator.clone(),
            user_indicated: entry.user_indicated.clone(),
            program_id: entry.program_id.map(ProgramId::object_id),
            amount: to_decimal128(entry.amount)?,
            created_at: to_bson_datetime(entry.created_at),
        })
    }

    fn to_document(entry: &LedgerEntry) -> Result<Document, StoreError> {
        mongodb::bson::to_document(&Self::from_entry(entry)?)
            .map_err(|e| StoreError::Backend(format!("cannot encode ledger entry: {e}")))
    }

    fn into_entry(self) -> Result<LedgerEntry, StoreError> {
        Ok(LedgerEntry {
            operation: self.operation,
            user_indicator: self.user_indicator,
            user_indicated: self.user_indicated,
            program_id: self.program_id.map(ProgramId::from_object_id),
            amount: from_decimal128(self.amount)?,
            created_at: from_bson_datetime(self.created_at)?,
        })
    }
}

/// An indicated e-mail, keyed by the address (unique across all indicators).
#[derive(Debug, Serialize, Deserialize)]
struct EmailDoc {
    #[serde(rename = "_id")]
    email: String,
    user_indicator: String,
    created_at: mongodb::bson::DateTime,
    #[serde(default)]
    ledger: Vec<LedgerDoc>,
}

#[derive(Deserialize)]
struct LedgerOnly {
    #[serde(default)]
    ledger: Vec<LedgerDoc>,
}

/// User reads leave out the ledger and the events.
fn user_projection() -> Document {
    doc! { "ledger": 0, "callbacks": 0 }
}

impl MongoStore {
    fn users(&self) -> Collection<UserDoc> {
        self.db.collection(USERS)
    }

    fn emails(&self) -> Collection<EmailDoc> {
        self.db.collection(INDICATED_EMAILS)
    }

    async fn find_user(&self, filter: Document) -> Result<Option<User>, StoreError> {
        self.users()
            .find_one(filter)
            .projection(user_projection())
            .await
            .map_err(store_error)?
            .map(UserDoc::into_user)
            .transpose()
    }

    async fn existing_hashes(&self, hashes: &[UserHash]) -> Result<HashSet<String>, StoreError> {
        let ids: Vec<&str> = hashes.iter().map(UserHash::as_str).collect();
        let docs: Vec<Document> = self
            .db
            .collection::<Document>(USERS)
            .find(doc! { "_id": { "$in": ids } })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(store_error)?
            .try_collect()
            .await
            .map_err(store_error)?;
        Ok(docs
            .iter()
            .filter_map(|d| d.get_str("_id").ok().map(str::to_owned))
            .collect())
    }
}

#[async_trait]
impl IndicationStore for MongoStore {
    async fn create_users(
        &self,
        hashes: Vec<UserHash>,
        program: Option<ProgramId>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<UsersCreated, StoreError> {
        let mut seen = HashSet::new();
        let hashes: Vec<UserHash> = hashes
            .into_iter()
            .filter(|h| seen.insert(h.clone()))
            .collect();
        let existing = self.existing_hashes(&hashes).await?;
        let (mut old, missing): (Vec<UserHash>, Vec<UserHash>) = hashes
            .into_iter()
            .partition(|h| existing.contains(h.as_str()));
        if missing.is_empty() {
            return Ok(UsersCreated {
                created: Vec::new(),
                existing: old,
            });
        }
        // Count the users into the program first: a crash before the insert leaves the count too
        // high, which only keeps the program from being deleted, never the reverse.
        let wanted = i64::try_from(missing.len()).unwrap_or(i64::MAX);
        let program = match program {
            Some(id) if self.add_program_users(id, wanted).await? => Some(id),
            _ => None,
        };
        let docs = missing
            .iter()
            .map(|hash| UserDoc::from_user(&User::imported(hash.clone(), program, at)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut raced = HashSet::new();
        if let Err(err) = self.users().insert_many(docs).ordered(false).await {
            let ErrorKind::InsertMany(failure) = &*err.kind else {
                return Err(store_error(err));
            };
            for write_error in failure.write_errors.iter().flatten() {
                if write_error.code != DUPLICATE_KEY {
                    return Err(store_error(err.clone()));
                }
                raced.insert(write_error.index);
            }
        }
        if let (Some(id), false) = (program, raced.is_empty()) {
            self.add_program_users(id, -i64::try_from(raced.len()).unwrap_or(0))
                .await?;
        }
        let mut created = Vec::new();
        for (index, hash) in missing.into_iter().enumerate() {
            if raced.contains(&index) {
                old.push(hash);
            } else {
                created.push(hash);
            }
        }
        Ok(UsersCreated {
            created,
            existing: old,
        })
    }

    async fn user(&self, hash: &UserHash) -> Result<Option<User>, StoreError> {
        self.find_user(doc! { "_id": hash.as_str() }).await
    }

    async fn register(&self, registration: Registration) -> Result<RegisterOutcome, StoreError> {
        let Some(program) = registration.user.program_id else {
            return Err(StoreError::Backend(
                "a registration needs a program".to_owned(),
            ));
        };
        if !self.add_program_users(program, 1).await? {
            return Ok(RegisterOutcome::ProgramNotFound);
        }
        let mut doc = UserDoc::from_user(&registration.user)?;
        doc.ledger = registration
            .ledger
            .iter()
            .map(LedgerDoc::from_entry)
            .collect::<Result<_, _>>()?;
        doc.callbacks = vec![CallbackDoc::from_event(&registration.event)?];
        match self.users().insert_one(doc).await {
            Ok(_) => Ok(RegisterOutcome::Registered),
            Err(err) if is_duplicate_key(&err) => {
                self.add_program_users(program, -1).await?;
                Ok(RegisterOutcome::AlreadyRegistered)
            }
            Err(err) => {
                self.add_program_users(program, -1).await?;
                Err(store_error(err))
            }
        }
    }

    async fn record_payment(
        &self,
        hash: &UserHash,
        total: Money,
        unlock: Option<Unlock>,
    ) -> Result<Payment, StoreError> {
        let total = to_decimal128(total)?;
        if let Some(unlock) = unlock {
            // The "credited" mark, the ledger entry and the event: one conditional write.
            let update = doc! {
                "$set": {
                    "total_amount_paid": total,
                    "credit.status": to_bson(&CreditState::Acquired)?,
                    "credit.amount": to_decimal128(unlock.amount)?,
                    "credit.acquired_at": to_bson_datetime(unlock.ledger.created_at),
                },
                "$push": {
                    "ledger": LedgerDoc::to_document(&unlock.ledger)?,
                    "callbacks": CallbackDoc::to_document(&unlock.event)?,
                },
            };
            let credited = self
                .users()
                .find_one_and_update(
                    doc! { "_id": hash.as_str(), "credit.status": to_bson(&CreditState::Pending)? },
                    update,
                )
                .projection(user_projection())
                .return_document(ReturnDocument::After)
                .await
                .map_err(store_error)?;
            if let Some(doc) = credited {
                return Ok(Payment {
                    user: Some(doc.into_user()?),
                    credited_now: true,
                });
            }
        }
        let user = self
            .users()
            .find_one_and_update(
                doc! { "_id": hash.as_str() },
                doc! { "$set": { "total_amount_paid": total } },
            )
            .projection(user_projection())
            .return_document(ReturnDocument::After)
            .await
            .map_err(store_error)?
            .map(UserDoc::into_user)
            .transpose()?;
        Ok(Payment {
            user,
            credited_now: false,
        })
    }

    async fn indicated_by(&self, indicator: &UserHash) -> Result<Vec<User>, StoreError> {
        let docs: Vec<UserDoc> = self
            .users()
            .find(doc! { "user_indicator": indicator.as_str() })
            .projection(user_projection())
            .sort(doc! { "created_at": 1, "_id": 1 })
            .await
            .map_err(store_error)?
            .try_collect()
            .await
            .map_err(store_error)?;
        docs.into_iter().map(UserDoc::into_user).collect()
    }

    async fn save_indications(
        &self,
        indications: Vec<EmailIndication>,
    ) -> Result<Vec<bool>, StoreError> {
        if indications.is_empty() {
            return Ok(Vec::new());
        }
        let docs = indications
            .iter()
            .map(|indication| {
                Ok(EmailDoc {
                    email: indication.email.to_string(),
                    user_indicator: indication.indicator.to_string(),
                    created_at: to_bson_datetime(indication.ledger.created_at),
                    ledger: vec![LedgerDoc::from_entry(&indication.ledger)?],
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut saved = vec![true; docs.len()];
        // Unordered: every address is tried; the ones already indicated fail on `_id`.
        if let Err(err) = self.emails().insert_many(docs).ordered(false).await {
            let ErrorKind::InsertMany(failure) = &*err.kind else {
                return Err(store_error(err));
            };
            if failure.write_concern_error.is_some() {
                return Err(store_error(err.clone()));
            }
            for write_error in failure.write_errors.iter().flatten() {
                if write_error.code != DUPLICATE_KEY {
                    return Err(store_error(err.clone()));
                }
                if let Some(slot) = saved.get_mut(write_error.index) {
                    *slot = false;
                }
            }
        }
        Ok(saved)
    }

    async fn indicators_of(
        &self,
        emails: &[Email],
    ) -> Result<HashMap<Email, UserHash>, StoreError> {
        let ids: Vec<Bson> = emails.iter().map(|e| Bson::String(e.to_string())).collect();
        let docs: Vec<EmailDoc> = self
            .emails()
            .find(doc! { "_id": { "$in": ids } })
            .projection(doc! { "ledger": 0 })
            .await
            .map_err(store_error)?
            .try_collect()
            .await
            .map_err(store_error)?;
        Ok(docs
            .into_iter()
            .map(|d| {
                (
                    Email::from_stored(d.email),
                    UserHash::from_stored(d.user_indicator),
                )
            })
            .collect())
    }

    async fn ledger(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut entries = Vec::new();
        for collection in [USERS, INDICATED_EMAILS] {
            let docs: Vec<LedgerOnly> = self
                .db
                .collection::<LedgerOnly>(collection)
                .find(doc! { "ledger.0": { "$exists": true } })
                .projection(doc! { "ledger": 1 })
                .await
                .map_err(store_error)?
                .try_collect()
                .await
                .map_err(store_error)?;
            for doc in docs {
                for entry in doc.ledger {
                    entries.push(entry.into_entry()?);
                }
            }
        }
        entries.sort_by_key(|e| e.created_at);
        Ok(entries)
    }
}
