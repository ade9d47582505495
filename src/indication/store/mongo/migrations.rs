//! The indication capability's data migrations on MongoDB.

use super::*;

impl MongoStore {
    /// Gives indicated users stored before the program figures existed their `signup_credit`
    /// (from their ledger), and counts their held and acquired credits toward their
    /// indicator's cap. The count moves before the mark, so a crash in between, or two
    /// instances starting at once, leave it too high: an indicator credited less, never more.
    pub(super) async fn count_earlier_credits(&self) -> Result<(), StoreError> {
        let statuses = [
            CreditStatus::Pending,
            CreditStatus::Held,
            CreditStatus::Acquired,
            CreditStatus::Capped,
        ]
        .iter()
        .map(to_bson)
        .collect::<Result<Vec<_>, _>>()?;
        let earlier: Vec<UserDoc> = self
            .users()
            .find(doc! {
                "credit.status": { "$in": statuses },
                "signup_credit": { "$exists": false },
            })
            .projection(doc! { "callbacks": 0 })
            .all_within(self.timeout)
            .await?;
        for doc in earlier {
            let signup = doc
                .ledger
                .iter()
                .find(|entry| entry.operation == LedgerOperation::SignupCredit)
                .map_or(to_decimal128(Money::ZERO), |entry| Ok(entry.amount))?;
            let hash = doc.hash.clone();
            let user = doc.into_user()?;
            if let (Some(program), Some(indicator), Some(credit)) =
                (user.program_id, &user.indicator, &user.credit)
                && credit.counts_toward_cap()
            {
                self.cap_places()
                    .update_one(
                        doc! { "_id": format!("{program}:{indicator}") },
                        doc! { "$inc": { "count": 1_i64 } },
                    )
                    .upsert(true)
                    .within(self.timeout)
                    .await?;
            }
            self.users()
                .update_one(
                    doc! { "_id": hash, "signup_credit": { "$exists": false } },
                    doc! { "$set": { "signup_credit": signup } },
                )
                .within(self.timeout)
                .await?;
        }
        Ok(())
    }
}
