//! The documents of users and indicated e-mails as MongoDB stores them: ObjectId, Decimal128
//! and BSON dates, enums through serde.

use super::*;

/// A credit as stored: its status, amount and the times, flags and decision its state has.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct CreditDoc {
    /// Never `none`: only indicated users have a credit.
    pub(super) status: Option<CreditStatus>,
    pub(super) amount: Option<Decimal128>,
    pub(super) acquired_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) held_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) release_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) capped_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) crossed_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rejected_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) reversed_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) flags: Vec<CreditFlag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) decision: Option<Decision>,
}

impl CreditDoc {
    pub(super) fn from_credit(credit: &IndicatorCredit) -> Result<Self, StoreError> {
        let date = |at: &DateTime<Utc>| Some(to_bson_datetime(*at));
        let mut doc = Self {
            status: Some(credit.status()),
            amount: credit.amount().map(to_decimal128).transpose()?,
            flags: credit.flags().to_vec(),
            decision: credit.decision().cloned(),
            release_at: credit.release_at().as_ref().and_then(date),
            acquired_at: credit.acquired_at().as_ref().and_then(date),
            reversed_at: credit.reversed_at().as_ref().and_then(date),
            rejected_at: credit.rejected_at().as_ref().and_then(date),
            ..Self::default()
        };
        match credit {
            IndicatorCredit::Held { held_at, .. } => doc.held_at = date(held_at),
            IndicatorCredit::Capped { at } => doc.capped_at = date(at),
            IndicatorCredit::Pending => {}
            _ => doc.crossed_at = credit.crossed_at().as_ref().and_then(date),
        }
        Ok(doc)
    }

    pub(super) fn into_credit(self, hash: &str) -> Result<IndicatorCredit, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("user {hash}: bad credit"));
        let time =
            |at: Option<mongodb::bson::DateTime>| from_bson_datetime(at.ok_or_else(corrupt)?);
        let amount = || from_decimal128(self.amount.ok_or_else(corrupt)?);
        let decision = || self.decision.clone().ok_or_else(corrupt);
        Ok(match self.status.ok_or_else(corrupt)? {
            CreditStatus::None => return Err(corrupt()),
            CreditStatus::Pending => IndicatorCredit::Pending,
            CreditStatus::Held => IndicatorCredit::Held {
                amount: amount()?,
                held_at: time(self.held_at)?,
                release_at: time(self.release_at)?,
            },
            CreditStatus::InReview => IndicatorCredit::InReview {
                amount: amount()?,
                crossed_at: time(self.crossed_at)?,
                flags: self.flags,
            },
            CreditStatus::Acquired => {
                let at = time(self.acquired_at)?;
                IndicatorCredit::Acquired {
                    amount: amount()?,
                    at,
                    // Credits acquired before reviews existed crossed when acquired.
                    crossed_at: self
                        .crossed_at
                        .map(from_bson_datetime)
                        .transpose()?
                        .unwrap_or(at),
                    approval: self.decision,
                    flags: self.flags,
                }
            }
            CreditStatus::Capped => IndicatorCredit::Capped {
                at: time(self.capped_at)?,
            },
            CreditStatus::Rejected => IndicatorCredit::Rejected {
                at: time(self.rejected_at)?,
                crossed_at: self.crossed_at.map(from_bson_datetime).transpose()?,
                decision: decision()?,
                flags: self.flags,
            },
            CreditStatus::Reversed => IndicatorCredit::Reversed {
                amount: amount()?,
                crossed_at: time(self.crossed_at)?,
                acquired_at: time(self.acquired_at)?,
                at: time(self.reversed_at)?,
                decision: decision()?,
                flags: self.flags,
            },
        })
    }
}

/// The filter that holds only while the user's credit is still `credit`: its status and the
/// time that tells this visit to the state from another (a credit cancelled and held again has
/// another release time).
pub(super) fn credit_filter(
    hash: &UserHash,
    credit: &IndicatorCredit,
) -> Result<Document, StoreError> {
    let mut filter = doc! {
        "_id": hash.as_str(),
        "credit.status": to_bson(&credit.status())?,
    };
    // A credit that left the state and came back to it is another one: told apart by a time.
    match credit {
        IndicatorCredit::Held { release_at, .. } => {
            filter.insert("credit.release_at", to_bson_datetime(*release_at));
        }
        IndicatorCredit::Acquired { at, .. } => {
            filter.insert("credit.acquired_at", to_bson_datetime(*at));
        }
        IndicatorCredit::InReview { crossed_at, .. } => {
            filter.insert("credit.crossed_at", to_bson_datetime(*crossed_at));
        }
        IndicatorCredit::Reversed { at, .. } => {
            filter.insert("credit.reversed_at", to_bson_datetime(*at));
        }
        _ => {}
    }
    Ok(filter)
}

/// A user as stored. `ledger` and `callbacks` are written with the document and read only by
/// the ledger and the outbox.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct UserDoc {
    #[serde(rename = "_id")]
    pub(super) hash: String,
    pub(super) user_indicator: Option<String>,
    pub(super) program_id: Option<ObjectId>,
    pub(super) total_amount_paid: Decimal128,
    pub(super) created_at: mongodb::bson::DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) credit: Option<CreditDoc>,
    /// What the indicated user received at signup, for the program figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) signup_credit: Option<Decimal128>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) ledger: Vec<LedgerDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) callbacks: Vec<EventInUser>,
    /// Feed events waiting for the events relay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) events: Vec<Document>,
    /// The changes this user made to the figures' totals, until folded into them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) figures_due: Vec<Document>,
    /// The import that created this user, which counts it into its program's figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) import_batch: Option<ObjectId>,
}

impl UserDoc {
    pub(super) fn from_user(user: &User) -> Result<Self, StoreError> {
        let credit = user
            .credit
            .as_ref()
            .map(CreditDoc::from_credit)
            .transpose()?;
        Ok(Self {
            hash: user.hash.to_string(),
            user_indicator: user.indicator.as_ref().map(ToString::to_string),
            program_id: user.program_id.map(ProgramId::object_id),
            total_amount_paid: to_decimal128(user.total_amount_paid)?,
            created_at: to_bson_datetime(user.created_at),
            credit,
            signup_credit: None,
            ledger: Vec::new(),
            callbacks: Vec::new(),
            events: Vec::new(),
            figures_due: Vec::new(),
            import_batch: None,
        })
    }

    pub(super) fn into_user(self) -> Result<User, StoreError> {
        let credit = self
            .credit
            .map(|credit| credit.into_credit(&self.hash))
            .transpose()?;
        Ok(User {
            hash: UserHash::from_stored(self.hash),
            indicator: self.user_indicator.map(UserHash::from_stored),
            program_id: self.program_id.map(ProgramId::from_object_id),
            total_amount_paid: from_decimal128(self.total_amount_paid)?,
            created_at: from_bson_datetime(self.created_at)?,
            credit,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct LedgerDoc {
    pub(super) operation: LedgerOperation,
    pub(super) user_indicator: Option<String>,
    pub(super) user_indicated: String,
    pub(super) program_id: Option<ObjectId>,
    pub(super) amount: Decimal128,
    pub(super) created_at: mongodb::bson::DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) event_id: Option<String>,
}

impl LedgerDoc {
    pub(super) fn from_entry(entry: &LedgerEntry) -> Result<Self, StoreError> {
        Ok(Self {
            operation: entry.operation,
            user_indicator: entry.user_indicator.clone(),
            user_indicated: entry.user_indicated.clone(),
            program_id: entry.program_id.map(ProgramId::object_id),
            amount: to_decimal128(entry.amount)?,
            created_at: to_bson_datetime(entry.created_at),
            decision: entry.decision.clone(),
            event_id: entry.event_id.clone(),
        })
    }

    pub(super) fn to_document(entry: &LedgerEntry) -> Result<Document, StoreError> {
        mongodb::bson::to_document(&Self::from_entry(entry)?)
            .map_err(|e| StoreError::Backend(format!("cannot encode ledger entry: {e}")))
    }

    pub(super) fn into_entry(self) -> Result<LedgerEntry, StoreError> {
        Ok(LedgerEntry {
            operation: self.operation,
            user_indicator: self.user_indicator,
            user_indicated: self.user_indicated,
            program_id: self.program_id.map(ProgramId::from_object_id),
            amount: from_decimal128(self.amount)?,
            created_at: from_bson_datetime(self.created_at)?,
            decision: self.decision,
            event_id: self.event_id,
        })
    }
}

/// An indicated e-mail, keyed by the address (unique across all indicators).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct EmailDoc {
    #[serde(rename = "_id")]
    pub(super) email: String,
    pub(super) user_indicator: String,
    pub(super) created_at: mongodb::bson::DateTime,
    #[serde(default)]
    pub(super) ledger: Vec<LedgerDoc>,
}

#[derive(Deserialize)]
pub(super) struct LedgerOnly {
    #[serde(default)]
    pub(super) ledger: Vec<LedgerDoc>,
}

/// User reads leave out the ledger and the events.
pub(super) fn user_projection() -> Document {
    doc! { "ledger": 0, "callbacks": 0, "events": 0, CARRIED: 0, "figures_due": 0 }
}
