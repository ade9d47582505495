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

use super::{IndicationStore, RegisterOutcome, UsersCreated};
use crate::{
    callbacks::store::embedded::queue,
    cursor::Cursor,
    email::Email,
    indication::domain::{
        CreditStep, CreditTerms, EmailIndication, IndicatorCredit, LedgerEntry, LedgerOperation,
        Payment, ProgramFigures, Registration, User, UserHash,
    },
    money::Money,
    programs::{
        ProgramId,
        store::embedded::{PROGRAM_USERS, add_program_users},
    },
    storage::{
        StoreError,
        embedded::{
            EmbeddedStore, JsonTable, Migration, Schema, backend, decode, encode, millis,
            money_text, opt_program_id,
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
        ],
    }
}

/// Moves the indicated-by index of earlier stores into [`INDICATED_PAGES`], and empties it.
fn order_indicated_users(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut pairs = Vec::new();
    {
        let index = txn.open_multimap_table(INDICATED).map_err(backend)?;
        for entry in index.iter().map_err(backend)? {
            let (indicator, hashes) = entry.map_err(backend)?;
            for hash in hashes {
                pairs.push((
                    indicator.value().to_owned(),
                    hash.map_err(backend)?.value().to_owned(),
                ));
            }
        }
    }
    let users = txn.open_table(USERS).map_err(backend)?;
    let mut pages = txn.open_table(INDICATED_PAGES).map_err(backend)?;
    let mut index = txn.open_multimap_table(INDICATED).map_err(backend)?;
    for (indicator, hash) in &pairs {
        if let Some(user) = read_user(&users, hash)? {
            let at = user.created_at.timestamp_millis();
            pages
                .insert((indicator.as_str(), at, hash.as_str()), ())
                .map_err(backend)?;
        }
        index
            .remove(indicator.as_str(), hash.as_str())
            .map_err(backend)?;
    }
    Ok(())
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum CreditRecord {
    Pending,
    Held {
        #[serde(with = "money_text")]
        amount: Money,
        #[serde(rename = "held_at_ms", with = "millis")]
        held_at: DateTime<Utc>,
        #[serde(rename = "release_at_ms", with = "millis")]
        release_at: DateTime<Utc>,
    },
    Acquired {
        #[serde(with = "money_text")]
        amount: Money,
        #[serde(rename = "at_ms", with = "millis")]
        at: DateTime<Utc>,
    },
    Capped {
        #[serde(rename = "at_ms", with = "millis")]
        at: DateTime<Utc>,
    },
}

impl CreditRecord {
    fn from_credit(credit: &IndicatorCredit) -> Self {
        match credit {
            IndicatorCredit::Pending => Self::Pending,
            IndicatorCredit::Held {
                amount,
                held_at,
                release_at,
            } => Self::Held {
                amount: *amount,
                held_at: *held_at,
                release_at: *release_at,
            },
            IndicatorCredit::Acquired { amount, at } => Self::Acquired {
                amount: *amount,
                at: *at,
            },
            IndicatorCredit::Capped { at } => Self::Capped { at: *at },
        }
    }

    fn into_credit(self) -> IndicatorCredit {
        match self {
            Self::Pending => IndicatorCredit::Pending,
            Self::Held {
                amount,
                held_at,
                release_at,
            } => IndicatorCredit::Held {
                amount,
                held_at,
                release_at,
            },
            Self::Acquired { amount, at } => IndicatorCredit::Acquired { amount, at },
            Self::Capped { at } => IndicatorCredit::Capped { at },
        }
    }
}

/// A user as stored: money as exact decimal text, times as Unix milliseconds.
#[derive(Debug, Serialize, Deserialize)]
struct UserRecord {
    hash: String,
    indicator: Option<String>,
    #[serde(with = "opt_program_id")]
    program_id: Option<ProgramId>,
    #[serde(with = "money_text")]
    total_amount_paid: Money,
    #[serde(rename = "created_at_ms", with = "millis")]
    created_at: DateTime<Utc>,
    credit: Option<CreditRecord>,
}

impl UserRecord {
    fn from_user(user: &User) -> Self {
        Self {
            hash: user.hash.to_string(),
            indicator: user.indicator.as_ref().map(ToString::to_string),
            program_id: user.program_id,
            total_amount_paid: user.total_amount_paid,
            created_at: user.created_at,
            credit: user.credit.as_ref().map(CreditRecord::from_credit),
        }
    }

    fn into_user(self) -> User {
        User {
            total_amount_paid: self.total_amount_paid,
            created_at: self.created_at,
            program_id: self.program_id,
            hash: UserHash::from_stored(self.hash),
            indicator: self.indicator.map(UserHash::from_stored),
            credit: self.credit.map(CreditRecord::into_credit),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct LedgerRecord {
    operation: LedgerOperation,
    user_indicator: Option<String>,
    user_indicated: String,
    #[serde(with = "opt_program_id")]
    program_id: Option<ProgramId>,
    #[serde(with = "money_text")]
    amount: Money,
    #[serde(rename = "created_at_ms", with = "millis")]
    created_at: DateTime<Utc>,
}

impl LedgerRecord {
    fn from_entry(entry: &LedgerEntry) -> Self {
        Self {
            operation: entry.operation,
            user_indicator: entry.user_indicator.clone(),
            user_indicated: entry.user_indicated.clone(),
            program_id: entry.program_id,
            amount: entry.amount,
            created_at: entry.created_at,
        }
    }

    fn into_entry(self) -> LedgerEntry {
        LedgerEntry {
            operation: self.operation,
            amount: self.amount,
            created_at: self.created_at,
            program_id: self.program_id,
            user_indicator: self.user_indicator,
            user_indicated: self.user_indicated,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct EmailRecord {
    email: String,
    user_indicator: String,
    #[serde(rename = "created_at_ms", with = "millis")]
    created_at: DateTime<Utc>,
}

/// A program's figures as stored: counts per credit state and exact money totals. The user
/// count lives in `program_users`, written with the users.
#[derive(Debug, Default, Serialize, Deserialize)]
struct FiguresRecord {
    indicated_users: u64,
    pending: u64,
    held: u64,
    acquired: u64,
    capped: u64,
    #[serde(with = "money_text")]
    signup_credit_total: Money,
    #[serde(with = "money_text")]
    held_credit_total: Money,
    #[serde(with = "money_text")]
    acquired_credit_total: Money,
}

impl FiguresRecord {
    /// Counts a credit in (`into`) or out of its state.
    fn count(&mut self, credit: &IndicatorCredit, into: bool) -> Result<(), StoreError> {
        let overflow = || StoreError::Corrupt("program figures out of range".to_owned());
        let step = |n: &mut u64| {
            *n = if into {
                n.checked_add(1)
            } else {
                n.checked_sub(1)
            }
            .ok_or_else(overflow)?;
            Ok::<_, StoreError>(())
        };
        let add = |total: &mut Money, amount: Money| {
            *total = if into {
                total.checked_add(amount)
            } else {
                total.checked_sub(amount)
            }
            .ok_or_else(overflow)?;
            Ok::<_, StoreError>(())
        };
        match credit {
            IndicatorCredit::Pending => step(&mut self.pending),
            IndicatorCredit::Held { amount, .. } => {
                step(&mut self.held)?;
                add(&mut self.held_credit_total, *amount)
            }
            IndicatorCredit::Acquired { amount, .. } => {
                step(&mut self.acquired)?;
                add(&mut self.acquired_credit_total, *amount)
            }
            IndicatorCredit::Capped { .. } => step(&mut self.capped),
        }
    }

    fn into_figures(self, users: u64) -> ProgramFigures {
        ProgramFigures {
            users,
            indicated_users: self.indicated_users,
            pending: self.pending,
            held: self.held,
            acquired: self.acquired,
            capped: self.capped,
            signup_credit_total: self.signup_credit_total,
            held_credit_total: self.held_credit_total,
            acquired_credit_total: self.acquired_credit_total,
        }
    }
}

/// Changes, inside the caller's transaction, the figures of a program and those of the
/// indicator's users in it.
fn change_figures(
    txn: &WriteTransaction,
    program: ProgramId,
    indicator: &UserHash,
    change: impl Fn(&mut FiguresRecord) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let key = program.to_string();
    let mut table = txn.open_table(FIGURES).map_err(backend)?;
    let mut figures: FiguresRecord = match table.get(key.as_str()).map_err(backend)? {
        Some(bytes) => decode(bytes.value())?,
        None => FiguresRecord::default(),
    };
    change(&mut figures)?;
    let record = encode(&figures)?;
    table
        .insert(key.as_str(), record.as_slice())
        .map_err(backend)?;
    let mut table = txn.open_table(INDICATED_FIGURES).map_err(backend)?;
    let key = (indicator.as_str(), key.as_str());
    let mut figures: FiguresRecord = match table.get(key).map_err(backend)? {
        Some(bytes) => decode(bytes.value())?,
        None => FiguresRecord::default(),
    };
    change(&mut figures)?;
    let record = encode(&figures)?;
    table.insert(key, record.as_slice()).map_err(backend)?;
    Ok(())
}

/// Takes the user's credit through `step` (or `capped`, when the step needs a place under a
/// full cap) inside the caller's transaction: the cap count, the figures, the holds index, the
/// ledger entry and the event. Returns the step taken.
fn take_step(
    txn: &WriteTransaction,
    user: &mut User,
    terms: &CreditTerms,
    step: CreditStep,
) -> Result<CreditStep, StoreError> {
    let Some(from) = user.credit.clone() else {
        return Err(StoreError::Backend(
            "a credit step needs a credit".to_owned(),
        ));
    };
    let key = terms.cap_key();
    let mut places = txn.open_table(CAP_PLACES).map_err(backend)?;
    let held = places
        .get(key.as_str())
        .map_err(backend)?
        .map_or(0, |v| v.value());
    let step = match step.cap_delta(&from) {
        1 if terms.cap.is_some_and(|cap| !cap.admits(held)) => terms.capped(),
        _ => step,
    };
    let places_after = match step.cap_delta(&from) {
        1 => held.saturating_add(1),
        -1 => held.saturating_sub(1),
        _ => held,
    };
    places.insert(key.as_str(), places_after).map_err(backend)?;
    drop(places);
    change_figures(txn, terms.program_id, &terms.indicator, |figures| {
        figures.count(&from, false)?;
        figures.count(&step.credit, true)
    })?;
    let mut holds = txn.open_table(HOLDS_DUE).map_err(backend)?;
    if let IndicatorCredit::Held { release_at, .. } = &from {
        holds
            .remove((ms(*release_at), user.hash.as_str()))
            .map_err(backend)?;
    }
    if let IndicatorCredit::Held { release_at, .. } = &step.credit {
        holds
            .insert((ms(*release_at), user.hash.as_str()), ())
            .map_err(backend)?;
    }
    drop(holds);
    append_ledger(txn, std::slice::from_ref(&step.ledger))?;
    if let Some(event) = &step.event {
        queue(txn, event)?;
    }
    user.credit = Some(step.credit.clone());
    Ok(step)
}

/// Builds the program and indicator figures, the cap counts and the holds index from the
/// users and the ledger stored before they existed; runs once, when no indicator figures exist
/// and users were indicated.
fn count_earlier_credits(txn: &WriteTransaction) -> Result<(), StoreError> {
    if !txn
        .open_table(INDICATED_FIGURES)
        .map_err(backend)?
        .is_empty()
        .map_err(backend)?
        || txn
            .open_multimap_table(INDICATED)
            .map_err(backend)?
            .is_empty()
            .map_err(backend)?
    {
        return Ok(());
    }
    let mut figures = HashMap::<ProgramId, FiguresRecord>::new();
    let mut by_indicator = HashMap::<(String, ProgramId), FiguresRecord>::new();
    let mut places = HashMap::<String, u64>::new();
    let mut holds = Vec::new();
    for entry in txn
        .open_table(USERS)
        .map_err(backend)?
        .iter()
        .map_err(backend)?
    {
        let (_, bytes) = entry.map_err(backend)?;
        let user = decode::<UserRecord>(bytes.value())?.into_user();
        let (Some(program), Some(indicator), Some(credit)) =
            (user.program_id, &user.indicator, &user.credit)
        else {
            continue;
        };
        for record in [
            figures.entry(program).or_default(),
            by_indicator
                .entry((indicator.to_string(), program))
                .or_default(),
        ] {
            record.indicated_users += 1;
            record.count(credit, true)?;
        }
        if credit.counts_toward_cap() {
            *places.entry(format!("{program}:{indicator}")).or_default() += 1;
        }
        if let IndicatorCredit::Held { release_at, .. } = credit {
            holds.push((ms(*release_at), user.hash.to_string()));
        }
    }
    for entry in txn
        .open_table(LEDGER)
        .map_err(backend)?
        .iter()
        .map_err(backend)?
    {
        let (_, bytes) = entry.map_err(backend)?;
        let entry = decode::<LedgerRecord>(bytes.value())?;
        if let (LedgerOperation::SignupCredit, Some(program), Some(indicator)) =
            (entry.operation, entry.program_id, &entry.user_indicator)
        {
            for record in [
                figures.entry(program).or_default(),
                by_indicator
                    .entry((indicator.clone(), program))
                    .or_default(),
            ] {
                record.signup_credit_total =
                    record
                        .signup_credit_total
                        .checked_add(entry.amount)
                        .ok_or_else(|| StoreError::Corrupt("signup credit total".to_owned()))?;
            }
        }
    }
    let mut table = txn.open_table(FIGURES).map_err(backend)?;
    for (program, record) in figures {
        let record = encode(&record)?;
        table
            .insert(program.to_string().as_str(), record.as_slice())
            .map_err(backend)?;
    }
    let mut table = txn.open_table(INDICATED_FIGURES).map_err(backend)?;
    for ((indicator, program), record) in by_indicator {
        let record = encode(&record)?;
        table
            .insert(
                (indicator.as_str(), program.to_string().as_str()),
                record.as_slice(),
            )
            .map_err(backend)?;
    }
    let mut table = txn.open_table(CAP_PLACES).map_err(backend)?;
    for (key, count) in places {
        table.insert(key.as_str(), count).map_err(backend)?;
    }
    let mut table = txn.open_table(HOLDS_DUE).map_err(backend)?;
    for (at, hash) in holds {
        table.insert((at, hash.as_str()), ()).map_err(backend)?;
    }
    Ok(())
}

/// Unix milliseconds as an index key (times before 1970 sort first).
fn ms(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

fn read_user(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    hash: &str,
) -> Result<Option<User>, StoreError> {
    match table.get(hash).map_err(backend)? {
        Some(bytes) => Ok(Some(decode::<UserRecord>(bytes.value())?.into_user())),
        None => Ok(None),
    }
}

fn write_user(txn: &WriteTransaction, user: &User) -> Result<(), StoreError> {
    let record = encode(&UserRecord::from_user(user))?;
    txn.open_table(USERS)
        .map_err(backend)?
        .insert(user.hash.as_str(), record.as_slice())
        .map_err(backend)?;
    Ok(())
}

fn append_ledger(txn: &WriteTransaction, entries: &[LedgerEntry]) -> Result<(), StoreError> {
    let mut table = txn.open_table(LEDGER).map_err(backend)?;
    let first = table
        .last()
        .map_err(backend)?
        .map_or(0, |(key, _)| key.value() + 1);
    for (key, entry) in (first..).zip(entries) {
        let record = encode(&LedgerRecord::from_entry(entry))?;
        table.insert(key, record.as_slice()).map_err(backend)?;
    }
    Ok(())
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
                Some(id) if add_program_users(txn, id, added)? => Some(id),
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
            if !add_program_users(txn, program, 1)? {
                return Ok(RegisterOutcome::ProgramNotFound);
            }
            write_user(txn, user)?;
            txn.open_table(INDICATED_PAGES)
                .map_err(backend)?
                .insert(
                    (
                        indicator.as_str(),
                        user.created_at.timestamp_millis(),
                        user.hash.as_str(),
                    ),
                    (),
                )
                .map_err(backend)?;
            append_ledger(txn, &registration.ledger)?;
            queue(txn, &registration.event)?;
            let signup_credit = registration.event.amount;
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
            user.total_amount_paid = total;
            let step = match (&terms, &user.credit) {
                (Some(terms), Some(credit)) => match terms.on_payment(credit, total) {
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
                found.push((program, record.into_figures(0)));
            }
            Ok(found)
        })
        .await
    }

    async fn program_figures(&self, program: ProgramId) -> Result<ProgramFigures, StoreError> {
        self.read(move |txn| {
            let key = program.to_string();
            let users = txn
                .open_table(PROGRAM_USERS)
                .map_err(backend)?
                .get(key.as_str())
                .map_err(backend)?
                .map_or(0, |v| v.value());
            let figures: FiguresRecord = match txn
                .open_table(FIGURES)
                .map_err(backend)?
                .get(key.as_str())
                .map_err(backend)?
            {
                Some(bytes) => decode(bytes.value())?,
                None => FiguresRecord::default(),
            };
            Ok(figures.into_figures(users))
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
}
