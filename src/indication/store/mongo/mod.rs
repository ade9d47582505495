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

mod credits;
mod figures;
mod migrations;
mod records;

use credits::MAX_CREDIT_RACES;
use figures::{DUE, dues};
use records::*;

use super::{
    CreditFilter, CreditPage, Decided, IndicationStore, LedgerFilter, LedgerPage, LedgerScan,
    RegisterOutcome, UsersCreated,
};
// The store speaks the capability's whole domain.
use crate::indication::domain::*;
use crate::{
    cursor::Cursor,
    email::Email,
    joint::mongo::{EventInUser, event_document, event_in_user, feed_document},
    money::{Money, SignedMoney},
    programs::ProgramId,
    storage::{
        StoreError,
        mongo::{
            BULK_CHUNK, CARRIED, Carried, Deadline, Gather, Index, IndexKind, Migration,
            MongoStore, Schema, USERS, from_bson_datetime, from_decimal128, insert_unordered,
            is_duplicate_key, store_error, to_bson, to_bson_datetime, to_decimal128,
        },
    },
};

pub(crate) const INDICATED_EMAILS: &str = "indicated_emails";
/// Each indicator's count of held + acquired credits per program (`program:indicator`).
pub(crate) const CAP_PLACES: &str = "indicator_credits";

/// The users' and the figures' indexes, migration 2 (signup credits and cap counts of credits
/// stored before them) and migration 8 (the figures' totals of users stored before them).
pub(crate) fn schema() -> Schema {
    let index = |name, keys| Index::new(USERS, name, keys, IndexKind::Plain);
    let due = |name, keys| Index::new(USERS, name, keys, IndexKind::Sparse);
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
            // The admin list of credits, by status in registration order.
            index(
                "credit_status_created_at_id",
                doc! { "credit.status": 1, "created_at": 1, "_id": 1 },
            ),
            // An indicator's registrations in a program within an hour (`velocity`).
            index(
                "user_indicator_program_id_created_at",
                doc! { "user_indicator": 1, "program_id": 1, "created_at": 1 },
            ),
            // An indicator's reversed credits in a program (`previous_reversal`).
            index(
                "user_indicator_program_id_credit_status",
                doc! { "user_indicator": 1, "program_id": 1, "credit.status": 1 },
            ),
            // The figures' changes not folded yet, by total and by indicator.
            due("figures_due_key", doc! { "figures_due.key": 1 }),
            due("figures_due_indicator", doc! { "figures_due.indicator": 1 }),
            Index::new(
                figures::FIGURES,
                "indicator",
                doc! { "indicator": 1 },
                IndexKind::Sparse,
            ),
            Index::new(figures::IMPORTS, "key", doc! { "key": 1 }, IndexKind::Plain),
        ],
        migrations: vec![
            Migration {
                version: 2,
                name: "signup credits and cap counts of earlier credits",
                run: Box::new(|store| Box::pin(store.count_earlier_credits())),
            },
            Migration {
                version: 8,
                name: "figures' totals of earlier users",
                run: Box::new(|store| Box::pin(store.total_earlier_figures())),
            },
        ],
    }
}

impl MongoStore {
    /// Up to `limit` users matching `filter` after `after`, in list order: two range reads of
    /// an index ending in `{created_at, _id}` rather than one `$or` (which not every planner
    /// serves from the index): the rest of the cursor's millisecond, then what comes after it.
    async fn page_after(
        &self,
        filter: Document,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        let mut docs: Vec<UserDoc> = Vec::with_capacity(limit);
        let mut rest = filter.clone();
        if let Some(cursor) = after {
            let at = to_bson_datetime(cursor.created_at);
            let mut same_ms = filter;
            same_ms.insert("created_at", at);
            same_ms.insert("_id", doc! { "$gt": cursor.id.as_str() });
            docs = self.indicated_page(same_ms, limit).await?;
            rest.insert("created_at", doc! { "$gt": at });
        }
        if docs.len() < limit {
            docs.extend(self.indicated_page(rest, limit - docs.len()).await?);
        }
        docs.into_iter().map(UserDoc::into_user).collect()
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
        // The program's figures count the users in with one change for the whole batch.
        let batch = match program {
            Some(id) => Some(self.begin_import(id, &missing, at).await?),
            None => None,
        };
        let docs = missing
            .iter()
            .map(|hash| {
                let mut doc = UserDoc::from_user(&User::imported(hash.clone(), program, at))?;
                doc.import_batch = batch;
                Ok(doc)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let raced = insert_unordered(&self.users(), docs, self.timeout).await?;
        if let Some(batch) = batch {
            self.end_import(batch, missing.len().saturating_sub(raced.len()))
                .await?;
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
        doc.callbacks = vec![event_in_user(&registration.event)?];
        doc.events = vec![feed_document(&registration.feed)?];
        doc.signup_credit = Some(to_decimal128(registration.event.amount)?);
        doc.figures_due = dues(
            None,
            &registration.user,
            registration.event.amount.magnitude(),
        )?;
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
            let step = match terms.on_payment(credit, user.total_amount_paid, total) {
                Some(step) => {
                    // A reversed credit crosses again only from a total below the target: the
                    // total it was decided on must not have moved either.
                    let mut filter = credit_filter(hash, credit)?;
                    if let IndicatorCredit::Reversed { .. } = credit {
                        filter.insert("total_amount_paid", to_decimal128(user.total_amount_paid)?);
                    }
                    self.take_step(&user, terms, step, Some(total_doc), filter)
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
                "credit.status": to_bson(&CreditStatus::Held)?,
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

    /// The program's total and the changes due to it: a few index reads.
    async fn program_figures(&self, program: ProgramId) -> Result<ProgramFigures, StoreError> {
        self.program_total(program).await
    }

    /// The indicator's totals and the changes due to them: a few index reads.
    async fn indicated_figures(
        &self,
        indicator: &UserHash,
    ) -> Result<Vec<(Option<ProgramId>, ProgramFigures)>, StoreError> {
        self.indicator_totals(indicator).await
    }

    async fn fold_figures(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.fold_due(now).await
    }

    /// Two range reads of the index `{user_indicator, created_at, _id}`.
    async fn indicated_by(
        &self,
        indicator: &UserHash,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        self.page_after(doc! { "user_indicator": indicator.as_str() }, after, limit)
            .await
    }

    async fn decide(
        &self,
        hash: &UserHash,
        terms: CreditTerms,
        action: AdminMove,
        decision: Decision,
    ) -> Result<Decided, StoreError> {
        for _ in 0..MAX_CREDIT_RACES {
            let Some(user) = self.user(hash).await? else {
                return Ok(Decided::NotFound);
            };
            let Some(credit) = &user.credit else {
                return Ok(Decided::NotFound);
            };
            let step = match terms.on_decision(credit, action, decision.clone()) {
                Ok(step) => step,
                Err(status) => return Ok(Decided::Refused(status)),
            };
            let filter = credit_filter(hash, credit)?;
            if let Some((user, step)) = self.take_step(&user, &terms, step, None, filter).await? {
                return Ok(Decided::Moved(Box::new((user, step))));
            }
        }
        Err(StoreError::Backend(
            "the user's credit kept changing under this decision".to_owned(),
        ))
    }

    async fn registrations_between(
        &self,
        program: ProgramId,
        indicator: &UserHash,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, StoreError> {
        self.users()
            .count_documents(doc! {
                "user_indicator": indicator.as_str(),
                "program_id": program.object_id(),
                "created_at": { "$gte": to_bson_datetime(from), "$lte": to_bson_datetime(to) },
            })
            .limit(limit)
            .within(self.timeout)
            .await
    }

    async fn reversed_credits(
        &self,
        program: ProgramId,
        indicator: &UserHash,
    ) -> Result<u64, StoreError> {
        self.users()
            .count_documents(doc! {
                "user_indicator": indicator.as_str(),
                "program_id": program.object_id(),
                "credit.status": to_bson(&CreditStatus::Reversed)?,
            })
            .within(self.timeout)
            .await
    }

    async fn credits(
        &self,
        filter: &CreditFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<CreditPage, StoreError> {
        let statuses = match filter.status {
            Some(status) => vec![status],
            None => CreditStatus::ALL.to_vec(),
        };
        let statuses = statuses
            .into_iter()
            .filter(|status| *status != CreditStatus::None)
            .map(|state| to_bson(&state))
            .collect::<Result<Vec<_>, _>>()?;
        let mut query = doc! { "credit.status": { "$in": statuses } };
        if let Some(program) = filter.program {
            query.insert("program_id", program.object_id());
        }
        if let Some(indicator) = &filter.indicator {
            query.insert("user_indicator", indicator.as_str());
        }
        if filter.flagged {
            query.insert("credit.flags.0", doc! { "$exists": true });
        }
        let users = self
            .page_after(query, after, limit.saturating_add(1))
            .await?;
        Ok(CreditPage::of(users, limit))
    }

    async fn history(&self, hash: &UserHash) -> Result<Vec<LedgerEntry>, StoreError> {
        let doc = self
            .db
            .collection::<LedgerOnly>(USERS)
            .find_one(doc! { "_id": hash.as_str() })
            .projection(doc! { "ledger": 1 })
            .within(self.timeout)
            .await?;
        doc.map_or_else(Vec::new, |doc| doc.ledger)
            .into_iter()
            .map(LedgerDoc::into_entry)
            .collect()
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
}

#[async_trait]
impl LedgerScan for MongoStore {
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

    /// The users' ledgers by user hash, then the indicated e-mails' by address, a hundred
    /// documents a page: `after` is `u<hash>` or `e<address>`, the last document read.
    async fn ledger_page(
        &self,
        filter: &LedgerFilter,
        after: Option<String>,
    ) -> Result<LedgerPage, StoreError> {
        const DOCS: i64 = 100;
        let (collection, prefix, from) = match after.as_deref() {
            Some(position) if position.starts_with('e') => {
                (INDICATED_EMAILS, 'e', Some(position[1..].to_owned()))
            }
            Some(position) if position.starts_with('u') => {
                (USERS, 'u', Some(position[1..].to_owned()))
            }
            _ => (USERS, 'u', None),
        };
        let mut query = doc! { "ledger.0": { "$exists": true } };
        if let Some(from) = &from {
            query.insert("_id", doc! { "$gt": from });
        }
        if let Some(program) = filter.program {
            query.insert("ledger.program_id", program.object_id());
        }
        let docs: Vec<Document> = self
            .db
            .collection::<Document>(collection)
            .find(query)
            .projection(doc! { "ledger": 1 })
            .sort(doc! { "_id": 1 })
            .limit(DOCS)
            .all_within(self.timeout)
            .await?;
        let mut page = LedgerPage::default();
        for doc in &docs {
            let ledger: LedgerOnly = mongodb::bson::from_document(doc.clone())
                .map_err(|e| StoreError::Corrupt(format!("ledger: {e}")))?;
            for entry in ledger.ledger {
                let entry = entry.into_entry()?;
                if filter.matches(&entry) {
                    page.entries.push(entry);
                }
            }
        }
        let last = docs.last().and_then(|doc| doc.get_str("_id").ok());
        page.next = match (last, i64::try_from(docs.len()).unwrap_or(0) >= DOCS) {
            (Some(last), true) => Some(format!("{prefix}{last}")),
            // The users are done: the e-mails follow.
            _ if prefix == 'u' => Some("e".to_owned()),
            _ => None,
        };
        Ok(page)
    }
}
