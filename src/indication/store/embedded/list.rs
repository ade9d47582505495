//! The admin list of credits: index entries in registration order — an indicator's list, one
//! status's, or every status's merged — read a bounded number at a time and filtered.

use super::*;

type Key = (i64, String);
type Keys<'t> = Box<dyn Iterator<Item = Result<Key, StoreError>> + 't>;

/// The entries of `table` under `prefix` after the cursor, as (registration ms, hash).
fn after<'t>(
    table: &'t redb::ReadOnlyTable<(&'static str, i64, &'static str), ()>,
    prefix: &str,
    after: Option<&Cursor>,
) -> Result<Keys<'t>, StoreError> {
    let start = match after {
        Some(c) => Bound::Excluded((prefix, c.created_at.timestamp_millis(), c.id.as_str())),
        None => Bound::Included((prefix, i64::MIN, "")),
    };
    let end = Bound::Included((prefix, i64::MAX, "\u{10FFFF}"));
    let range = table
        .range::<(&str, i64, &str)>((start, end))
        .map_err(backend)?;
    Ok(Box::new(range.map(|entry| {
        let (key, _) = entry.map_err(backend)?;
        let (_, ms, hash) = key.value();
        Ok((ms, hash.to_owned()))
    })))
}

/// Several ordered sources as one, in order.
struct Merged<'t> {
    sources: Vec<Keys<'t>>,
    heads: Vec<Option<Key>>,
}

impl<'t> Merged<'t> {
    fn new(mut sources: Vec<Keys<'t>>) -> Result<Self, StoreError> {
        let heads = sources
            .iter_mut()
            .map(|source| source.next().transpose())
            .collect::<Result<_, _>>()?;
        Ok(Self { sources, heads })
    }

    fn next(&mut self) -> Result<Option<Key>, StoreError> {
        let Some(index) = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(index, head)| head.as_ref().map(|key| (key, index)))
            .min()
            .map(|(_, index)| index)
        else {
            return Ok(None);
        };
        let next = self.sources[index].next().transpose()?;
        Ok(std::mem::replace(&mut self.heads[index], next))
    }
}

fn cursor((ms, hash): &Key) -> Result<Cursor, StoreError> {
    Ok(Cursor {
        created_at: DateTime::from_timestamp_millis(*ms)
            .ok_or_else(|| StoreError::Corrupt("registration time out of range".to_owned()))?,
        id: hash.clone(),
    })
}

/// Up to `limit` credits matching `filter` after `after`, reading at most [`CREDIT_SCAN`]
/// index entries: from the indicator's list when one is named, else from the status's index,
/// else from every status's index merged.
pub(super) fn credit_page(
    txn: &redb::ReadTransaction,
    filter: &CreditFilter,
    after_cursor: Option<&Cursor>,
    limit: usize,
) -> Result<CreditPage, StoreError> {
    let users = txn.open_table(USERS).map_err(backend)?;
    let pages = txn.open_table(INDICATED_PAGES).map_err(backend)?;
    let statuses = txn.open_table(CREDIT_STATUSES).map_err(backend)?;
    let sources = match (&filter.indicator, filter.status) {
        (Some(indicator), _) => vec![after(&pages, indicator.as_str(), after_cursor)?],
        (None, Some(status)) => vec![after(&statuses, status.as_str(), after_cursor)?],
        (None, None) => CreditStatus::ALL
            .iter()
            .map(|status| after(&statuses, status.as_str(), after_cursor))
            .collect::<Result<_, _>>()?,
    };
    let mut keys = Merged::new(sources)?;
    let mut found = Vec::new();
    let mut last = None;
    let mut scanned = 0;
    while let Some(key) = keys.next()? {
        scanned += 1;
        if let Some(user) = read_user(&users, &key.1)?
            && filter.matches(&user)
        {
            found.push(user);
        }
        last = Some(key);
        if found.len() > limit || scanned >= CREDIT_SCAN {
            break;
        }
    }
    let mut page = CreditPage::of(found, limit);
    if page.next.is_none() && scanned >= CREDIT_SCAN {
        page.next = last.as_ref().map(cursor).transpose()?;
    }
    Ok(page)
}
