//! Program and indicator figures on MongoDB: running totals, one document per program
//! (`p:<program>`) and one per indicator and program (`i:<indicator>:<program>`) in
//! [`FIGURES`], and the changes that have not reached them yet.
//!
//! A write that changes a user's figures (a registration, a credit move) pushes what it adds to
//! each total, signed, into the user's own `figures_due`, in the same single-document write as
//! the change: a change is never counted without its move, nor lost. An import records one
//! change for its whole batch in [`IMPORTS`] before it writes the users. The figures worker
//! folds the changes into the totals (see [`MongoStore::fold_due`]). A read adds to a total the
//! changes still due to it, so it is exact at any time, and costs a few index reads however
//! many users the program or the indicator has.

use std::collections::{BTreeSet, HashMap};

use rust_decimal::Decimal;

use super::*;

/// The running totals.
pub(crate) const FIGURES: &str = "indication_figures";
/// The array of a user document holding the changes it made to the totals, until folded.
pub(super) const DUE: &str = "figures_due";
/// The changes imports made to their programs' totals (one per imported batch), until folded.
pub(crate) const IMPORTS: &str = "figures_imports";
/// How long an import may take before a fold counts what it created without it (it stopped).
const IMPORT_GRACE: chrono::TimeDelta = chrono::TimeDelta::hours(1);
/// How many users' changes one fold of a total takes at most.
const FOLD_BATCH: i64 = 500;
/// How often a read starts again because a fold moved a total while it was reading.
const READ_RACES: usize = 8;

/// Figures that may be negative: what a change adds to a total.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Tally {
    counts: [i64; 9],
    totals: [Decimal; 5],
}

impl Tally {
    fn of(figures: &ProgramFigures) -> Self {
        let (counts, totals) = figures.parts();
        Self {
            counts: counts.map(|count| i64::try_from(count).unwrap_or(i64::MAX)),
            totals: totals.map(|total| SignedMoney::from(total).amount()),
        }
    }

    /// `self + sign * other`; `None` on overflow.
    fn plus(&self, other: &Self, sign: i64) -> Option<Self> {
        let mut sum = self.clone();
        for (count, more) in sum.counts.iter_mut().zip(other.counts) {
            *count = count.checked_add(more.checked_mul(sign)?)?;
        }
        for (total, more) in sum.totals.iter_mut().zip(other.totals) {
            *total = total.checked_add(more.checked_mul(Decimal::from(sign))?)?;
        }
        Some(sum)
    }

    fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    fn to_document(&self) -> Result<Document, StoreError> {
        let mut document = Document::new();
        for (name, count) in FIGURE_COUNTS.iter().zip(self.counts) {
            document.insert(*name, count);
        }
        for (name, total) in FIGURE_TOTALS.iter().zip(self.totals) {
            document.insert(*name, to_decimal128(total)?);
        }
        Ok(document)
    }

    /// Reads what [`Tally::to_document`] wrote; a figure it lacks is 0.
    fn from_document(document: &Document) -> Result<Self, StoreError> {
        let mut tally = Self::default();
        for (name, count) in FIGURE_COUNTS.iter().zip(tally.counts.iter_mut()) {
            *count = match document.get(*name) {
                None => 0,
                Some(Bson::Int64(n)) => *n,
                Some(Bson::Int32(n)) => i64::from(*n),
                Some(other) => return Err(StoreError::Corrupt(format!("figure {name}: {other}"))),
            };
        }
        for (name, total) in FIGURE_TOTALS.iter().zip(tally.totals.iter_mut()) {
            *total = match document.get(*name) {
                None => Decimal::ZERO,
                Some(Bson::Decimal128(amount)) => from_decimal128::<SignedMoney>(*amount)?.amount(),
                Some(other) => return Err(StoreError::Corrupt(format!("figure {name}: {other}"))),
            };
        }
        Ok(tally)
    }

    /// The figures of a total: none of them may be negative.
    fn into_figures(self) -> Result<ProgramFigures, StoreError> {
        let negative = || StoreError::Corrupt("a program figure below zero".to_owned());
        let counts = self.counts.map(u64::try_from);
        let totals = self.totals.map(|total| Money::new(total).ok());
        let mut checked_counts = [0; 9];
        for (checked, count) in checked_counts.iter_mut().zip(counts) {
            *checked = count.map_err(|_| negative())?;
        }
        let mut checked_totals = [Money::ZERO; 5];
        for (checked, total) in checked_totals.iter_mut().zip(totals) {
            *checked = total.ok_or_else(negative)?;
        }
        Ok(ProgramFigures::from_parts(checked_counts, checked_totals))
    }
}

pub(super) fn figures_overflow() -> StoreError {
    StoreError::Corrupt("figures out of range".to_owned())
}

fn program_key(program: ProgramId) -> String {
    format!("p:{program}")
}

fn indicator_key(indicator: &str, program: Option<ProgramId>) -> String {
    match program {
        Some(program) => format!("i:{indicator}:{program}"),
        None => format!("i:{indicator}:-"),
    }
}

/// A change a write made to one total, waiting in the user's document to be folded into it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Due {
    #[serde(rename = "_id")]
    id: ObjectId,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    program: Option<ObjectId>,
    /// Set on the changes to an indicator's totals, for its statement to find them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    indicator: Option<String>,
    by: Document,
}

/// What a write taking a user from `before` to `after` adds to each of its totals (the
/// program's, and the indicator's in the program), as the documents to push into [`DUE`].
/// `signup` is what a registration credited at signup (`Money::ZERO` for any other write).
pub(super) fn dues(
    before: Option<&User>,
    after: &User,
    signup: Money,
) -> Result<Vec<Document>, StoreError> {
    let mut change = Tally::of(&ProgramFigures::of_user(after, signup));
    if let Some(before) = before {
        change = change
            .plus(
                &Tally::of(&ProgramFigures::of_user(before, Money::ZERO)),
                -1,
            )
            .ok_or_else(figures_overflow)?;
    }
    if change.is_zero() {
        return Ok(Vec::new());
    }
    let by = change.to_document()?;
    let program = after.program_id.map(ProgramId::object_id);
    let mut dues = Vec::new();
    if let Some(id) = after.program_id {
        dues.push(Due {
            id: ObjectId::new(),
            key: program_key(id),
            program,
            indicator: None,
            by: by.clone(),
        });
    }
    if let Some(indicator) = &after.indicator {
        dues.push(Due {
            id: ObjectId::new(),
            key: indicator_key(indicator.as_str(), after.program_id),
            program,
            indicator: Some(indicator.to_string()),
            by,
        });
    }
    dues.iter()
        .map(|due| {
            mongodb::bson::to_document(due)
                .map_err(|e| StoreError::Backend(format!("cannot encode a figures change: {e}")))
        })
        .collect()
}

/// A running total.
#[derive(Debug, Serialize, Deserialize)]
struct TotalDoc {
    #[serde(rename = "_id")]
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    program: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    indicator: Option<String>,
    /// Moves by one at every fold: a fold writes only on the `seq` it read.
    seq: i64,
    figures: Document,
    /// The changes of the last fold, until they are gone from their users' documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    folding: Option<Folding>,
}

/// What a fold read (steps 1 and 2): the total as it will write it, with the `seq` it read.
struct FoldPlan {
    total: TotalDoc,
    folding: Folding,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Folding {
    dues: Vec<ObjectId>,
    users: Vec<String>,
    #[serde(default)]
    imports: Vec<ObjectId>,
}

/// One import of users into a program: written before its users, which name it
/// (`import_batch`); `by` is what it adds to the program's total once the import knows how many
/// it created. Until then a read counts them.
#[derive(Debug, Serialize, Deserialize)]
struct ImportDoc {
    #[serde(rename = "_id")]
    id: ObjectId,
    key: String,
    program: ObjectId,
    hashes: Vec<String>,
    at: mongodb::bson::DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<Document>,
}

/// What `created` imported users add to their program's total.
fn imported(created: usize) -> Result<Document, StoreError> {
    let figures = ProgramFigures {
        users: u64::try_from(created).unwrap_or(u64::MAX),
        ..ProgramFigures::default()
    };
    Tally::of(&figures).to_document()
}

/// The changes a user's document holds.
#[derive(Debug, Deserialize)]
struct DueHolder {
    #[serde(rename = "_id")]
    hash: String,
    #[serde(default, rename = "figures_due")]
    dues: Vec<Due>,
}

impl MongoStore {
    fn totals(&self) -> Collection<TotalDoc> {
        self.db.collection(FIGURES)
    }

    fn imports(&self) -> Collection<ImportDoc> {
        self.db.collection(IMPORTS)
    }

    /// Records an import of `hashes` into `program` before its users are written: the batch
    /// they will name.
    pub(super) async fn begin_import(
        &self,
        program: ProgramId,
        hashes: &[UserHash],
        at: DateTime<Utc>,
    ) -> Result<ObjectId, StoreError> {
        let id = ObjectId::new();
        self.imports()
            .insert_one(ImportDoc {
                id,
                key: program_key(program),
                program: program.object_id(),
                hashes: hashes.iter().map(ToString::to_string).collect(),
                at: to_bson_datetime(at),
                by: None,
            })
            .within(self.timeout)
            .await?;
        Ok(id)
    }

    /// The import `batch` created `created` users: its change to the program's total is known.
    pub(super) async fn end_import(
        &self,
        batch: ObjectId,
        created: usize,
    ) -> Result<(), StoreError> {
        self.imports()
            .update_one(
                doc! { "_id": batch, "by": { "$exists": false } },
                doc! { "$set": { "by": imported(created)? } },
            )
            .within(self.timeout)
            .await?;
        Ok(())
    }

    /// What an import adds to its program's total: as it recorded it, or, while it has not,
    /// as many as its users written so far.
    async fn import_change(&self, import: &ImportDoc) -> Result<Tally, StoreError> {
        if let Some(by) = &import.by {
            return Tally::from_document(by);
        }
        let created = self
            .users()
            .count_documents(doc! { "_id": { "$in": &import.hashes }, "import_batch": import.id })
            .within(self.timeout)
            .await?;
        Tally::from_document(&imported(usize::try_from(created).unwrap_or(usize::MAX))?)
    }

    /// Records what the imports that stopped before recording it (older than
    /// [`IMPORT_GRACE`]) created, so that they can be folded.
    async fn settle_stopped_imports(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let stopped = self
            .imports()
            .find(doc! {
                "by": { "$exists": false },
                "at": { "$lt": to_bson_datetime(now - IMPORT_GRACE) },
            })
            .limit(FOLD_BATCH)
            .all_within(self.timeout)
            .await?;
        for import in stopped {
            let created = self.import_change(&import).await?;
            self.imports()
                .update_one(
                    doc! { "_id": import.id, "by": { "$exists": false } },
                    doc! { "$set": { "by": created.to_document()? } },
                )
                .within(self.timeout)
                .await?;
        }
        Ok(())
    }

    /// Users' documents, as the changes they hold.
    fn holders(&self) -> Collection<DueHolder> {
        self.db.collection(USERS)
    }

    /// The totals matching `totals` with the changes due to them (those matching `dues` in
    /// their users' documents), by total. A change is counted once: a total's last fold names
    /// the changes it took, which its users' documents may still hold; and the read starts
    /// again if a fold moved a total between the totals and the changes.
    async fn figures_with_dues(
        &self,
        totals: Document,
        dues: Document,
        wanted: impl Fn(&Due) -> bool,
        imports: Option<Document>,
    ) -> Result<HashMap<String, (Option<ObjectId>, Tally)>, StoreError> {
        for _ in 0..READ_RACES {
            let read: Vec<TotalDoc> = self
                .totals()
                .find(totals.clone())
                .all_within(self.timeout)
                .await?;
            let folded: HashSet<ObjectId> = read
                .iter()
                .filter_map(|total| total.folding.as_ref())
                .flat_map(|folding| folding.dues.iter().chain(&folding.imports).copied())
                .collect();
            let mut figures = HashMap::new();
            for total in &read {
                figures.insert(
                    total.key.clone(),
                    (total.program, Tally::from_document(&total.figures)?),
                );
            }
            let holders = self
                .holders()
                .find(dues.clone())
                .projection(doc! { DUE: 1 })
                .all_within(self.timeout)
                .await?;
            for due in holders.iter().flat_map(|holder| &holder.dues) {
                if !wanted(due) || folded.contains(&due.id) {
                    continue;
                }
                let (_, sum) = figures
                    .entry(due.key.clone())
                    .or_insert_with(|| (due.program, Tally::default()));
                *sum = sum
                    .plus(&Tally::from_document(&due.by)?, 1)
                    .ok_or_else(figures_overflow)?;
            }
            if let Some(filter) = &imports {
                let pending = self
                    .imports()
                    .find(filter.clone())
                    .all_within(self.timeout)
                    .await?;
                for import in pending.iter().filter(|i| !folded.contains(&i.id)) {
                    let change = self.import_change(import).await?;
                    let (_, sum) = figures
                        .entry(import.key.clone())
                        .or_insert_with(|| (Some(import.program), Tally::default()));
                    *sum = sum.plus(&change, 1).ok_or_else(figures_overflow)?;
                }
            }
            let seqs = |totals: &[TotalDoc]| -> HashMap<String, i64> {
                totals.iter().map(|t| (t.key.clone(), t.seq)).collect()
            };
            let again: Vec<TotalDoc> = self
                .totals()
                .find(totals.clone())
                .all_within(self.timeout)
                .await?;
            if seqs(&read) == seqs(&again) {
                return Ok(figures);
            }
        }
        Err(StoreError::Backend(
            "the program figures kept changing under this read".to_owned(),
        ))
    }

    /// A program's figures: its total and the changes due to it.
    pub(super) async fn program_total(
        &self,
        program: ProgramId,
    ) -> Result<ProgramFigures, StoreError> {
        let key = program_key(program);
        let figures = self
            .figures_with_dues(
                doc! { "_id": &key },
                doc! { format!("{DUE}.key"): &key },
                |due| due.key == key,
                Some(doc! { "key": &key }),
            )
            .await?;
        match figures.into_values().next() {
            Some((_, tally)) => tally.into_figures(),
            None => Ok(ProgramFigures::default()),
        }
    }

    /// An indicator's figures in each program it has indicated users in.
    pub(super) async fn indicator_totals(
        &self,
        indicator: &UserHash,
    ) -> Result<Vec<(Option<ProgramId>, ProgramFigures)>, StoreError> {
        let figures = self
            .figures_with_dues(
                doc! { "indicator": indicator.as_str() },
                doc! { format!("{DUE}.indicator"): indicator.as_str() },
                |due| due.indicator.as_deref() == Some(indicator.as_str()),
                None,
            )
            .await?;
        figures
            .into_values()
            .map(|(program, tally)| {
                Ok((
                    program.map(ProgramId::from_object_id),
                    tally.into_figures()?,
                ))
            })
            .collect()
    }

    /// Folds the changes due to some totals into them: the number of changes folded, 0 when
    /// none was due. Each total takes up to [`FOLD_BATCH`] users' changes in four steps, any
    /// of which several instances may run at once:
    ///
    /// 1. read the total; if its last fold's changes may still be in their users' documents,
    ///    remove them (they are in the total already);
    /// 2. read the changes due to it;
    /// 3. write the total plus the changes, naming them as its last fold, on the condition that
    ///    its `seq` is the one read in step 1 (the first fold inserts it instead);
    /// 4. remove the changes from their users' documents, then the fold's names.
    ///
    /// Of two folds that read the same `seq`, one writes. A fold whose step 2 read a change
    /// another fold had taken either read the total after that fold (and found its changes
    /// already removed in step 1), or read it before, and its step 3 then misses the `seq`:
    /// a change is folded once.
    pub(super) async fn fold_due(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.settle_stopped_imports(now).await?;
        let imports = self
            .imports()
            .find(doc! { "by": { "$exists": true } })
            .limit(FOLD_BATCH)
            .all_within(self.timeout)
            .await?;
        let holders = self
            .holders()
            .find(doc! { format!("{DUE}.key"): { "$exists": true } })
            .projection(doc! { DUE: 1 })
            .limit(FOLD_BATCH)
            .all_within(self.timeout)
            .await?;
        let keys: BTreeSet<&str> = holders
            .iter()
            .flat_map(|holder| &holder.dues)
            .map(|due| due.key.as_str())
            .chain(imports.iter().map(|import| import.key.as_str()))
            .collect();
        // Each total is written by its own fold; the changes of all of them leave their users'
        // documents in one write per document (a user's changes to its program's and its
        // indicator's totals together), then each total's fold is finished.
        let mut written = Vec::new();
        for key in keys {
            if let Some(plan) = self.plan_fold(key).await?
                && self.write_fold(&plan).await?
            {
                written.push(plan);
            }
        }
        let mut all = Folding::default();
        for plan in &written {
            all.dues.extend(&plan.folding.dues);
            all.users.extend(plan.folding.users.iter().cloned());
            all.imports.extend(&plan.folding.imports);
        }
        all.users.sort_unstable();
        all.users.dedup();
        self.remove_folded(&all).await?;
        for plan in &written {
            self.end_fold(plan).await?;
        }
        Ok(all.dues.len() + all.imports.len())
    }

    /// Steps 1 and 2: `None` when no change is due to the total.
    async fn plan_fold(&self, key: &str) -> Result<Option<FoldPlan>, StoreError> {
        let total = self
            .totals()
            .find_one(doc! { "_id": key })
            .within(self.timeout)
            .await?;
        if let Some(folding) = total.as_ref().and_then(|total| total.folding.as_ref()) {
            self.remove_folded(folding).await?;
        }
        let holders = self
            .holders()
            .find(doc! { format!("{DUE}.key"): key })
            .projection(doc! { DUE: 1 })
            .limit(FOLD_BATCH)
            .all_within(self.timeout)
            .await?;
        let mut folding = Folding::default();
        let mut sum = match &total {
            Some(total) => Tally::from_document(&total.figures)?,
            None => Tally::default(),
        };
        let (mut program, mut indicator) = (None, None);
        for holder in holders {
            let before = folding.dues.len();
            for due in holder.dues.into_iter().filter(|due| due.key == key) {
                sum = sum
                    .plus(&Tally::from_document(&due.by)?, 1)
                    .ok_or_else(figures_overflow)?;
                folding.dues.push(due.id);
                (program, indicator) = (due.program, due.indicator);
            }
            if folding.dues.len() > before {
                folding.users.push(holder.hash);
            }
        }
        let imports = self
            .imports()
            .find(doc! { "key": key, "by": { "$exists": true } })
            .limit(FOLD_BATCH)
            .all_within(self.timeout)
            .await?;
        for import in imports {
            if let Some(by) = &import.by {
                sum = sum
                    .plus(&Tally::from_document(by)?, 1)
                    .ok_or_else(figures_overflow)?;
                folding.imports.push(import.id);
                program = Some(import.program);
            }
        }
        if folding.dues.is_empty() && folding.imports.is_empty() {
            return Ok(None);
        }
        // A sum with a figure below zero would be a fault: the total is left as it is.
        let figures = Tally::of(&sum.into_figures()?).to_document()?;
        Ok(Some(FoldPlan {
            total: TotalDoc {
                key: key.to_owned(),
                program,
                indicator,
                seq: total.map_or(0, |total| total.seq),
                figures,
                folding: Some(folding.clone()),
            },
            folding,
        }))
    }

    /// Step 3: whether this fold wrote the total (another one did when not).
    async fn write_fold(&self, plan: &FoldPlan) -> Result<bool, StoreError> {
        let FoldPlan { total, folding } = plan;
        if total.seq > 0 {
            let written = self
                .totals()
                .update_one(
                    doc! { "_id": &total.key, "seq": total.seq },
                    doc! { "$set": {
                        "figures": total.figures.clone(),
                        "seq": total.seq + 1,
                        "folding": to_bson(folding)?,
                    } },
                )
                .within(self.timeout)
                .await?;
            return Ok(written.matched_count == 1);
        }
        let first = TotalDoc {
            key: total.key.clone(),
            program: total.program,
            indicator: total.indicator.clone(),
            seq: 1,
            figures: total.figures.clone(),
            folding: Some(folding.clone()),
        };
        match self
            .totals()
            .insert_one(first)
            .answered_within(self.timeout)
            .await?
        {
            Ok(_) => Ok(true),
            Err(err) if is_duplicate_key(&err) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
    }

    /// The end of step 4, once the fold's changes are gone from their users' documents.
    async fn end_fold(&self, plan: &FoldPlan) -> Result<(), StoreError> {
        self.totals()
            .update_one(
                doc! { "_id": &plan.total.key, "seq": plan.total.seq + 1 },
                doc! { "$unset": { "folding": "" } },
            )
            .within(self.timeout)
            .await?;
        Ok(())
    }

    /// Removes a fold's changes from their users' documents and its imports.
    async fn remove_folded(&self, folding: &Folding) -> Result<(), StoreError> {
        if !folding.users.is_empty() {
            self.users()
                .update_many(
                    doc! { "_id": { "$in": &folding.users } },
                    doc! { "$pull": { DUE: { "_id": { "$in": &folding.dues } } } },
                )
                .within(self.timeout)
                .await?;
        }
        if !folding.imports.is_empty() {
            self.imports()
                .delete_many(doc! { "_id": { "$in": &folding.imports } })
                .within(self.timeout)
                .await?;
        }
        Ok(())
    }

    /// Migration 8: the totals of the users stored before them, from one aggregation over
    /// all users grouped by program, indicator and credit state. Run before any change is due
    /// (migrations run before the service serves), and safe to run again: it writes whole
    /// totals.
    pub(super) async fn total_earlier_figures(&self) -> Result<(), StoreError> {
        let pipeline = [doc! { "$group": {
            "_id": {
                "program": "$program_id",
                "indicator": "$user_indicator",
                "status": "$credit.status",
            },
            "users": { "$sum": 1 },
            "amount": { "$sum": "$credit.amount" },
            "signup": { "$sum": "$signup_credit" },
        } }];
        let groups: Vec<Document> = self
            .users()
            .clone_with_type::<Document>()
            .aggregate(pipeline)
            .all_within(self.timeout)
            .await?;
        let mut totals: HashMap<String, (Option<ObjectId>, Option<String>, ProgramFigures)> =
            HashMap::new();
        for group in groups {
            let id = group.get_document("_id").ok();
            let program = id.and_then(|id| id.get_object_id("program").ok());
            let indicator = id
                .and_then(|id| id.get_str("indicator").ok())
                .map(str::to_owned);
            let status: Option<CreditStatus> = match id.and_then(|id| id.get("status")) {
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
            let mut figures = ProgramFigures {
                users,
                signup_credit_total: money_of(group.get("signup"))?,
                ..ProgramFigures::default()
            };
            if let Some(status) = status {
                figures.indicated_users = users;
                let (count, total) = figures.of_status(status);
                if let Some(count) = count {
                    *count = users;
                }
                if let Some(total) = total {
                    *total = money_of(group.get("amount"))?;
                }
            }
            let program_id = program.map(ProgramId::from_object_id);
            let mut keys = Vec::new();
            if let Some(id) = program_id {
                keys.push((program_key(id), None));
            }
            if let Some(indicator) = &indicator {
                keys.push((
                    indicator_key(indicator, program_id),
                    Some(indicator.clone()),
                ));
            }
            for (key, indicator) in keys {
                let (_, _, sum) = totals
                    .entry(key)
                    .or_insert_with(|| (program, indicator, ProgramFigures::default()));
                sum.add(&figures).ok_or_else(figures_overflow)?;
            }
        }
        for (key, (program, indicator, figures)) in totals {
            let total = TotalDoc {
                key: key.clone(),
                program,
                indicator,
                seq: 1,
                figures: Tally::of(&figures).to_document()?,
                folding: None,
            };
            self.totals()
                .replace_one(doc! { "_id": &key }, total)
                .upsert(true)
                .within(self.timeout)
                .await?;
        }
        Ok(())
    }
}

/// A sum from an aggregation: Decimal128, or a plain 0 when nothing was summed.
fn money_of(value: Option<&Bson>) -> Result<Money, StoreError> {
    match value {
        Some(Bson::Decimal128(amount)) => from_decimal128(*amount),
        _ => Ok(Money::ZERO),
    }
}

#[cfg(test)]
mod tests {
    //! Two folds of one total interleaved step by step, on the MongoDB server of
    //! `TEST_MONGODB_URL` (a database of their own), as `scripts/test.sh` runs them.

    use std::time::Duration;

    use super::*;

    async fn store() -> MongoStore {
        let base = std::env::var("TEST_MONGODB_URL").unwrap_or_else(|_| {
            panic!("TEST_MONGODB_URL is not set: run scripts/test.sh, which starts a server")
        });
        let (address, query) = base.split_once('?').unwrap_or((base.as_str(), ""));
        let scheme_end = address.find("://").map_or(0, |i| i + 3);
        let hosts_end = address[scheme_end..]
            .find('/')
            .map_or(address.len(), |i| scheme_end + i);
        let db = format!("u_{}", uuid::Uuid::new_v4().simple());
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        let url = format!("{}/{db}{query}", &address[..hosts_end]);
        MongoStore::connect(&url, Duration::from_secs(15), &super::super::schema())
            .await
            .expect("connects")
    }

    /// A user imported into `program`, with the change it makes to the program's total.
    async fn import(store: &MongoStore, hash: &str, program: ProgramId) {
        let user = User::imported(
            UserHash::from_stored(hash.to_owned()),
            Some(program),
            Utc::now(),
        );
        let mut doc = UserDoc::from_user(&user).expect("doc");
        doc.figures_due = dues(None, &user, Money::ZERO).expect("dues");
        store.users().insert_one(doc).await.expect("insert");
    }

    /// One whole fold of the total `key`.
    async fn fold(store: &MongoStore, key: &str) -> usize {
        let Some(plan) = store.plan_fold(key).await.expect("plan") else {
            return 0;
        };
        if !store.write_fold(&plan).await.expect("write") {
            return 0;
        }
        finish(store, &plan).await;
        plan.folding.dues.len()
    }

    async fn finish(store: &MongoStore, plan: &FoldPlan) {
        store.remove_folded(&plan.folding).await.expect("remove");
        store.end_fold(plan).await.expect("end");
    }

    async fn users(store: &MongoStore, program: ProgramId) -> u64 {
        store.program_total(program).await.expect("figures").users
    }

    #[tokio::test]
    async fn a_fold_that_read_a_total_since_moved_writes_nothing() {
        let store = store().await;
        let program = ProgramId::from_object_id(ObjectId::new());
        let key = program_key(program);
        // First the insert of a new total, then the update of an existing one.
        for round in 0..2 {
            import(&store, &format!("a{round}"), program).await;
            let late = store.plan_fold(&key).await.expect("plan").expect("due");
            import(&store, &format!("b{round}"), program).await;
            let first = store.plan_fold(&key).await.expect("plan").expect("due");
            assert!(store.write_fold(&first).await.expect("write"));
            finish(&store, &first).await;
            assert!(
                !store.write_fold(&late).await.expect("write"),
                "a fold wrote over a total that moved after it read it"
            );
            assert_eq!(users(&store, program).await, 2 * (round + 1));
        }
        assert_eq!(store.fold_due(Utc::now()).await.expect("fold"), 0);
    }

    #[tokio::test]
    async fn an_import_that_stopped_half_way_counts_the_users_it_wrote() {
        let store = store().await;
        let program = ProgramId::from_object_id(ObjectId::new());
        let hashes = ["x", "y"].map(|h| UserHash::from_stored(h.to_owned()));
        let at = Utc::now();
        let batch = store
            .begin_import(program, &hashes, at)
            .await
            .expect("begin");
        // Only x was written before the import stopped.
        let mut doc =
            UserDoc::from_user(&User::imported(hashes[0].clone(), Some(program), at)).expect("doc");
        doc.import_batch = Some(batch);
        store.users().insert_one(doc).await.expect("insert");
        assert_eq!(users(&store, program).await, 1);
        // Not folded while it may still be running; folded once it cannot be.
        assert_eq!(store.fold_due(at).await.expect("fold"), 0);
        assert_eq!(users(&store, program).await, 1);
        let later = at + IMPORT_GRACE + chrono::TimeDelta::minutes(1);
        assert_eq!(store.fold_due(later).await.expect("fold"), 1);
        assert_eq!(users(&store, program).await, 1);
        assert_eq!(
            store
                .imports()
                .count_documents(doc! {})
                .await
                .expect("count"),
            0
        );
    }

    #[tokio::test]
    async fn a_fold_written_but_not_finished_counts_its_changes_once() {
        let store = store().await;
        let program = ProgramId::from_object_id(ObjectId::new());
        let key = program_key(program);
        import(&store, "a", program).await;
        import(&store, "b", program).await;
        let stopped = store.plan_fold(&key).await.expect("plan").expect("due");
        // Written, then stopped before it removed its changes from the users' documents.
        assert!(store.write_fold(&stopped).await.expect("write"));
        assert_eq!(users(&store, program).await, 2);
        import(&store, "c", program).await;
        assert_eq!(users(&store, program).await, 3);
        // The next fold removes them first, then folds only the new change.
        assert_eq!(fold(&store, &key).await, 1);
        assert_eq!(users(&store, program).await, 3);
        assert_eq!(store.fold_due(Utc::now()).await.expect("fold"), 0);
        assert_eq!(users(&store, program).await, 3);
    }
}
