//! `referral-api import-referrers FILE`: existing referrers and their codes, from a CSV file
//! with the header `email,firstName,lastName,referralCode`. Codes keep their spelling; an empty
//! code gets a generated one. An e-mail already registered is left as it is, so running the
//! import twice changes nothing. Bad lines are reported with their line numbers and skipped.

use std::io::Read;

use super::service::ReferralError;
use super::{
    domain::{MAX_NAME_CHARS, ReferralCode, Referrer},
    service,
    store::{ReferralStore, ReferrerConflict},
};
use crate::{clock, email::Email, storage::StoreError};

pub const HEADER: [&str; 4] = ["email", "firstName", "lastName", "referralCode"];

#[derive(Debug, Default, PartialEq)]
pub struct ImportReport {
    pub created: usize,
    pub existing: usize,
    /// `(line number, reason)` of every line skipped.
    pub skipped: Vec<(u64, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the first line must be the header `{}`", HEADER.join(","))]
    Header,
    #[error("cannot read the file: {0}")]
    Read(#[from] csv::Error),
    #[error(transparent)]
    Referral(#[from] ReferralError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Row {
    email: Email,
    first_name: Option<String>,
    last_name: Option<String>,
    code: Option<ReferralCode>,
}

fn parse_row(record: &csv::StringRecord) -> Result<Row, String> {
    if record.len() != HEADER.len() {
        return Err(format!(
            "expected {} fields, found {}",
            HEADER.len(),
            record.len()
        ));
    }
    let field = |i: usize| record.get(i).map(str::trim).filter(|v| !v.is_empty());
    let email = field(0)
        .and_then(Email::parse)
        .ok_or_else(|| "the e-mail is missing or not valid".to_owned())?;
    let name = |i: usize| -> Result<Option<String>, String> {
        match field(i) {
            Some(n) if n.chars().count() > MAX_NAME_CHARS => {
                Err(format!("a name is longer than {MAX_NAME_CHARS} characters"))
            }
            other => Ok(other.map(str::to_owned)),
        }
    };
    let code = match field(3) {
        None => None,
        Some(raw) => Some(
            ReferralCode::parse(raw).ok_or_else(|| format!("`{raw}` cannot be a referral code"))?,
        ),
    };
    Ok(Row {
        email,
        first_name: name(1)?,
        last_name: name(2)?,
        code,
    })
}

pub async fn import_referrers(
    reader: impl Read,
    store: &dyn ReferralStore,
) -> Result<ImportReport, ImportError> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(reader);
    let header: Vec<String> = csv.headers()?.iter().map(|h| h.trim().to_owned()).collect();
    if header != HEADER {
        return Err(ImportError::Header);
    }
    let mut report = ImportReport::default();
    for record in csv.records() {
        let record = record?;
        let line = record.position().map_or(0, |p| p.line());
        let row = match parse_row(&record) {
            Ok(row) => row,
            Err(reason) => {
                report.skipped.push((line, reason));
                continue;
            }
        };
        if store.referrer_by_email(&row.email).await?.is_some() {
            report.existing += 1;
            continue;
        }
        let Some(code) = row.code else {
            let applicant = service::Applicant {
                email: row.email,
                first_name: row.first_name,
                last_name: row.last_name,
                user_id: None,
            };
            service::register(store, applicant, clock::now(), service::random_code).await?;
            report.created += 1;
            continue;
        };
        let referrer = Referrer::new(
            row.email,
            row.first_name,
            row.last_name,
            code,
            None,
            clock::now(),
        );
        match store.insert_referrer(&referrer).await? {
            Ok(()) => report.created += 1,
            Err(ReferrerConflict::EmailTaken) => report.existing += 1,
            Err(ReferrerConflict::CodeTaken) => report.skipped.push((
                line,
                format!(
                    "the code `{}` belongs to another referrer",
                    referrer.referral_code
                ),
            )),
            Err(ReferrerConflict::UserTaken) => report
                .skipped
                .push((line, "the user id belongs to another referrer".to_owned())),
        }
    }
    Ok(report)
}
