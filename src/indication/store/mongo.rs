//! Users are documents keyed by their hash (`_id`, unique by nature). An indicated user's
//! document also carries the ledger entries and credit events about it, so that register and
//! the credit unlock are each one single-document write: atomic on a standalone server.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::{
    Collection,
    bson::{Bson, Decimal128, Document, doc, oid::ObjectId},
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};

use super::{IndicationStore, RegisterOutcome, UsersCreated};
use crate::{
    callbacks::store::mongo::CallbackDoc,
    cursor::Cursor,
    email::Email,
    indication::domain::{
        CreditStep, CreditTerms, EmailIndication, IndicatorCredit, LedgerEntry, LedgerOperation,
        Payment, ProgramFigures, Registration, User, UserHash,
    },
    money::Money,
    programs::ProgramId,
    storage::{
        StoreError,
        mongo::{
            BULK_CHUNK, Deadline, Gather, Index, IndexKind, Migration, MongoStore, Schema, USERS,
            from_bson_datetime, from_decimal128, insert_unordered, is_duplicate_key, store_error,
            to_bson, to_bson_datetime, to_decimal128,
        },
    },
};

pub(crate) const INDICATED_EMAILS: &str = "indicated_emails";
/// Each indicator's count of held + acquired credits per program (`program:indicator`).
pub(crate) const CAP_PLACES: &str = "indicator_credits";

/// The users' indexes, and migration 2: figures and cap counts of credits stored before them.
pub(crate) fn schema() -> Schema {
    let index = |name, keys| Index::new(USERS, name, keys, IndexKind::Plain);
    Schema {
        indexes: vec![
            // An indicator's indicated users in list order: a page is one index range.
            index(
                "user_indicator_created_at_id",
                doc! { "user_indicator": 1, "created_at": 1, "_id": 1 },
            ),
            index(
                "program_id_credit_status",
                doc! { "program_id": 1, "credit.status": 1 },
            ),
            // Held credits by release time, for the release worker.
            index(
                "credit_status_release_at",
                doc! { "credit.status": 1, "credit.release_at": 1 },
            ),
        ],
        migrations: vec![Migration {
            version: 2,
            name: "signup credits and cap counts of earlier credits",
            run: Box::new(|store| Box::pin(store.count_earlier_credits())),
        }],
    }
}

/// Where the indicator's credit for this user stands, as stored in `credit.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CreditState {
    Pending,
    Held,
    Acquired,
    Capped,
}

#[derive(Debug, Serialize, Deserialize)]
struct CreditDoc {
    status: CreditState,
    amount: Option<Decimal128>,
    acquired_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    held_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    release_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    capped_at: Option<mongodb::bson::DateTime>,
}

impl CreditDoc {
    fn from_credit(credit: &IndicatorCredit) -> Result<Self, StoreError> {
        let mut doc = Self {
            status: CreditState::Pending,
            amount: None,
            acquired_at: None,
            held_at: None,
            release_at: None,
            capped_at: None,
        };
        match credit {
            IndicatorCredit::Pending => {}
            IndicatorCredit::Held {
                amount,
                held_at,
                release_at,
            } => {
                doc.status = CreditState::Held;
                doc.amount = Some(to_decimal128(*amount)?);
                doc.held_at = Some(to_bson_datetime(*held_at));
                doc.release_at = Some(to_bson_datetime(*release_at));
            }
            IndicatorCredit::Acquired { amount, at } => {
                doc.status = CreditState::Acquired;
                doc.amount = Some(to_decimal128(*amount)?);
                doc.acquired_at = Some(to_bson_datetime(*at));
            }
            IndicatorCredit::Capped { at } => {
                doc.status = CreditState::Capped;
                doc.amount = Some(to_decimal128(Money::ZERO)?);
                doc.capped_at = Some(to_bson_datetime(*at));
            }
        }
        Ok(doc)
    }

    fn into_credit(self, hash: &str) -> Result<IndicatorCredit, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("user {hash}: bad credit"));
        Ok(match (self.status, self.amount) {
            (CreditState::Pending, _) => IndicatorCredit::Pending,
            (CreditState::Held, Some(amount)) => IndicatorCredit::Held {
                amount: from_decimal128(amount)?,
                held_at: from_bson_datetime(self.held_at.ok_or_else(corrupt)?)?,
                release_at: from_bson_datetime(self.release_at.ok_or_else(corrupt)?)?,
            },
            (CreditState::Acquired, Some(amount)) => IndicatorCredit::Acquired {
                amount: from_decimal128(amount)?,
                at: from_bson_datetime(self.acquired_at.ok_or_else(corrupt)?)?,
            },
            (CreditState::Capped, _) => IndicatorCredit::Capped {
                at: from_bson_datetime(self.capped_at.ok_or_else(corrupt)?)?,
            },
            (_, None) => return Err(corrupt()),
        })
    }
}

/// The filter that holds only while the user's credit is still `credit`: its status and, for a
/// held credit, its release time (a credit cancelled and held again has another).
fn credit_filter(hash: &UserHash, credit: &IndicatorCredit) -> Result<Document, StoreError> {
    let mut filter = doc! {
        "_id": hash.as_str(),
        "credit.status": to_bson(&CreditDoc::from_credit(credit)?.status)?,
    };
    if let IndicatorCredit::Held { release_at, .. } = credit {
        filter.insert("credit.release_at", to_bson_datetime(*release_at));
    }
    Ok(filter)
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
    /// What the indicated user received at signup, for the program figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signup_credit: Option<Decimal128>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ledger: Vec<LedgerDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    callbacks: Vec<CallbackDoc>,
}

impl UserDoc {
    fn from_user(user: &User) -> Result<Self, StoreError> {
        let credit = user
            .credit
            .as_ref()
            .map(CreditDoc::from_credit)
            .transpose()?;
        Ok(Self {
            hash: user.hash.to_string(),
            user_indicator: user.indicator.as_ref().map(ToString::to_string),
            program_id: user.program_id.map(ProgramId::object_id),
            total_amount_paid: to_decimal128(user.total_amount_paid)?,
            created_at: to_bson_datetime(user.created_at),
            credit,
            signup_credit: None,
            ledger: Vec::new(),
            callbacks: Vec::new(),
        })
    }

    fn into_user(self) -> Result<User, StoreError> {
        let credit = self
            .credit
            .map(|credit| credit.into_credit(&self.hash))
            .transpose()?;
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

/// How often a payment re-reads a credit that changed between its read and its write.
const MAX_CREDIT_RACES: usize = 16;

/// A sum from an aggregation: Decimal128, or a plain 0 when nothing was summed.
fn money_of(value: Option<&Bson>) -> Result<Money, StoreError> {
    match value {
        Some(Bson::Decimal128(amount)) => from_decimal128(*amount),
        _ => Ok(Money::ZERO),
    }
}

fn figures_overflow() -> StoreError {
    StoreError::Corrupt("figures out of range".to_owned())
}

impl MongoStore {
    /// The figures of the users matching `filter`, per program: one aggregation grouping them
    /// by program and credit state, counting them and summing their credits and signup credits.
    async fn credit_figures(
        &self,
        filter: Document,
    ) -> Result<Vec<(Option<ProgramId>, ProgramFigures)>, StoreError> {
        let pipeline = [
            doc! { "$match": filter },
            doc! { "$group": {
                "_id": { "program": "$program_id", "status": "$credit.status" },
                "users": { "$sum": 1 },
                "amount": { "$sum": "$credit.amount" },
                "signup": { "$sum": "$signup_credit" },
            } },
        ];
        let groups: Vec<Document> = self
            .users()
            .aggregate(pipeline)
            .all_within(self.timeout)
            .await?;
        let mut by_program: Vec<(Option<ProgramId>, ProgramFigures)> = Vec::new();
        for group in groups {
            let id = group.get_document("_id").ok();
            let program = id
                .and_then(|id| id.get_object_id("program").ok())
                .map(ProgramId::from_object_id);
            let status: Option<CreditState> = match id.and_then(|id| id.get("status")) {
                Some(status @ Bson::String(_)) => Some(
                    mongodb::bson::from_bson(status.clone())
                        .map_err(|e| StoreError::Corrupt(format!("credit status: {e}")))?,
                ),
                _ => None,
            };
            let users = match group.get("users") {
                Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
                Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
                _ => 0,
            };
            let amount = money_of(group.get("amount"))?;
            let mut figures = ProgramFigures {
                users,
                signup_credit_total: money_of(group.get("signup"))?,
                ..ProgramFigures::default()
            };
            if let Some(status) = status {
                figures.indicated_users = users;
                match status {
                    CreditState::Pending => figures.pending = users,
                    CreditState::Held => {
                        figures.held = users;
                        figures.held_credit_total = amount;
                    }
                    CreditState::Acquired => {
                        figures.acquired = users;
                        figures.acquired_credit_total = amount;
                    }
                    CreditState::Capped => figures.capped = users,
                }
            }
            match by_program.iter_mut().find(|(p, _)| *p == program) {
                Some((_, total)) => total.add(&figures).ok_or_else(figures_overflow)?,
                None => by_program.push((program, figures)),
            }
        }
        Ok(by_program)
    }

    fn cap_places(&self) -> Collection<Document> {
        self.db.collection(CAP_PLACES)
    }

    /// Takes one of the indicator's places under its cap (or, with no cap, counts one):
    /// `false` when the cap is full. One conditional update moves the count only below the cap;
    /// the first place of an indicator is an insert, and an insert that loses to another is
    /// followed by the conditional update again.
    async fn take_cap_place(&self, terms: &CreditTerms) -> Result<bool, StoreError> {
        let key = terms.cap_key();
        let filter = match terms.cap {
            Some(cap) => doc! { "_id": &key, "count": { "$lt": i64::from(cap.get()) } },
            None => doc! { "_id": &key },
        };
        let inc = doc! { "$inc": { "count": 1_i64 } };
        let moved = |result: mongodb::results::UpdateResult| result.matched_count == 1;
        if moved(
            self.cap_places()
                .update_one(filter.clone(), inc.clone())
                .within(self.timeout)
                .await?,
        ) {
            return Ok(true);
        }
        match self
            .cap_places()
            .insert_one(doc! { "_id": &key, "count": 1_i64 })
            .answered_within(self.timeout)
            .await?
        {
            Ok(_) => Ok(true),
            Err(err) if is_duplicate_key(&err) => Ok(moved(
                self.cap_places()
                    .update_one(filter, inc)
                    .within(self.timeout)
                    .await?,
            )),
            Err(err) => Err(store_error(err)),
        }
    }

    async fn give_back_cap_place(&self, terms: &CreditTerms) -> Result<(), StoreError> {
        self.cap_places()
            .update_one(
                doc! { "_id": terms.cap_key(), "count": { "$gt": 0_i64 } },
                doc! { "$inc": { "count": -1_i64 } },
            )
            .within(self.timeout)
            .await?;
        Ok(())
    }

    /// Stores the total under `filter` alone; `None` when the filter no longer matches.
    async fn set_total(
        &self,
        filter: Document,
        total: Decimal128,
    ) -> Result<Option<User>, StoreError> {
        self.users()
            .find_one_and_update(filter, doc! { "$set": { "total_amount_paid": total } })
            .projection(user_projection())
            .return_document(ReturnDocument::After)
            .within(self.timeout)
            .await?
            .map(UserDoc::into_user)
            .transpose()
    }

    /// Takes `user`'s credit through `step` with one conditional update under `filter` (the
    /// state the step was decided on): the credit, the ledger entry, the event and, for a
    /// payment, the total. A step that needs a place under the cap takes it first and becomes
    /// `capped` when the cap is full; a place taken for an update that then misses is given
    /// back, and a cancellation gives its place back after its update. A crash between the two
    /// writes leaves the count one too high: an indicator credited less, never more. `None`
    /// when the filter no longer matched: the caller reads again.
    async fn take_step(
        &self,
        user: &User,
        terms: &CreditTerms,
        step: CreditStep,
        total: Option<Decimal128>,
        filter: Document,
    ) -> Result<Option<(User, CreditStep)>, StoreError> {
        let Some(from) = &user.credit else {
            return Ok(None);
        };
        let delta = step.cap_delta(from);
        let step = if delta > 0 && !self.take_cap_place(terms).await? {
            terms.capped()
        } else {
            step
        };
        let mut set = doc! { "credit": to_bson(&CreditDoc::from_credit(&step.credit)?)? };
        if let Some(total) = total {
            set.insert("total_amount_paid", total);
        }
        let mut push = doc! { "ledger": LedgerDoc::to_document(&step.ledger)? };
        if let Some(event) = &step.event {
            push.insert("callbacks", CallbackDoc::to_document(event)?);
        }
        let updated = self
            .users()
            .find_one_and_update(filter, doc! { "$set": set, "$push": push })
            .projection(user_projection())
            .return_document(ReturnDocument::After)
            .within(self.timeout)
            .await;
        let took_place = delta > 0 && step.credit.counts_toward_cap();
        // An error leaves the outcome unknown (the update may have applied and its answer been
        // lost): the place is kept, so the count errs high — credited less, never more.
        let updated = updated?;
        let Some(doc) = updated else {
            if took_place {
                self.give_back_cap_place(terms).await?;
            }
            return Ok(None);
        };
        if step.cap_delta(from) < 0 {
            self.give_back_cap_place(terms).await?;
        }
        Ok(Some((doc.into_user()?, step)))
    }

    /// Gives indicated users stored before the program figures existed their `signup_credit`
    /// (from their ledger), and counts their held and acquired credits toward their
    /// indicator's cap. The count moves before the mark, so a crash in between, or two
    /// instances starting at once, leave it too high: an indicator credited less, never more.
    async fn count_earlier_credits(&self) -> Result<(), StoreError> {
        let statuses = [
            CreditState::Pending,
            CreditState::Held,
            CreditState::Acquired,
            CreditState::Capped,
        ]
        .iter()
        .map(to_bson)
        .collect::<Result<Vec<_>, _>>()?;
        let earlier: Vec<UserDoc> = self
            .users()
            .find(doc! {
                "credit.status": { "$in": statuses },
                "signup_credit": { "$exists": false },
            })
            .projection(doc! { "callbacks": 0 })
            .all_within(self.timeout)
            .await?;
        for doc in earlier {
            let signup = doc
                .ledger
                .iter()
                .find(|entry| entry.operation == LedgerOperation::SignupCredit)
                .map_or(to_decimal128(Money::ZERO), |entry| Ok(entry.amount))?;
            let hash = doc.hash.clone();
            let user = doc.into_user()?;
            if let (Some(program), Some(indicator), Some(credit)) =
                (user.program_id, &user.indicator, &user.credit)
                && credit.counts_toward_cap()
            {
                self.cap_places()
                    .update_one(
                        doc! { "_id": format!("{program}:{indicator}") },
                        doc! { "$inc": { "count": 1_i64 } },
                    )
                    .upsert(true)
                    .within(self.timeout)
                    .await?;
            }
            self.users()
                .update_one(
                    doc! { "_id": hash, "signup_credit": { "$exists": false } },
                    doc! { "$set": { "signup_credit": signup } },
                )
                .within(self.timeout)
                .await?;
        }
        Ok(())
    }

    /// Up to `limit` users matching `filter`, in list order.
    async fn indicated_page(
        &self,
        filter: Document,
        limit: usize,
    ) -> Result<Vec<UserDoc>, StoreError> {
        self.users()
            .find(filter)
            .projection(user_projection())
            .sort(doc! { "created_at": 1, "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .all_within(self.timeout)
            .await
    }

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
            .within(self.timeout)
            .await?
            .map(UserDoc::into_user)
            .transpose()
    }

    async fn existing_hashes(&self, hashes: &[UserHash]) -> Result<HashSet<String>, StoreError> {
        let mut existing = HashSet::new();
        for chunk in hashes.chunks(BULK_CHUNK) {
            let ids: Vec<&str> = chunk.iter().map(UserHash::as_str).collect();
            let docs: Vec<Document> = self
                .db
                .collection::<Document>(USERS)
                .find(doc! { "_id": { "$in": ids } })
                .projection(doc! { "_id": 1 })
                .all_within(self.timeout)
                .await?;
            existing.extend(
                docs.iter()
                    .filter_map(|d| d.get_str("_id").ok().map(str::to_owned)),
            );
        }
        Ok(existing)
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
        let raced = insert_unordered(&self.users(), docs, self.timeout).await?;
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
        doc.signup_credit = Some(to_decimal128(registration.event.amount)?);
        match self
            .users()
            .insert_one(doc)
            .answered_within(self.timeout)
            .await?
        {
            Ok(_) => Ok(RegisterOutcome::Registered),
            Err(err) if is_duplicate_key(&err) => {
                self.add_program_users(program, -1).await?;
                Ok(RegisterOutcome::AlreadyRegistered)
            }
            // The insert may have applied and its answer been lost: the count stays, erring
            // high (the program cannot be deleted), never low.
            Err(err) => Err(store_error(err)),
        }
    }

    async fn record_payment(
        &self,
        hash: &UserHash,
        total: Money,
        terms: Option<CreditTerms>,
    ) -> Result<Payment, StoreError> {
        let total_doc = to_decimal128(total)?;
        for _ in 0..MAX_CREDIT_RACES {
            let Some(user) = self.user(hash).await? else {
                return Ok(Payment {
                    user: None,
                    step: None,
                });
            };
            let (Some(terms), Some(credit)) = (&terms, &user.credit) else {
                let user = self
                    .set_total(doc! { "_id": hash.as_str() }, total_doc)
                    .await?;
                return Ok(Payment { user, step: None });
            };
            let step = match terms.on_payment(credit, total) {
                Some(step) => {
                    self.take_step(
                        &user,
                        terms,
                        step,
                        Some(total_doc),
                        credit_filter(hash, credit)?,
                    )
                    .await?
                }
                // The total alone, while the credit is still in the state it was decided on.
                None => match self
                    .set_total(credit_filter(hash, credit)?, total_doc)
                    .await?
                {
                    Some(user) => {
                        return Ok(Payment {
                            user: Some(user),
                            step: None,
                        });
                    }
                    None => continue,
                },
            };
            if let Some((user, step)) = step {
                return Ok(Payment {
                    user: Some(user),
                    step: Some(step),
                });
            }
        }
        Err(StoreError::Backend(
            "the user's credit kept changing under this payment".to_owned(),
        ))
    }

    async fn due_holds(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<User>, StoreError> {
        let docs: Vec<UserDoc> = self
            .users()
            .find(doc! {
                "credit.status": to_bson(&CreditState::Held)?,
                "credit.release_at": { "$lte": to_bson_datetime(now) },
            })
            .projection(user_projection())
            .sort(doc! { "credit.release_at": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .all_within(self.timeout)
            .await?;
        docs.into_iter().map(UserDoc::into_user).collect()
    }

    async fn release(
        &self,
        hash: &UserHash,
        terms: CreditTerms,
    ) -> Result<Option<CreditStep>, StoreError> {
        let Some(user) = self.user(hash).await? else {
            return Ok(None);
        };
        let Some(credit) = &user.credit else {
            return Ok(None);
        };
        let Some(step) = terms.on_release(credit, user.total_amount_paid) else {
            return Ok(None);
        };
        // The decision read the total too: it must not have moved either.
        let mut filter = credit_filter(hash, credit)?;
        filter.insert("total_amount_paid", to_decimal128(user.total_amount_paid)?);
        Ok(self
            .take_step(&user, &terms, step, None, filter)
            .await?
            .map(|(_, step)| step))
    }

    async fn program_figures(&self, program: ProgramId) -> Result<ProgramFigures, StoreError> {
        let groups = self
            .credit_figures(doc! { "program_id": program.object_id() })
            .await?;
        let mut figures = ProgramFigures::default();
        for (_, group) in groups {
            figures.add(&group).ok_or_else(figures_overflow)?;
        }
        Ok(figures)
    }

    async fn indicated_figures(
        &self,
        indicator: &UserHash,
    ) -> Result<Vec<(Option<ProgramId>, ProgramFigures)>, StoreError> {
        self.credit_figures(doc! { "user_indicator": indicator.as_str() })
            .await
    }

    /// Two range reads of the index `{user_indicator, created_at, _id}` rather than one `$or`
    /// (which not every planner serves from the index): the rest of the cursor's millisecond,
    /// then what comes after it.
    async fn indicated_by(
        &self,
        indicator: &UserHash,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        let mut docs: Vec<UserDoc> = Vec::with_capacity(limit);
        let mut rest = doc! { "user_indicator": indicator.as_str() };
        if let Some(cursor) = after {
            let at = to_bson_datetime(cursor.created_at);
            docs = self
                .indicated_page(
                    doc! {
                        "user_indicator": indicator.as_str(),
                        "created_at": at,
                        "_id": { "$gt": cursor.id.as_str() },
                    },
                    limit,
                )
                .await?;
            rest.insert("created_at", doc! { "$gt": at });
        }
        if docs.len() < limit {
            docs.extend(self.indicated_page(rest, limit - docs.len()).await?);
        }
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
        // Unordered: every address is tried; the ones already indicated fail on `_id`.
        let count = docs.len();
        let taken = insert_unordered(&self.emails(), docs, self.timeout).await?;
        let saved = (0..count).map(|index| !taken.contains(&index)).collect();
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
            .all_within(self.timeout)
            .await?;
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
                .all_within(self.timeout)
                .await?;
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
