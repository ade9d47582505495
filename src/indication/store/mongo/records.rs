//! The documents of users and indicated e-mails as MongoDB stores them: ObjectId, Decimal128
//! and BSON dates, enums through serde.

use super::*;

/// Where the indicator's credit for this user stands, as stored in `credit.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum CreditState {
    Pending,
    Held,
    Acquired,
    Capped,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CreditDoc {
    pub(super) status: CreditState,
    pub(super) amount: Option<Decimal128>,
    pub(super) acquired_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) held_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) release_at: Option<mongodb::bson::DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) capped_at: Option<mongodb::bson::DateTime>,
}

impl CreditDoc {
    pub(super) fn from_credit(credit: &IndicatorCredit) -> Result<Self, StoreError> {
        let mut doc = Self {
            status: CreditState::Pending,
            amount: None,
            acquired_at: None,
            held_at: None,
            release_at: None,
            capped_at: None,
        };
        match credit {
            IndicatorCredit::Pending => {}
            IndicatorCredit::Held {
                amount,
                held_at,
                release_at,
            } => {
                doc.status = CreditState::Held;
                doc.amount = Some(to_decimal128(*amount)?);
                doc.held_at = Some(to_bson_datetime(*held_at));
                doc.release_at = Some(to_bson_datetime(*release_at));
            }
            IndicatorCredit::Acquired { amount, at } => {
                doc.status = CreditState::Acquired;
                doc.amount = Some(to_decimal128(*amount)?);
                doc.acquired_at = Some(to_bson_datetime(*at));
            }
            IndicatorCredit::Capped { at } => {
                doc.status = CreditState::Capped;
                doc.amount = Some(to_decimal128(Money::ZERO)?);
                doc.capped_at = Some(to_bson_datetime(*at));
            }
        }
        Ok(doc)
    }

    pub(super) fn into_credit(self, hash: &str) -> Result<IndicatorCredit, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("user {hash}: bad credit"));
        Ok(match (self.status, self.amount) {
            (CreditState::Pending, _) => IndicatorCredit::Pending,
            (CreditState::Held, Some(amount)) => IndicatorCredit::Held {
                amount: from_decimal128(amount)?,
                held_at: from_bson_datetime(self.held_at.ok_or_else(corrupt)?)?,
                release_at: from_bson_datetime(self.release_at.ok_or_else(corrupt)?)?,
            },
            (CreditState::Acquired, Some(amount)) => IndicatorCredit::Acquired {
                amount: from_decimal128(amount)?,
                at: from_bson_datetime(self.acquired_at.ok_or_else(corrupt)?)?,
            },
            (CreditState::Capped, _) => IndicatorCredit::Capped {
                at: from_bson_datetime(self.capped_at.ok_or_else(corrupt)?)?,
            },
            (_, None) => return Err(corrupt()),
        })
    }
}

/// The filter that holds only while the user's credit is still `credit`: its status and, for a
/// held credit, its release time (a credit cancelled and held again has another).
pub(super) fn credit_filter(
    hash: &UserHash,
    credit: &IndicatorCredit,
) -> Result<Document, StoreError> {
    let mut filter = doc! {
        "_id": hash.as_str(),
        "credit.status": to_bson(&CreditDoc::from_credit(credit)?.status)?,
    };
    if let IndicatorCredit::Held { release_at, .. } = credit {
        filter.insert("credit.release_at", to_bson_datetime(*release_at));
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
    doc! { "ledger": 0, "callbacks": 0 }
}
