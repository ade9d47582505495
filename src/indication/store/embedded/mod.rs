//! In the embedded store each state change is one redb write transaction over normalised
//! tables: users, the indicated-by index, the ledger, e-mails and the callback outbox. redb
//! runs one write transaction at a time, so each check made inside one still holds at commit.

use std::{
    collections::{HashMap, HashSet},
    ops::Bound,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{
    MultimapTableDefinition, ReadableMultimapTable, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

mod credits;
mod figures;
mod list;
mod migrations;
mod records;

use credits::*;
use figures::*;
use list::*;
use migrations::*;
use records::*;

use super::{
    CreditFilter, CreditPage, Decided, IndicationStore, LEDGER_PAGE, LedgerFilter, LedgerPage,
    LedgerScan, RegisterOutcome, UsersCreated,
};
// The store speaks the capability's whole domain.
use crate::indication::domain::*;
use crate::{
    cursor::Cursor,
    email::Email,
    joint::embedded::{count_program_users, program_users, queue_event, record_event},
    money::{Money, SignedMoney},
    programs::ProgramId,
    storage::{
        StoreError,
        embedded::{
            EmbeddedStore, JsonTable, Migration, Schema, backend, decode, encode, get, millis,
            money_text, opt_millis, opt_program_id, put, ride,
        },
    },
};

/// Users by hash.
pub(crate) const USERS: JsonTable = TableDefinition::new("users");
/// Indicator hash → the hashes of the users it indicated: written by stores before migration 3,
/// which moved it into [`INDICATED_PAGES`]; read only by migrations.
const INDICATED: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("indicated_by");
/// The indicated users of each indicator in list order: (indicator, registration ms, hash).
/// A page is one range read, whatever the indicator's count.
const INDICATED_PAGES: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("indicated_pages");
/// Ledger entries by sequence number.
pub(crate) const LEDGER: TableDefinition<u64, &[u8]> = TableDefinition::new("ledger");
/// Indicated e-mails by normalised address.
pub(crate) const EMAILS: JsonTable = TableDefinition::new("indicated_emails");

/// An indicator's count of `held` + `acquired` credits per program, keyed `program:indicator`.
pub(crate) const CAP_PLACES: TableDefinition<&str, u64> = TableDefinition::new("indicator_credits");
/// Each program's figures, kept current by every write that changes them.
pub(crate) const FIGURES: JsonTable = TableDefinition::new("program_figures");
/// The figures of each indicator's indicated users, by (indicator, program id), kept current
/// like the program figures: what a statement sums.
pub(crate) const INDICATED_FIGURES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("indicated_figures");
/// Held credits by (release ms, indicated hash), for the release worker.
pub(crate) const HOLDS_DUE: TableDefinition<(u64, &str), ()> = TableDefinition::new("holds_due");
/// Indicated users by (credit status, registration ms, hash): the admin list of credits.
const CREDIT_STATUSES: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("credits_by_status");
/// Indicated users by (program, indicator, registration ms, hash): an indicator's registrations
/// in a program within an hour, for the `velocity` flag.
const REGISTRATIONS: TableDefinition<(&str, &str, i64, &str), ()> =
    TableDefinition::new("registrations_by_program");
/// Ledger sequence numbers by (indicated user or e-mail, sequence): one credit's history.
const LEDGER_BY_USER: TableDefinition<(&str, u64), ()> = TableDefinition::new("ledger_by_user");
/// Index entries the admin list of credits reads at most for one page.
const CREDIT_SCAN: usize = 2000;

/// The indication tables, and migrations 2 (figures, cap counts and holds built from the users
/// and ledger stored before they existed) and 3 (the indicated-by index in list order).
pub(crate) fn schema() -> Schema {
    Schema {
        tables: vec![
            &USERS,
            &EMAILS,
            &FIGURES,
            &LEDGER,
            &CAP_PLACES,
            &INDICATED_FIGURES,
            &HOLDS_DUE,
            &INDICATED_PAGES,
            &INDICATED,
            &CREDIT_STATUSES,
            &REGISTRATIONS,
            &LEDGER_BY_USER,
        ],
        migrations: vec![
            Migration {
                version: 2,
                name: "program and indicator figures from earlier credits",
                run: Box::new(count_earlier_credits),
            },
            Migration {
                version: 3,
                name: "indicated users in list order",
                run: Box::new(order_indicated_users),
            },
            Migration {
                version: 5,
                name: "credits by status, registrations by program, ledger by user",
                run: Box::new(index_credits),
            },
        ],
    }
}

#[async_trait]
impl IndicationStore for EmbeddedStore {
    async fn create_users(
        &self,
        hashes: Vec<UserHash>,
        program: Option<ProgramId>,
        at: DateTime<Utc>,
    ) -> Result<UsersCreated, StoreError> {
        self.write(move |txn| {
            let mut outcome = UsersCreated::default();
            let mut seen = HashSet::new();
            {
                let users = txn.open_table(USERS).map_err(backend)?;
                for hash in hashes.iter().filter(|h| seen.insert((*h).clone())).cloned() {
                    if users.get(hash.as_str()).map_err(backend)?.is_some() {
                        outcome.existing.push(hash);
                    } else {
                        outcome.created.push(hash);
                    }
                }
            }
            let added = u64::try_from(outcome.created.len()).unwrap_or(u64::MAX);
            let program = match program {
                Some(id) if count_program_users(txn, id, added)? => Some(id),
                _ => None,
            };
            for hash in &outcome.created {
                write_user(txn, &User::imported(hash.clone(), program, at))?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn user(&self, hash: &UserHash) -> Result<Option<User>, StoreError> {
        let hash = hash.clone();
        self.read(move |txn| read_user(&txn.open_table(USERS).map_err(backend)?, hash.as_str()))
            .await
    }

    async fn register(&self, registration: Registration) -> Result<RegisterOutcome, StoreError> {
        self.write(move |txn| {
            let user = &registration.user;
            if txn
                .open_table(USERS)
                .map_err(backend)?
                .get(user.hash.as_str())
                .map_err(backend)?
                .is_some()
            {
                return Ok(RegisterOutcome::AlreadyRegistered);
            }
            let (Some(program), Some(indicator)) = (user.program_id, &user.indicator) else {
                return Err(StoreError::Backend(
                    "a registration needs a program and an indicator".to_owned(),
                ));
            };
            if !count_program_users(txn, program, 1)? {
                return Ok(RegisterOutcome::ProgramNotFound);
            }
            write_user(txn, user)?;
            index_registration(txn, user)?;
            append_ledger(txn, &registration.ledger)?;
            queue_event(txn, &registration.event)?;
            record_event(txn, &registration.feed)?;
            let signup_credit = registration.event.amount.magnitude();
            change_figures(txn, program, indicator, |figures| {
                figures.indicated_users = figures.indicated_users.saturating_add(1);
                figures.signup_credit_total = figures
                    .signup_credit_total
                    .checked_add(signup_credit)
                    .ok_or_else(|| StoreError::Corrupt("signup credit total".to_owned()))?;
                figures.count(&IndicatorCredit::Pending, true)
            })?;
            Ok(RegisterOutcome::Registered)
        })
        .await
    }

    async fn record_payment(
        &self,
        hash: &UserHash,
        total: Money,
        terms: Option<CreditTerms>,
    ) -> Result<Payment, StoreError> {
        let hash = hash.clone();
        self.write(move |txn| {
            let Some(mut user) =
                read_user(&txn.open_table(USERS).map_err(backend)?, hash.as_str())?
            else {
                return Ok(Payment {
                    user: None,
                    step: None,
                });
            };
            let previous = std::mem::replace(&mut user.total_amount_paid, total);
            let step = match (&terms, &user.credit) {
                (Some(terms), Some(credit)) => match terms.on_payment(credit, previous, total) {
                    Some(step) => Some(take_step(txn, &mut user, terms, step)?),
                    None => None,
                },
                _ => None,
            };
            write_user(txn, &user)?;
            Ok(Payment {
                user: Some(user),
                step,
            })
        })
        .await
    }

    async fn due_holds(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<User>, StoreError> {
        self.read(move |txn| {
            let users = txn.open_table(USERS).map_err(backend)?;
            let holds = txn.open_table(HOLDS_DUE).map_err(backend)?;
            let mut due = Vec::new();
            for entry in holds
                .range((0, "")..(ms(now).saturating_add(1), ""))
                .map_err(backend)?
                .take(limit)
            {
                let (key, _) = entry.map_err(backend)?;
                if let Some(user) = read_user(&users, key.value().1)? {
                    due.push(user);
                }
            }
            Ok(due)
        })
        .await
    }

    async fn release(
        &self,
        hash: &UserHash,
        terms: CreditTerms,
    ) -> Result<Option<CreditStep>, StoreError> {
        let hash = hash.clone();
        self.write(move |txn| {
            let Some(mut user) =
                read_user(&txn.open_table(USERS).map_err(backend)?, hash.as_str())?
            else {
                return Ok(None);
            };
            let Some(step) = user
                .credit
                .as_ref()
                .and_then(|credit| terms.on_release(credit, user.total_amount_paid))
            else {
                return Ok(None);
            };
            let step = take_step(txn, &mut user, &terms, step)?;
            write_user(txn, &user)?;
            Ok(Some(step))
        })
        .await
    }

    async fn decide(
        &self,
        hash: &UserHash,
        terms: CreditTerms,
        action: AdminMove,
        decision: Decision,
    ) -> Result<Decided, StoreError> {
        let hash = hash.clone();
        self.write(move |txn| {
            let Some(mut user) =
                read_user(&txn.open_table(USERS).map_err(backend)?, hash.as_str())?
            else {
                return Ok(Decided::NotFound);
            };
            let Some(credit) = user.credit.clone() else {
                return Ok(Decided::NotFound);
            };
            match terms.on_decision(&credit, action, decision.clone()) {
                Err(status) => Ok(Decided::Refused(status)),
                Ok(step) => {
                    let before = user.clone();
                    let step = take_step(txn, &mut user, &terms, step)?;
                    write_user(txn, &user)?;
                    ride(txn, Some(&before), Some(&user))?;
                    Ok(Decided::Moved(Box::new((user, step))))
                }
            }
        })
        .await
    }

    async fn registrations_between(
        &self,
        program: ProgramId,
        indicator: &UserHash,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let indicator = indicator.clone();
        self.read(move |txn| {
            let table = txn.open_table(REGISTRATIONS).map_err(backend)?;
            let program = program.to_string();
            let (program, indicator) = (program.as_str(), indicator.as_str());
            let range = table
                .range(
                    (program, indicator, from.timestamp_millis(), "")
                        ..=(program, indicator, to.timestamp_millis(), "\u{10FFFF}"),
                )
                .map_err(backend)?;
            let mut count = 0;
            for entry in range.take(usize::try_from(limit).unwrap_or(usize::MAX)) {
                entry.map_err(backend)?;
                count += 1;
            }
            Ok(count)
        })
        .await
    }

    async fn reversed_credits(
        &self,
        program: ProgramId,
        indicator: &UserHash,
    ) -> Result<u64, StoreError> {
        let indicator = indicator.clone();
        self.read(move |txn| {
            let program = program.to_string();
            let table = txn.open_table(INDICATED_FIGURES).map_err(backend)?;
            Ok(
                match table
                    .get((indicator.as_str(), program.as_str()))
                    .map_err(backend)?
                {
                    Some(bytes) => decode::<FiguresRecord>(bytes.value())?.reversed,
                    None => 0,
                },
            )
        })
        .await
    }

    async fn credits(
        &self,
        filter: &CreditFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<CreditPage, StoreError> {
        let filter = filter.clone();
        let after = after.cloned();
        self.read(move |txn| credit_page(txn, &filter, after.as_ref(), limit))
            .await
    }

    async fn history(&self, hash: &UserHash) -> Result<Vec<LedgerEntry>, StoreError> {
        let hash = hash.clone();
        self.read(move |txn| {
            let index = txn.open_table(LEDGER_BY_USER).map_err(backend)?;
            let ledger = txn.open_table(LEDGER).map_err(backend)?;
            let mut entries = Vec::new();
            for entry in index
                .range((hash.as_str(), 0)..=(hash.as_str(), u64::MAX))
                .map_err(backend)?
            {
                let (key, _) = entry.map_err(backend)?;
                if let Some(bytes) = ledger.get(key.value().1).map_err(backend)? {
                    entries.push(decode::<LedgerRecord>(bytes.value())?.into_entry());
                }
            }
            Ok(entries)
        })
        .await
    }

    async fn indicated_figures(
        &self,
        indicator: &UserHash,
    ) -> Result<Vec<(Option<ProgramId>, ProgramFigures)>, StoreError> {
        let indicator = indicator.clone();
        self.read(move |txn| {
            let table = txn.open_table(INDICATED_FIGURES).map_err(backend)?;
            let mut found = Vec::new();
            // Program ids are lower-case hex: every one sorts before "g".
            for entry in table
                .range((indicator.as_str(), "")..(indicator.as_str(), "g"))
                .map_err(backend)?
            {
                let (key, bytes) = entry.map_err(backend)?;
                let program = key.value().1.parse().ok();
                let record: FiguresRecord = decode(bytes.value())?;
                found.push((program, record.to_figures(0)));
            }
            Ok(found)
        })
        .await
    }

    async fn program_figures(&self, program: ProgramId) -> Result<ProgramFigures, StoreError> {
        self.read(move |txn| {
            let key = program.to_string();
            let users = program_users(txn, program)?;
            let figures: Option<FiguresRecord> =
                get(&txn.open_table(FIGURES).map_err(backend)?, key.as_str())?;
            Ok(figures.unwrap_or_default().to_figures(users))
        })
        .await
    }

    async fn indicated_by(
        &self,
        indicator: &UserHash,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        let indicator = indicator.clone();
        let after = after.cloned();
        self.read(move |txn| {
            let users = txn.open_table(USERS).map_err(backend)?;
            let pages = txn.open_table(INDICATED_PAGES).map_err(backend)?;
            let ind = indicator.as_str();
            let start = match &after {
                Some(c) => Bound::Excluded((ind, c.created_at.timestamp_millis(), c.id.as_str())),
                None => Bound::Included((ind, i64::MIN, "")),
            };
            let end = Bound::Included((ind, i64::MAX, "\u{10FFFF}"));
            let mut indicated = Vec::new();
            for entry in pages.range((start, end)).map_err(backend)? {
                if indicated.len() >= limit {
                    break;
                }
                let (key, _) = entry.map_err(backend)?;
                let (_, _, hash) = key.value();
                if let Some(user) = read_user(&users, hash)? {
                    indicated.push(user);
                }
            }
            Ok(indicated)
        })
        .await
    }

    async fn save_indications(
        &self,
        indications: Vec<EmailIndication>,
    ) -> Result<Vec<bool>, StoreError> {
        if indications.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |txn| {
            let mut saved = Vec::with_capacity(indications.len());
            let mut ledger = Vec::new();
            let mut emails = txn.open_table(EMAILS).map_err(backend)?;
            for indication in &indications {
                let address = indication.email.as_str();
                if emails.get(address).map_err(backend)?.is_some() {
                    saved.push(false);
                    continue;
                }
                let record = encode(&EmailRecord {
                    email: indication.email.to_string(),
                    user_indicator: indication.indicator.to_string(),
                    created_at: indication.ledger.created_at,
                })?;
                emails.insert(address, record.as_slice()).map_err(backend)?;
                ledger.push(indication.ledger.clone());
                saved.push(true);
            }
            drop(emails);
            append_ledger(txn, &ledger)?;
            Ok(saved)
        })
        .await
    }

    async fn indicators_of(
        &self,
        emails: &[Email],
    ) -> Result<HashMap<Email, UserHash>, StoreError> {
        let emails = emails.to_vec();
        self.read(move |txn| {
            let table = txn.open_table(EMAILS).map_err(backend)?;
            let mut found = HashMap::new();
            for email in emails {
                if let Some(bytes) = table.get(email.as_str()).map_err(backend)? {
                    let record: EmailRecord = decode(bytes.value())?;
                    found.insert(email, UserHash::from_stored(record.user_indicator));
                }
            }
            Ok(found)
        })
        .await
    }
}

#[async_trait]
impl LedgerScan for EmbeddedStore {
    async fn ledger(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(LEDGER).map_err(backend)?;
            let mut entries = Vec::new();
            for entry in table.iter().map_err(backend)? {
                let (_, bytes) = entry.map_err(backend)?;
                entries.push(decode::<LedgerRecord>(bytes.value())?.into_entry());
            }
            Ok(entries)
        })
        .await
    }

    /// In write order, by sequence number: `after` is the last number read.
    async fn ledger_page(
        &self,
        filter: &LedgerFilter,
        after: Option<String>,
    ) -> Result<LedgerPage, StoreError> {
        let filter = filter.clone();
        let start = after
            .and_then(|after| after.parse::<u64>().ok())
            .map_or(Bound::Unbounded, Bound::Excluded);
        self.read(move |txn| {
            let table = txn.open_table(LEDGER).map_err(backend)?;
            let mut page = LedgerPage::default();
            let mut read = 0;
            for entry in table
                .range::<u64>((start, Bound::Unbounded))
                .map_err(backend)?
                .take(LEDGER_PAGE)
            {
                let (key, bytes) = entry.map_err(backend)?;
                read += 1;
                let entry = decode::<LedgerRecord>(bytes.value())?.into_entry();
                if filter.matches(&entry) {
                    page.entries.push(entry);
                }
                if read == LEDGER_PAGE {
                    page.next = Some(key.value().to_string());
                }
            }
            Ok(page)
        })
        .await
    }
}
