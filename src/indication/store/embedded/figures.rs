//! Program and indicator figures, kept current by every write that changes them, in its
//! transaction.

use super::*;

/// A program's figures as stored: counts per credit state and exact money totals. The user
/// count lives in `program_users`, written with the users. States added after the first
/// records read as 0.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct FiguresRecord {
    pub(super) indicated_users: u64,
    pub(super) pending: u64,
    pub(super) held: u64,
    #[serde(default)]
    pub(super) in_review: u64,
    pub(super) acquired: u64,
    pub(super) capped: u64,
    #[serde(default)]
    pub(super) rejected: u64,
    #[serde(default)]
    pub(super) reversed: u64,
    #[serde(with = "money_text")]
    pub(super) signup_credit_total: Money,
    #[serde(with = "money_text")]
    pub(super) held_credit_total: Money,
    #[serde(default, with = "money_text")]
    pub(super) in_review_credit_total: Money,
    #[serde(with = "money_text")]
    pub(super) acquired_credit_total: Money,
    #[serde(default, with = "money_text")]
    pub(super) reversed_credit_total: Money,
}

impl FiguresRecord {
    /// Counts a credit in (`into`) or out of its state, with its amount where the figures keep
    /// the state's money.
    pub(super) fn count(&mut self, credit: &IndicatorCredit, into: bool) -> Result<(), StoreError> {
        let overflow = || StoreError::Corrupt("program figures out of range".to_owned());
        let mut figures = self.to_figures(0);
        let (count, total) = figures.of_status(credit.status());
        if let Some(count) = count {
            *count = if into {
                count.checked_add(1)
            } else {
                count.checked_sub(1)
            }
            .ok_or_else(overflow)?;
        }
        if let (Some(total), Some(amount)) = (total, credit.amount()) {
            *total = if into {
                total.checked_add(amount)
            } else {
                total.checked_sub(amount)
            }
            .ok_or_else(overflow)?;
        }
        *self = Self::from_figures(figures);
        Ok(())
    }

    fn from_figures(f: ProgramFigures) -> Self {
        Self {
            indicated_users: f.indicated_users,
            pending: f.pending,
            held: f.held,
            in_review: f.in_review,
            acquired: f.acquired,
            capped: f.capped,
            rejected: f.rejected,
            reversed: f.reversed,
            signup_credit_total: f.signup_credit_total,
            held_credit_total: f.held_credit_total,
            in_review_credit_total: f.in_review_credit_total,
            acquired_credit_total: f.acquired_credit_total,
            reversed_credit_total: f.reversed_credit_total,
        }
    }

    pub(super) fn to_figures(&self, users: u64) -> ProgramFigures {
        ProgramFigures {
            users,
            indicated_users: self.indicated_users,
            pending: self.pending,
            held: self.held,
            in_review: self.in_review,
            acquired: self.acquired,
            capped: self.capped,
            rejected: self.rejected,
            reversed: self.reversed,
            signup_credit_total: self.signup_credit_total,
            held_credit_total: self.held_credit_total,
            in_review_credit_total: self.in_review_credit_total,
            acquired_credit_total: self.acquired_credit_total,
            reversed_credit_total: self.reversed_credit_total,
        }
    }
}

/// Changes, inside the caller's transaction, the figures of a program and those of the
/// indicator's users in it.
pub(super) fn change_figures(
    txn: &WriteTransaction,
    program: ProgramId,
    indicator: &UserHash,
    change: impl Fn(&mut FiguresRecord) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let key = program.to_string();
    let mut table = txn.open_table(FIGURES).map_err(backend)?;
    let mut figures: FiguresRecord = get(&table, key.as_str())?.unwrap_or_default();
    change(&mut figures)?;
    let record = encode(&figures)?;
    table
        .insert(key.as_str(), record.as_slice())
        .map_err(backend)?;
    let mut table = txn.open_table(INDICATED_FIGURES).map_err(backend)?;
    let key = (indicator.as_str(), key.as_str());
    let mut figures: FiguresRecord = get(&table, key)?.unwrap_or_default();
    change(&mut figures)?;
    let record = encode(&figures)?;
    table.insert(key, record.as_slice()).map_err(backend)?;
    Ok(())
}
