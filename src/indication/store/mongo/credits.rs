//! Credit steps: the running total, the conditional move of a credit, and the cap places it
//! takes or gives back.

use super::*;

/// How often a payment re-reads a credit that changed between its read and its write.
pub(super) const MAX_CREDIT_RACES: usize = 16;

impl MongoStore {
    pub(super) fn cap_places(&self) -> Collection<Document> {
        self.db.collection(CAP_PLACES)
    }

    /// Takes one of the indicator's places under its cap (or, with no cap, counts one):
    /// `false` when the cap is full. One conditional update moves the count only below the cap;
    /// the first place of an indicator is an insert, and an insert that loses to another is
    /// followed by the conditional update again.
    pub(super) async fn take_cap_place(&self, terms: &CreditTerms) -> Result<bool, StoreError> {
        let key = terms.cap_key();
        let filter = match terms.cap {
            Some(cap) => doc! { "_id": &key, "count": { "$lt": i64::from(cap.get()) } },
            None => doc! { "_id": &key },
        };
        let inc = doc! { "$inc": { "count": 1_i64 } };
        let moved = |result: mongodb::results::UpdateResult| result.matched_count == 1;
        if moved(
            self.cap_places()
                .update_one(filter.clone(), inc.clone())
                .within(self.timeout)
                .await?,
        ) {
            return Ok(true);
        }
        match self
            .cap_places()
            .insert_one(doc! { "_id": &key, "count": 1_i64 })
            .answered_within(self.timeout)
            .await?
        {
            Ok(_) => Ok(true),
            Err(err) if is_duplicate_key(&err) => Ok(moved(
                self.cap_places()
                    .update_one(filter, inc)
                    .within(self.timeout)
                    .await?,
            )),
            Err(err) => Err(store_error(err)),
        }
    }

    pub(super) async fn give_back_cap_place(&self, terms: &CreditTerms) -> Result<(), StoreError> {
        self.cap_places()
            .update_one(
                doc! { "_id": terms.cap_key(), "count": { "$gt": 0_i64 } },
                doc! { "$inc": { "count": -1_i64 } },
            )
            .within(self.timeout)
            .await?;
        Ok(())
    }

    /// Stores the total under `filter` alone; `None` when the filter no longer matches.
    pub(super) async fn set_total(
        &self,
        filter: Document,
        total: Decimal128,
    ) -> Result<Option<User>, StoreError> {
        self.users()
            .find_one_and_update(filter, doc! { "$set": { "total_amount_paid": total } })
            .projection(user_projection())
            .return_document(ReturnDocument::After)
            .within(self.timeout)
            .await?
            .map(UserDoc::into_user)
            .transpose()
    }

    /// Takes `user`'s credit through `step` with one conditional update under `filter` (the
    /// state the step was decided on): the credit, the ledger entry, the event and, for a
    /// payment, the total. A step that needs a place under the cap takes it first and becomes
    /// `capped` when the cap is full; a place taken for an update that then misses is given
    /// back, and a cancellation gives its place back after its update. A crash between the two
    /// writes leaves the count one too high: an indicator credited less, never more. `None`
    /// when the filter no longer matched: the caller reads again.
    pub(super) async fn take_step(
        &self,
        user: &User,
        terms: &CreditTerms,
        step: CreditStep,
        total: Option<Decimal128>,
        filter: Document,
    ) -> Result<Option<(User, CreditStep)>, StoreError> {
        let Some(from) = &user.credit else {
            return Ok(None);
        };
        let delta = step.cap_delta(from);
        let step = if delta > 0 && !self.take_cap_place(terms).await? {
            terms.capped()
        } else {
            step
        };
        let mut set = doc! { "credit": to_bson(&CreditDoc::from_credit(&step.credit)?)? };
        if let Some(total) = total {
            set.insert("total_amount_paid", total);
        }
        let mut push = doc! { "ledger": LedgerDoc::to_document(&step.ledger)? };
        if let Some(event) = &step.event {
            push.insert("callbacks", event_document(event)?);
        }
        push.insert("events", feed_document(&step.feed(&terms.program_name))?);
        let after = User {
            credit: Some(step.credit.clone()),
            ..user.clone()
        };
        let due = dues(Some(user), &after, Money::ZERO)?;
        if !due.is_empty() {
            push.insert(DUE, doc! { "$each": due });
        }
        // An admin's decision carries its audit entry in the same write.
        let carried = Carried::of(Some(user), Some(&after))?;
        if let Some(carried) = &carried {
            push.insert(CARRIED, carried.document.clone());
        }
        let updated = self
            .users()
            .find_one_and_update(filter, doc! { "$set": set, "$push": push })
            .projection(user_projection())
            .return_document(ReturnDocument::After)
            .within(self.timeout)
            .await;
        let took_place = delta > 0 && step.credit.counts_toward_cap();
        // An error leaves the outcome unknown (the update may have applied and its answer been
        // lost): the place is kept, so the count errs high — credited less, never more.
        let updated = updated?;
        let Some(doc) = updated else {
            if took_place {
                self.give_back_cap_place(terms).await?;
            }
            return Ok(None);
        };
        if let Some(carried) = carried {
            carried.done(USERS, Bson::String(user.hash.as_str().to_owned()));
        }
        if step.cap_delta(from) < 0 {
            self.give_back_cap_place(terms).await?;
        }
        Ok(Some((doc.into_user()?, step)))
    }
}
