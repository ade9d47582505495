//! A credit step in one transaction: the user, the cap place, the holds and status indexes,
//! the figures, the ledger entry and the event.

use super::*;

/// Takes the user's credit through `step` (or `capped`, when the step needs a place under a
/// full cap) inside the caller's transaction: the cap count, the figures, the holds index, the
/// ledger entry and the event. Returns the step taken.
pub(super) fn take_step(
    txn: &WriteTransaction,
    user: &mut User,
    terms: &CreditTerms,
    step: CreditStep,
) -> Result<CreditStep, StoreError> {
    let Some(from) = user.credit.clone() else {
        return Err(StoreError::Backend(
            "a credit step needs a credit".to_owned(),
        ));
    };
    let key = terms.cap_key();
    let mut places = txn.open_table(CAP_PLACES).map_err(backend)?;
    let held = places
        .get(key.as_str())
        .map_err(backend)?
        .map_or(0, |v| v.value());
    let step = match step.cap_delta(&from) {
        1 if terms.cap.is_some_and(|cap| !cap.admits(held)) => terms.capped(),
        _ => step,
    };
    let places_after = match step.cap_delta(&from) {
        1 => held.saturating_add(1),
        -1 => held.saturating_sub(1),
        _ => held,
    };
    places.insert(key.as_str(), places_after).map_err(backend)?;
    drop(places);
    change_figures(txn, terms.program_id, &terms.indicator, |figures| {
        figures.count(&from, false)?;
        figures.count(&step.credit, true)
    })?;
    let mut holds = txn.open_table(HOLDS_DUE).map_err(backend)?;
    if let IndicatorCredit::Held { release_at, .. } = &from {
        holds
            .remove((ms(*release_at), user.hash.as_str()))
            .map_err(backend)?;
    }
    if let IndicatorCredit::Held { release_at, .. } = &step.credit {
        holds
            .insert((ms(*release_at), user.hash.as_str()), ())
            .map_err(backend)?;
    }
    drop(holds);
    let mut statuses = txn.open_table(CREDIT_STATUSES).map_err(backend)?;
    let at = user.created_at.timestamp_millis();
    statuses
        .remove((from.status().as_str(), at, user.hash.as_str()))
        .map_err(backend)?;
    statuses
        .insert((step.credit.status().as_str(), at, user.hash.as_str()), ())
        .map_err(backend)?;
    drop(statuses);
    append_ledger(txn, std::slice::from_ref(&step.ledger))?;
    if let Some(event) = &step.event {
        queue_event(txn, event)?;
    }
    record_event(txn, &step.feed(&terms.program_name))?;
    user.credit = Some(step.credit.clone());
    Ok(step)
}

/// Indexes a new indicated user: in its indicator's list, by credit status, and among the
/// indicator's registrations in its program.
pub(super) fn index_registration(txn: &WriteTransaction, user: &User) -> Result<(), StoreError> {
    let (Some(indicator), Some(program), Some(credit)) =
        (&user.indicator, user.program_id, &user.credit)
    else {
        return Ok(());
    };
    let at = user.created_at.timestamp_millis();
    let hash = user.hash.as_str();
    txn.open_table(INDICATED_PAGES)
        .map_err(backend)?
        .insert((indicator.as_str(), at, hash), ())
        .map_err(backend)?;
    txn.open_table(CREDIT_STATUSES)
        .map_err(backend)?
        .insert((credit.status().as_str(), at, hash), ())
        .map_err(backend)?;
    let program = program.to_string();
    txn.open_table(REGISTRATIONS)
        .map_err(backend)?
        .insert((program.as_str(), indicator.as_str(), at, hash), ())
        .map_err(backend)?;
    Ok(())
}
