//! Program and indicator figures, kept current by every write that changes them, in its
//! transaction.

use super::*;

/// A program's figures as stored: counts per credit state and exact money totals. The user
/// count lives in `program_users`, written with the users.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct FiguresRecord {
    pub(super) indicated_users: u64,
    pub(super) pending: u64,
    pub(super) held: u64,
    pub(super) acquired: u64,
    pub(super) capped: u64,
    #[serde(with = "money_text")]
    pub(super) signup_credit_total: Money,
    #[serde(with = "money_text")]
    pub(super) held_credit_total: Money,
    #[serde(with = "money_text")]
    pub(super) acquired_credit_total: Money,
}

impl FiguresRecord {
    /// Counts a credit in (`into`) or out of its state.
    pub(super) fn count(&mut self, credit: &IndicatorCredit, into: bool) -> Result<(), StoreError> {
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

    pub(super) fn into_figures(self, users: u64) -> ProgramFigures {
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
pub(super) fn change_figures(
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
