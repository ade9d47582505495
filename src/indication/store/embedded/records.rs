//! Users, ledger entries and indicated e-mails as the embedded store keeps them: JSON records,
//! times in milliseconds, money as exact text.

use super::*;

/// A credit as stored: `IndicatorCredit` itself, its times in milliseconds and its money as
/// exact text (a serde definition of the domain type, so the two cannot drift).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CreditRecord(#[serde(with = "CreditDef")] pub(super) IndicatorCredit);

#[derive(Serialize, Deserialize)]
#[serde(remote = "IndicatorCredit", tag = "status", rename_all = "snake_case")]
enum CreditDef {
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
    #[serde(deserialize_with = "acquired")]
    Acquired {
        #[serde(with = "money_text")]
        amount: Money,
        #[serde(rename = "at_ms", with = "millis")]
        at: DateTime<Utc>,
        #[serde(rename = "crossed_at_ms", with = "millis")]
        crossed_at: DateTime<Utc>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        flags: Vec<CreditFlag>,
        #[serde(skip_serializing_if = "Option::is_none")]
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

/// The fields of an acquired credit (`amount, at, crossed_at, flags, approval`), read also from
/// credits stored before reviews: without `crossed_at_ms` (then the acquisition time), flags or
/// approval.
type AcquiredFields = (
    Money,
    DateTime<Utc>,
    DateTime<Utc>,
    Vec<CreditFlag>,
    Option<Decision>,
);

fn acquired<'de, D: serde::Deserializer<'de>>(fields: D) -> Result<AcquiredFields, D::Error> {
    #[derive(Deserialize)]
    struct Acquired {
        #[serde(with = "money_text")]
        amount: Money,
        #[serde(rename = "at_ms", with = "millis")]
        at: DateTime<Utc>,
        #[serde(rename = "crossed_at_ms", default, with = "opt_millis")]
        crossed_at: Option<DateTime<Utc>>,
        #[serde(default)]
        flags: Vec<CreditFlag>,
        #[serde(default)]
        approval: Option<Decision>,
    }
    let stored = Acquired::deserialize(fields)?;
    let crossed_at = stored.crossed_at.unwrap_or(stored.at);
    Ok((
        stored.amount,
        stored.at,
        crossed_at,
        stored.flags,
        stored.approval,
    ))
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
            credit: user.credit.clone().map(CreditRecord),
        }
    }

    pub(super) fn into_user(self) -> User {
        User {
            total_amount_paid: self.total_amount_paid,
            created_at: self.created_at,
            program_id: self.program_id,
            hash: UserHash::from_stored(self.hash),
            indicator: self.indicator.map(UserHash::from_stored),
            credit: self.credit.map(|credit| credit.0),
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("time")
    }

    fn round_trip(credit: IndicatorCredit) -> Value {
        let stored = serde_json::to_value(CreditRecord(credit.clone())).expect("encode");
        let read: CreditRecord = serde_json::from_value(stored.clone()).expect("decode");
        assert_eq!(read.0, credit);
        stored
    }

    #[test]
    fn credits_keep_their_stored_form_and_read_those_stored_before_reviews() {
        let amount: Money = "100.5".parse().expect("money");
        let acquired = IndicatorCredit::Acquired {
            amount,
            at: at(2000),
            crossed_at: at(1000),
            flags: Vec::new(),
            approval: None,
        };
        assert_eq!(
            round_trip(acquired),
            json!({ "status": "acquired", "amount": "100.5", "at_ms": 2000, "crossed_at_ms": 1000 })
        );
        // Stored before reviews: no crossing time, flags or approval.
        let legacy = json!({ "status": "acquired", "amount": "100.5", "at_ms": 2000 });
        let read: CreditRecord = serde_json::from_value(legacy).expect("decode");
        let crossed_when_acquired = IndicatorCredit::Acquired {
            amount,
            at: at(2000),
            crossed_at: at(2000),
            flags: Vec::new(),
            approval: None,
        };
        assert_eq!(read.0, crossed_when_acquired);

        let flag = CreditFlag::PreviousReversal { reversed: 1 };
        let rejected = round_trip(IndicatorCredit::Rejected {
            at: at(3000),
            crossed_at: None,
            flags: vec![flag.clone()],
            decision: Decision::refund(),
        });
        assert_eq!(rejected["crossed_at_ms"], Value::Null);
        let held = round_trip(IndicatorCredit::Held {
            amount,
            held_at: at(1000),
            release_at: at(5000),
        });
        assert_eq!(
            held,
            json!({ "status": "held", "amount": "100.5", "held_at_ms": 1000, "release_at_ms": 5000 })
        );
        round_trip(IndicatorCredit::Pending);
        round_trip(IndicatorCredit::Capped { at: at(1) });
        round_trip(IndicatorCredit::InReview {
            amount,
            crossed_at: at(1000),
            flags: vec![flag.clone()],
        });
        round_trip(IndicatorCredit::Reversed {
            amount,
            crossed_at: at(1000),
            acquired_at: at(2000),
            at: at(3000),
            flags: vec![flag],
            decision: Decision::refund(),
        });
    }
}
