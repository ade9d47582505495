//! The indication capability's data migrations on the embedded store (versions 2, 3 and 5).

use super::*;
use crate::storage::embedded::all_records;

/// Moves the indicated-by index of earlier stores into [`INDICATED_PAGES`], and empties it.
pub(super) fn order_indicated_users(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut pairs = Vec::new();
    {
        let index = txn.open_multimap_table(INDICATED).map_err(backend)?;
        for entry in index.iter().map_err(backend)? {
            let (indicator, hashes) = entry.map_err(backend)?;
            for hash in hashes {
                pairs.push((
                    indicator.value().to_owned(),
                    hash.map_err(backend)?.value().to_owned(),
                ));
            }
        }
    }
    let users = txn.open_table(USERS).map_err(backend)?;
    let mut pages = txn.open_table(INDICATED_PAGES).map_err(backend)?;
    let mut index = txn.open_multimap_table(INDICATED).map_err(backend)?;
    for (indicator, hash) in &pairs {
        if let Some(user) = read_user(&users, hash)? {
            let at = user.created_at.timestamp_millis();
            pages
                .insert((indicator.as_str(), at, hash.as_str()), ())
                .map_err(backend)?;
        }
        index
            .remove(indicator.as_str(), hash.as_str())
            .map_err(backend)?;
    }
    Ok(())
}

/// Builds the program and indicator figures, the cap counts and the holds index from the
/// users and the ledger stored before they existed; runs once, when no indicator figures exist
/// and users were indicated.
pub(super) fn count_earlier_credits(txn: &WriteTransaction) -> Result<(), StoreError> {
    if !txn
        .open_table(INDICATED_FIGURES)
        .map_err(backend)?
        .is_empty()
        .map_err(backend)?
        || txn
            .open_multimap_table(INDICATED)
            .map_err(backend)?
            .is_empty()
            .map_err(backend)?
    {
        return Ok(());
    }
    let mut figures = HashMap::<ProgramId, FiguresRecord>::new();
    let mut by_indicator = HashMap::<(String, ProgramId), FiguresRecord>::new();
    let mut places = HashMap::<String, u64>::new();
    let mut holds = Vec::new();
    for user in stored_users(txn)? {
        let (Some(program), Some(indicator), Some(credit)) =
            (user.program_id, &user.indicator, &user.credit)
        else {
            continue;
        };
        for record in [
            figures.entry(program).or_default(),
            by_indicator
                .entry((indicator.to_string(), program))
                .or_default(),
        ] {
            record.indicated_users += 1;
            record.count(credit, true)?;
        }
        if credit.counts_toward_cap() {
            *places.entry(format!("{program}:{indicator}")).or_default() += 1;
        }
        if let IndicatorCredit::Held { release_at, .. } = credit {
            holds.push((ms(*release_at), user.hash.to_string()));
        }
    }
    for entry in txn
        .open_table(LEDGER)
        .map_err(backend)?
        .iter()
        .map_err(backend)?
    {
        let (_, bytes) = entry.map_err(backend)?;
        let entry = decode::<LedgerRecord>(bytes.value())?;
        if let (LedgerOperation::SignupCredit, Some(program), Some(indicator)) =
            (entry.operation, entry.program_id, &entry.user_indicator)
        {
            for record in [
                figures.entry(program).or_default(),
                by_indicator
                    .entry((indicator.clone(), program))
                    .or_default(),
            ] {
                record.signup_credit_total = record
                    .signup_credit_total
                    .checked_add(entry.amount.magnitude())
                    .ok_or_else(|| StoreError::Corrupt("signup credit total".to_owned()))?;
            }
        }
    }
    let mut table = txn.open_table(FIGURES).map_err(backend)?;
    for (program, record) in figures {
        let record = encode(&record)?;
        table
            .insert(program.to_string().as_str(), record.as_slice())
            .map_err(backend)?;
    }
    let mut table = txn.open_table(INDICATED_FIGURES).map_err(backend)?;
    for ((indicator, program), record) in by_indicator {
        let record = encode(&record)?;
        table
            .insert(
                (indicator.as_str(), program.to_string().as_str()),
                record.as_slice(),
            )
            .map_err(backend)?;
    }
    let mut table = txn.open_table(CAP_PLACES).map_err(backend)?;
    for (key, count) in places {
        table.insert(key.as_str(), count).map_err(backend)?;
    }
    let mut table = txn.open_table(HOLDS_DUE).map_err(backend)?;
    for (at, hash) in holds {
        table.insert((at, hash.as_str()), ()).map_err(backend)?;
    }
    Ok(())
}

/// Indexes the credits stored before migration 5 by status and by program and indicator, and
/// the ledger by indicated user.
pub(super) fn index_credits(txn: &WriteTransaction) -> Result<(), StoreError> {
    for user in stored_users(txn)? {
        index_registration(txn, &user)?;
    }
    let mut entries = Vec::new();
    for entry in txn
        .open_table(LEDGER)
        .map_err(backend)?
        .iter()
        .map_err(backend)?
    {
        let (key, bytes) = entry.map_err(backend)?;
        entries.push((
            key.value(),
            decode::<LedgerRecord>(bytes.value())?.user_indicated,
        ));
    }
    let mut by_user = txn.open_table(LEDGER_BY_USER).map_err(backend)?;
    for (key, user) in &entries {
        by_user.insert((user.as_str(), *key), ()).map_err(backend)?;
    }
    Ok(())
}

/// Every stored user, read whole: for migrations, which run once.
fn stored_users(txn: &WriteTransaction) -> Result<Vec<User>, StoreError> {
    let records: Vec<UserRecord> = all_records(&txn.open_table(USERS).map_err(backend)?)?;
    Ok(records.into_iter().map(UserRecord::into_user).collect())
}
