//! Programs on MongoDB: one document a program, its user count in it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::{
    Collection,
    bson::{Bson, Decimal128, doc, oid::ObjectId},
};
use serde::{Deserialize, Serialize};

use super::ProgramStore;
use crate::{
    programs::domain::{
        CreditCap, Days, Deletion, Program, ProgramId, ProgramName, ProgramPatch, Review,
        ReviewVelocity,
    },
    storage::{
        StoreError,
        mongo::{
            AsRead, Carried, Deadline, Gather, Index, IndexKind, MongoStore, Schema,
            from_bson_datetime, from_decimal128, to_bson_datetime, to_decimal128, to_document,
        },
        rider,
    },
};

pub(crate) const PROGRAMS: &str = "programs";
/// How often an update reads again when another changed the program between its read and its
/// write.
const MAX_UPDATE_RACES: usize = 8;

/// The programs' index (the list, oldest first); no migration yet.
pub(crate) fn schema() -> Schema {
    let keys = doc! { "created_at": 1, "_id": 1 };
    Schema::indexes(vec![Index::new(
        PROGRAMS,
        "created_at_id",
        keys,
        IndexKind::Plain,
    )])
}

/// A program as stored: ObjectId, Decimal128 and BSON dates.
#[derive(Debug, Serialize, Deserialize)]
struct ProgramDoc {
    #[serde(rename = "_id")]
    id: ObjectId,
    name: String,
    credit_value: Decimal128,
    target_value: Decimal128,
    #[serde(default)]
    hold_days: i32,
    #[serde(default)]
    max_credits_per_indicator: Option<i64>,
    #[serde(default)]
    clawback_days: i32,
    #[serde(default)]
    review: Review,
    #[serde(default)]
    review_velocity: Option<i64>,
    created_at: mongodb::bson::DateTime,
    updated_at: mongodb::bson::DateTime,
    /// How many users belong to the program; a program is deleted only at 0.
    #[serde(default)]
    user_count: i64,
}

impl ProgramDoc {
    fn from_program(p: &Program) -> Result<Self, StoreError> {
        Ok(Self {
            id: p.id.object_id(),
            name: p.name.as_str().to_owned(),
            credit_value: to_decimal128(p.credit_value)?,
            target_value: to_decimal128(p.target_value)?,
            hold_days: i32::from(p.hold_days.days()),
            max_credits_per_indicator: p.max_credits_per_indicator.map(|c| i64::from(c.get())),
            clawback_days: i32::from(p.clawback_days.days()),
            review: p.review,
            review_velocity: p.review_velocity.map(|v| i64::from(v.get())),
            created_at: to_bson_datetime(p.created_at),
            updated_at: to_bson_datetime(p.updated_at),
            user_count: 0,
        })
    }

    fn into_program(self) -> Result<Program, StoreError> {
        Ok(Program {
            id: ProgramId::from_object_id(self.id),
            name: ProgramName::from_stored(self.name),
            credit_value: from_decimal128(self.credit_value)?,
            target_value: from_decimal128(self.target_value)?,
            hold_days: u64::try_from(self.hold_days)
                .ok()
                .and_then(|days| Days::new(days).ok())
                .ok_or_else(|| StoreError::Corrupt(format!("program {}: hold_days", self.id)))?,
            max_credits_per_indicator: self
                .max_credits_per_indicator
                .map(|max| {
                    u64::try_from(max)
                        .ok()
                        .and_then(|max| CreditCap::new(max).ok())
                        .ok_or_else(|| StoreError::Corrupt(format!("program {}: cap", self.id)))
                })
                .transpose()?,
            clawback_days: u64::try_from(self.clawback_days)
                .ok()
                .and_then(|days| Days::new(days).ok())
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("program {}: clawback_days", self.id))
                })?,
            review: self.review,
            review_velocity: self
                .review_velocity
                .map(|max| {
                    u64::try_from(max)
                        .ok()
                        .and_then(|max| ReviewVelocity::new(max).ok())
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!("program {}: velocity", self.id))
                        })
                })
                .transpose()?,
            created_at: from_bson_datetime(self.created_at)?,
            updated_at: from_bson_datetime(self.updated_at)?,
        })
    }
}

impl MongoStore {
    fn programs(&self) -> Collection<ProgramDoc> {
        self.db.collection(PROGRAMS)
    }

    /// Adds `delta` to the program's user count; `false` when the program does not exist.
    /// Users are counted in before they are written and out if the write fails, so the count
    /// is never lower than the users that exist, and delete can trust it.
    pub(crate) async fn add_program_users(
        &self,
        id: ProgramId,
        delta: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .programs()
            .update_one(
                doc! { "_id": id.object_id() },
                doc! { "$inc": { "user_count": delta } },
            )
            .within(self.timeout)
            .await?;
        Ok(result.matched_count == 1)
    }
}

#[async_trait]
impl ProgramStore for MongoStore {
    async fn insert(&self, program: &Program) -> Result<(), StoreError> {
        let record = ProgramDoc::from_program(program)?;
        let id = Bson::ObjectId(record.id);
        self.insert_made(PROGRAMS, &record, program, id).await
    }

    async fn list(&self) -> Result<Vec<Program>, StoreError> {
        let docs: Vec<ProgramDoc> = self
            .programs()
            .find(doc! {})
            .sort(doc! { "created_at": 1, "_id": 1 })
            .all_within(self.timeout)
            .await?;
        docs.into_iter().map(ProgramDoc::into_program).collect()
    }

    async fn get(&self, id: ProgramId) -> Result<Option<Program>, StoreError> {
        self.programs()
            .find_one(doc! { "_id": id.object_id() })
            .within(self.timeout)
            .await?
            .map(ProgramDoc::into_program)
            .transpose()
    }

    async fn oldest(&self) -> Result<Option<Program>, StoreError> {
        self.programs()
            .find_one(doc! {})
            .sort(doc! { "created_at": 1, "_id": 1 })
            .within(self.timeout)
            .await?
            .map(ProgramDoc::into_program)
            .transpose()
    }

    async fn update(
        &self,
        id: ProgramId,
        patch: &ProgramPatch,
        at: DateTime<Utc>,
    ) -> Result<Option<Program>, StoreError> {
        // Read, then write on the condition that the fields it changes are as read, so that
        // the audit entry it carries says what they were.
        for _ in 0..MAX_UPDATE_RACES {
            let Some(before) = self.get(id).await? else {
                return Ok(None);
            };
            let mut after = before.clone();
            if !patch.is_empty() {
                patch.apply(&mut after, at);
            }
            let stored = |program| to_document(&ProgramDoc::from_program(program)?);
            let change = (&stored(&before)?, &stored(&after)?);
            let carried = Carried::of(Some(&before), Some(&after))?;
            let key = Bson::ObjectId(id.object_id());
            match self.change_as_read(PROGRAMS, key, change, carried).await? {
                AsRead::Unchanged => return Ok(Some(before)),
                AsRead::Written(doc) => return ProgramDoc::into_program(doc).map(Some),
                AsRead::Raced => {}
            }
        }
        Err(StoreError::Backend(
            "the program kept changing under this update".to_owned(),
        ))
    }

    async fn delete(&self, id: ProgramId) -> Result<Deletion, StoreError> {
        // A removed document cannot carry its audit entry: it is written first.
        rider::ahead().await?;
        // One conditional write: a registration counted in at the same moment keeps it.
        let result = self
            .programs()
            .delete_one(doc! { "_id": id.object_id(), "user_count": { "$lte": 0 } })
            .within(self.timeout)
            .await?;
        if result.deleted_count == 1 {
            return Ok(Deletion::Deleted);
        }
        Ok(match self.get(id).await? {
            Some(_) => Deletion::HasUsers,
            None => Deletion::NotFound,
        })
    }
}
