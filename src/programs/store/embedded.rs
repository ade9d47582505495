//! Programs on the embedded store: one JSON record a program, and its user count.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::ProgramStore;
use crate::{
    money::Money,
    programs::domain::{
        CreditCap, Days, Deletion, Program, ProgramId, ProgramName, ProgramPatch, Review,
        ReviewVelocity,
    },
    storage::{
        StoreError,
        embedded::{
            EmbeddedStore, JsonTable, Schema, backend, decode, encode, millis, money_text, put,
            ride,
        },
    },
};

/// Programs by id (24 hex characters).
pub(crate) const PROGRAMS: JsonTable = TableDefinition::new("programs");
/// How many users belong to each program, written in the transaction that adds the users.
pub(crate) const PROGRAM_USERS: TableDefinition<&str, u64> = TableDefinition::new("program_users");

/// The programs' tables; no migration yet.
pub(crate) fn schema() -> Schema {
    Schema::tables(vec![&PROGRAMS, &PROGRAM_USERS])
}

/// Counts `added` users into the program, inside the caller's transaction; `false` (and
/// nothing written) when the program does not exist.
pub(crate) fn add_program_users(
    txn: &WriteTransaction,
    id: ProgramId,
    added: u64,
) -> Result<bool, StoreError> {
    let key = id.to_string();
    if txn
        .open_table(PROGRAMS)
        .map_err(backend)?
        .get(key.as_str())
        .map_err(backend)?
        .is_none()
    {
        return Ok(false);
    }
    let mut counts = txn.open_table(PROGRAM_USERS).map_err(backend)?;
    let current = counts
        .get(key.as_str())
        .map_err(backend)?
        .map_or(0, |v| v.value());
    counts
        .insert(key.as_str(), current + added)
        .map_err(backend)?;
    Ok(true)
}

/// A program as stored: money as exact decimal strings, times as Unix milliseconds.
#[derive(Debug, Serialize, Deserialize)]
struct ProgramRecord {
    id: String,
    name: String,
    #[serde(with = "money_text")]
    credit_value: Money,
    #[serde(with = "money_text")]
    target_value: Money,
    #[serde(default)]
    hold_days: u16,
    #[serde(default)]
    max_credits_per_indicator: Option<u32>,
    #[serde(default)]
    clawback_days: u16,
    #[serde(default)]
    review: Review,
    #[serde(default)]
    review_velocity: Option<u32>,
    #[serde(rename = "created_at_ms", with = "millis")]
    created_at: DateTime<Utc>,
    #[serde(rename = "updated_at_ms", with = "millis")]
    updated_at: DateTime<Utc>,
}

impl ProgramRecord {
    fn from_program(p: &Program) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name.as_str().to_owned(),
            credit_value: p.credit_value,
            target_value: p.target_value,
            hold_days: p.hold_days.days(),
            max_credits_per_indicator: p.max_credits_per_indicator.map(CreditCap::get),
            clawback_days: p.clawback_days.days(),
            review: p.review,
            review_velocity: p.review_velocity.map(ReviewVelocity::get),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }

    fn into_program(self) -> Result<Program, StoreError> {
        Ok(Program {
            id: self
                .id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("program id {}", self.id)))?,
            name: ProgramName::from_stored(self.name),
            credit_value: self.credit_value,
            target_value: self.target_value,
            hold_days: Days::new(self.hold_days.into())
                .map_err(|e| StoreError::Corrupt(format!("program {}: {e}", self.id)))?,
            max_credits_per_indicator: self
                .max_credits_per_indicator
                .map(|max| CreditCap::new(max.into()))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("program {}: {e}", self.id)))?,
            clawback_days: Days::new(self.clawback_days.into())
                .map_err(|e| StoreError::Corrupt(format!("program {}: {e}", self.id)))?,
            review: self.review,
            review_velocity: self
                .review_velocity
                .map(|max| ReviewVelocity::new(max.into()))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("program {}: {e}", self.id)))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn read_program(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: ProgramId,
) -> Result<Option<Program>, StoreError> {
    let key = id.to_string();
    match table.get(key.as_str()).map_err(backend)? {
        Some(bytes) => decode::<ProgramRecord>(bytes.value())?
            .into_program()
            .map(Some),
        None => Ok(None),
    }
}

fn all_programs(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<Program>, StoreError> {
    let mut programs = Vec::new();
    for entry in table.iter().map_err(backend)? {
        let (_, bytes) = entry.map_err(backend)?;
        programs.push(decode::<ProgramRecord>(bytes.value())?.into_program()?);
    }
    programs.sort_by_key(|p| (p.created_at, p.id));
    Ok(programs)
}

#[async_trait]
impl ProgramStore for EmbeddedStore {
    async fn insert(&self, program: &Program) -> Result<(), StoreError> {
        let program = program.clone();
        self.write(move |txn| {
            ride(txn, None, Some(&program))?;
            let key = program.id.to_string();
            put(
                txn,
                PROGRAMS,
                key.as_str(),
                &ProgramRecord::from_program(&program),
            )
        })
        .await
    }

    async fn list(&self) -> Result<Vec<Program>, StoreError> {
        self.read(|txn| all_programs(&txn.open_table(PROGRAMS).map_err(backend)?))
            .await
    }

    async fn get(&self, id: ProgramId) -> Result<Option<Program>, StoreError> {
        self.read(move |txn| read_program(&txn.open_table(PROGRAMS).map_err(backend)?, id))
            .await
    }

    async fn oldest(&self) -> Result<Option<Program>, StoreError> {
        Ok(self.list().await?.into_iter().next())
    }

    async fn update(
        &self,
        id: ProgramId,
        patch: &ProgramPatch,
        at: DateTime<Utc>,
    ) -> Result<Option<Program>, StoreError> {
        let patch = patch.clone();
        self.write(move |txn| {
            let mut table = txn.open_table(PROGRAMS).map_err(backend)?;
            let Some(mut program) = read_program(&table, id)? else {
                return Ok(None);
            };
            if patch.is_empty() {
                // Nothing changes, not even `updated_at`; the audit entry says so.
                ride(txn, Some(&program), Some(&program))?;
                return Ok(Some(program));
            }
            let before = program.clone();
            patch.apply(&mut program, at);
            ride(txn, Some(&before), Some(&program))?;
            let record = encode(&ProgramRecord::from_program(&program))?;
            table
                .insert(id.to_string().as_str(), record.as_slice())
                .map_err(backend)?;
            Ok(Some(program))
        })
        .await
    }

    async fn delete(&self, id: ProgramId) -> Result<Deletion, StoreError> {
        self.write(move |txn| {
            let key = id.to_string();
            let mut table = txn.open_table(PROGRAMS).map_err(backend)?;
            let Some(program) = read_program(&table, id)? else {
                return Ok(Deletion::NotFound);
            };
            let mut counts = txn.open_table(PROGRAM_USERS).map_err(backend)?;
            if counts
                .get(key.as_str())
                .map_err(backend)?
                .is_some_and(|n| n.value() > 0)
            {
                return Ok(Deletion::HasUsers);
            }
            ride(txn, Some(&program), None)?;
            counts.remove(key.as_str()).map_err(backend)?;
            table.remove(key.as_str()).map_err(backend)?;
            Ok(Deletion::Deleted)
        })
        .await
    }
}
