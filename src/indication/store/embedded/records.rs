//! Users, ledger entries and indicated e-mails as the embedded store keeps them: JSON records,
//! times in milliseconds, money as exact text.

use super::*;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(super) enum CreditRecord {
    Pending,
    Held {
        #[serde(with = "money_text")]
        amount: Money,
        #[serde(rename = "held_at_ms", with = "millis")]
        held_at: DateTime<Utc>,
        #[serde(rename = "release_at_ms", with = "millis")]
        release_at: DateTime<Utc>,
    },
    InReview {
        #[serde(with = "money_text")]
        amount: Money,
        #[serde(rename = "crossed_at_ms", with = "millis")]
        crossed_at: DateTime<Utc>,
        flags: Vec<CreditFlag>,
    },
    Acquired {
        #[serde(with = "money_text")]
        amount: Money,
        #[serde(rename = "at_ms", with = "millis")]
        at: DateTime<Utc>,
        /// Absent from credits stored before reviews: the acquisition time.
        #[serde(rename = "crossed_at_ms", default, with = "opt_millis")]
        crossed_at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        flags: Vec<CreditFlag>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approval: Option<Decision>,
    },
    Capped {
        #[serde(rename = "at_ms", with = "millis")]
        at: DateTime<Utc>,
    },
    Rejected {
        #[serde(rename = "at_ms", with = "millis")]
        at: DateTime<Utc>,
        #[serde(rename = "crossed_at_ms", with = "opt_millis")]
        crossed_at: Option<DateTime<Utc>>,
        flags: Vec<CreditFlag>,
        decision: Decision,
    },
    Reversed {
        #[serde(with = "money_text")]
        amount: Money,
        #[serde(rename = "crossed_at_ms", with = "millis")]
        crossed_at: DateTime<Utc>,
        #[serde(rename = "acquired_at_ms", with = "millis")]
        acquired_at: DateTime<Utc>,
        #[serde(rename = "at_ms", with = "millis")]
        at: DateTime<Utc>,
        flags: Vec<CreditFlag>,
        decision: Decision,
    },
}

impl CreditRecord {
    pub(super) fn from_credit(credit: &IndicatorCredit) -> Self {
        match credit.clone() {
            IndicatorCredit::Pending => Self::Pending,
            IndicatorCredit::Held {
                amount,
                held_at,
                release_at,
            } => Self::Held {
                amount,
                held_at,
                release_at,
            },
            IndicatorCredit::InReview {
                amount,
                crossed_at,
                flags,
            } => Self::InReview {
                amount,
                crossed_at,
                flags,
            },
            IndicatorCredit::Acquired {
                amount,
                at,
                crossed_at,
                flags,
                approval,
            } => Self::Acquired {
                amount,
                at,
                crossed_at: Some(crossed_at),
                flags,
                approval,
            },
            IndicatorCredit::Capped { at } => Self::Capped { at },
            IndicatorCredit::Rejected {
                at,
                crossed_at,
                flags,
                decision,
            } => Self::Rejected {
                at,
                crossed_at,
                flags,
                decision,
            },
            IndicatorCredit::Reversed {
                amount,
                crossed_at,
                acquired_at,
                at,
                flags,
                decision,
            } => Self::Reversed {
                amount,
                crossed_at,
                acquired_at,
                at,
                flags,
                decision,
            },
        }
    }

    pub(super) fn into_credit(self) -> IndicatorCredit {
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
            Self::InReview {
                amount,
                crossed_at,
                flags,
            } => IndicatorCredit::InReview {
                amount,
                crossed_at,
                flags,
            },
            Self::Acquired {
                amount,
                at,
                crossed_at,
                flags,
                approval,
            } => IndicatorCredit::Acquired {
                amount,
                at,
                crossed_at: crossed_at.unwrap_or(at),
                flags,
                approval,
            },
            Self::Capped { at } => IndicatorCredit::Capped { at },
            Self::Rejected {
                at,
                crossed_at,
                flags,
                decision,
            } => IndicatorCredit::Rejected {
                at,
                crossed_at,
                flags,
                decision,
            },
            Self::Reversed {
                amount,
                crossed_at,
                acquired_at,
                at,
                flags,
                decision,
            } => IndicatorCredit::Reversed {
                amount,
                crossed_at,
                acquired_at,
                at,
                flags,
                decision,
            },
        }
    }
}

/// A user as stored: money as exact decimal text, times as Unix milliseconds.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct UserRecord {
    pub(super) hash: String,
    pub(super) indicator: Option<String>,
    #[serde(with = "opt_program_id")]
    pub(super) program_id: Option<ProgramId>,
    #[serde(with = "money_text")]
    pub(super) total_amount_paid: Money,
    #[serde(rename = "created_at_ms", with = "millis")]
    pub(super) created_at: DateTime<Utc>,
    pub(super) credit: Option<CreditRecord>,
}

impl UserRecord {
    pub(super) fn from_user(user: &User) -> Self {
        Self {
            hash: user.hash.to_string(),
            indicator: user.indicator.as_ref().map(ToString::to_string),
            program_id: user.program_id,
            total_amount_paid: user.total_amount_paid,
            created_at: user.created_at,
            credit: user.credit.as_ref().map(CreditRecord::from_credit),
        }
    }

    pub(super) fn into_user(self) -> User {
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
pub(super) struct LedgerRecord {
    pub(super) operation: LedgerOperation,
    pub(super) user_indicator: Option<String>,
    pub(super) user_indicated: String,
    #[serde(with = "opt_program_id")]
    pub(super) program_id: Option<ProgramId>,
    #[serde(with = "money_text")]
    pub(super) amount: SignedMoney,
    #[serde(rename = "created_at_ms", with = "millis")]
    pub(super) created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) event_id: Option<String>,
}

impl LedgerRecord {
    pub(super) fn from_entry(entry: &LedgerEntry) -> Self {
        Self {
            operation: entry.operation,
            user_indicator: entry.user_indicator.clone(),
            user_indicated: entry.user_indicated.clone(),
            program_id: entry.program_id,
            amount: entry.amount,
            created_at: entry.created_at,
            decision: entry.decision.clone(),
            event_id: entry.event_id.clone(),
        }
    }

    pub(super) fn into_entry(self) -> LedgerEntry {
        LedgerEntry {
            operation: self.operation,
            amount: self.amount,
            created_at: self.created_at,
            program_id: self.program_id,
            user_indicator: self.user_indicator,
            user_indicated: self.user_indicated,
            decision: self.decision,
            event_id: self.event_id,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct EmailRecord {
    pub(super) email: String,
    pub(super) user_indicator: String,
    #[serde(rename = "created_at_ms", with = "millis")]
    pub(super) created_at: DateTime<Utc>,
}

/// Unix milliseconds as an index key (times before 1970 sort first).
pub(super) fn ms(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

pub(super) fn read_user(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    hash: &str,
) -> Result<Option<User>, StoreError> {
    match table.get(hash).map_err(backend)? {
        Some(bytes) => Ok(Some(decode::<UserRecord>(bytes.value())?.into_user())),
        None => Ok(None),
    }
}

pub(super) fn write_user(txn: &WriteTransaction, user: &User) -> Result<(), StoreError> {
    put(txn, USERS, user.hash.as_str(), &UserRecord::from_user(user))
}

pub(super) fn append_ledger(
    txn: &WriteTransaction,
    entries: &[LedgerEntry],
) -> Result<(), StoreError> {
    let mut table = txn.open_table(LEDGER).map_err(backend)?;
    let first = table
        .last()
        .map_err(backend)?
        .map_or(0, |(key, _)| key.value() + 1);
    let mut by_user = txn.open_table(LEDGER_BY_USER).map_err(backend)?;
    for (key, entry) in (first..).zip(entries) {
        let record = encode(&LedgerRecord::from_entry(entry))?;
        table.insert(key, record.as_slice()).map_err(backend)?;
        by_user
            .insert((entry.user_indicated.as_str(), key), ())
            .map_err(backend)?;
    }
    Ok(())
}
