//! E-mail addresses, normalised once at the edge: trimmed and lower-cased.

use std::fmt;

use email_address::{EmailAddress, Options};
use serde::Serialize;

/// The longest address SMTP can carry.
const MAX_LEN: usize = 254;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Trims and lower-cases, then checks the syntax (a dotted domain, no display name, no IP
    /// literal). `None` when it is not an address.
    pub fn parse(raw: &str) -> Option<Self> {
        let normalised = raw.trim().to_lowercase();
        if normalised.is_empty() || normalised.len() > MAX_LEN {
            return None;
        }
        let options = Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        EmailAddress::parse_with_options(&normalised, options).ok()?;
        Some(Self(normalised))
    }

    /// For addresses read back from a store, which were normalised when written.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The mailbox this address delivers to, for telling one person's addresses apart from
    /// another's: without a `+tag` in the local part, and for Gmail (`gmail.com` and
    /// `googlemail.com`, the same mailboxes) without dots in the local part and under
    /// `gmail.com`. Addresses are already lower-case.
    pub fn mailbox(&self) -> String {
        let (local, domain) = self.0.rsplit_once('@').unwrap_or((&self.0, ""));
        let local = local.split_once('+').map_or(local, |(base, _tag)| base);
        match domain {
            "gmail.com" | "googlemail.com" => format!("{}@gmail.com", local.replace('.', "")),
            _ => format!("{local}@{domain}"),
        }
    }

    /// `em***@example.com`: enough to recognise one's own address, not to harvest others'.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or((&self.0, ""));
        let shown: String = local.chars().take(2).collect();
        format!("{shown}***@{domain}")
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_validates() {
        assert_eq!(
            Email::parse("  Ana@Example.COM ").map(|e| e.0),
            Some("ana@example.com".into())
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@localhost",
            "a b@example.com",
            "Ana <ana@example.com>",
            "ana@[127.0.0.1]",
        ] {
            assert!(Email::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn one_mailbox_under_tags_dots_and_gmail_names() {
        let mailbox = |raw: &str| Email::parse(raw).expect("valid").mailbox();
        assert_eq!(
            mailbox("Ana.Smith+promo@gmail.com"),
            mailbox("anasmith@googlemail.com")
        );
        assert_eq!(mailbox("Ana.Smith+promo@gmail.com"), "anasmith@gmail.com");
        assert_eq!(mailbox("ana+x@example.com"), "ana@example.com");
        assert_eq!(mailbox("ana+@example.com"), "ana@example.com");
        // Dots count outside Gmail, and other domains are other mailboxes.
        assert_eq!(mailbox("ana.smith@example.com"), "ana.smith@example.com");
        assert_ne!(mailbox("ana@example.com"), mailbox("ana@example.org"));
        assert_ne!(mailbox("ana@gmail.com.evil.io"), mailbox("ana@gmail.com"));
    }

    #[test]
    fn masks_the_local_part() {
        let email = Email::parse("email@molt-bonic.com").expect("valid");
        assert_eq!(email.masked(), "em***@molt-bonic.com");
    }
}
