//! Program and indicator figures: one aggregation over the matching users, grouped by
//! program and credit state.

use super::*;

/// A sum from an aggregation: Decimal128, or a plain 0 when nothing was summed.
pub(super) fn money_of(value: Option<&Bson>) -> Result<Money, StoreError> {
    match value {
        Some(Bson::Decimal128(amount)) => from_decimal128(*amount),
        _ => Ok(Money::ZERO),
    }
}

pub(super) fn figures_overflow() -> StoreError {
    StoreError::Corrupt("figures out of range".to_owned())
}

impl MongoStore {
    /// The figures of the users matching `filter`, per program: one aggregation grouping them
    /// by program and credit state, counting them and summing their credits and signup credits.
    pub(super) async fn credit_figures(
        &self,
        filter: Document,
    ) -> Result<Vec<(Option<ProgramId>, ProgramFigures)>, StoreError> {
        let pipeline = [
            doc! { "$match": filter },
            doc! { "$group": {
                "_id": { "program": "$program_id", "status": "$credit.status" },
                "users": { "$sum": 1 },
                "amount": { "$sum": "$credit.amount" },
                "signup": { "$sum": "$signup_credit" },
            } },
        ];
        let groups: Vec<Document> = self
            .users()
            .aggregate(pipeline)
            .all_within(self.timeout)
            .await?;
        let mut by_program: Vec<(Option<ProgramId>, ProgramFigures)> = Vec::new();
        for group in groups {
            let id = group.get_document("_id").ok();
            let program = id
                .and_then(|id| id.get_object_id("program").ok())
                .map(ProgramId::from_object_id);
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
            let amount = money_of(group.get("amount"))?;
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
                    *total = amount;
                }
            }
            match by_program.iter_mut().find(|(p, _)| *p == program) {
                Some((_, total)) => total.add(&figures).ok_or_else(figures_overflow)?,
                None => by_program.push((program, figures)),
            }
        }
        Ok(by_program)
    }
}
