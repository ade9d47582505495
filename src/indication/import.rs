//! `referral-api import-users FILE`: the original's `users.txt`, one user a line, fields split by
//! `|`, the hash first. Blank and malformed lines are skipped and reported with their numbers.
//! Writes go in batches, and running it twice changes nothing.

use std::io::BufRead;

use super::{
    IndicationStore, UserHash,
    service::{self, IndicationError, MAX_USERS_PER_REQUEST},
};
use crate::{clock, programs::ProgramStore};

/// Users created per write: as many as one `POST /users/` accepts.
pub const BATCH_SIZE: usize = MAX_USERS_PER_REQUEST;

#[derive(Debug, Default, PartialEq)]
pub struct ImportReport {
    pub created: usize,
    pub existing: usize,
    /// `(line number, reason)` of every line skipped: blank or malformed.
    pub skipped: Vec<(usize, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] IndicationError),
}

/// The hash of one line: `Ok(None)` for a blank line, `Err` for a malformed one.
pub fn parse_line(line: &str) -> Result<Option<UserHash>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let first = line.split('|').next().unwrap_or("");
    match UserHash::parse(first) {
        Some(hash) => Ok(Some(hash)),
        None if first.trim().is_empty() => {
            Err("the first field (the user hash) is empty".to_owned())
        }
        None => Err("the user hash is longer than 128 characters".to_owned()),
    }
}

pub async fn import_users(
    reader: impl BufRead,
    programs: &dyn ProgramStore,
    users: &dyn IndicationStore,
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport::default();
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    for (index, line) in reader.lines().enumerate() {
        match parse_line(&line?) {
            Ok(Some(hash)) => batch.push(hash),
            Ok(None) => report.skipped.push((index + 1, "blank line".to_owned())),
            Err(reason) => report.skipped.push((index + 1, reason)),
        }
        if batch.len() == BATCH_SIZE {
            flush(&mut batch, programs, users, &mut report).await?;
        }
    }
    flush(&mut batch, programs, users, &mut report).await?;
    Ok(report)
}

async fn flush(
    batch: &mut Vec<UserHash>,
    programs: &dyn ProgramStore,
    users: &dyn IndicationStore,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let outcome =
        service::create_users(users, programs, std::mem::take(batch), clock::now()).await?;
    report.created += outcome.created.len();
    report.existing += outcome.existing.len();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_their_first_field() {
        assert_eq!(parse_line("abc|Ana|x").unwrap().unwrap().as_str(), "abc");
        assert_eq!(parse_line("  abc  ").unwrap().unwrap().as_str(), "abc");
        assert_eq!(parse_line("   "), Ok(None));
        assert!(parse_line("|Ana").is_err());
        assert!(parse_line(&"x".repeat(129)).is_err());
    }
}
