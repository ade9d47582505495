//! Cursors of paginated lists: the position of the last item of a page, as the time it was
//! created and its id. Sent to clients as `<unix ms>.<id as hex>`: opaque to them, safe in a
//! URL, and described exactly by [`PATTERN`], so that any text of that form is a position (one
//! this service did not hand out simply starts the page somewhere) and any other is refused.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, de::Error};

/// The longest id a cursor carries, in bytes (user hashes have up to 128 characters).
const MAX_ID_BYTES: usize = 512;

/// What a cursor looks like, as the API description states it.
pub const PATTERN: &str = r"^-?[0-9]{1,15}\.([0-9a-fA-F]{2}){1,512}$";

/// A position in an oldest-first list: the last item of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

/// Where the page after `page` starts, for lists paged by an item's key: the last item's key
/// when the page is full (a store answers fewer than `limit` items only at the end), else
/// `None`.
pub fn next_key<T>(page: &[T], limit: usize, key: impl FnOnce(&T) -> String) -> Option<String> {
    (page.len() >= limit)
        .then(|| page.last().map(key))
        .flatten()
}

/// Text that is not of a cursor's form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a cursor")]
pub struct InvalidCursor;

impl Cursor {
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            self.created_at.timestamp_millis(),
            hex::encode(self.id.as_bytes())
        )
    }

    pub fn decode(raw: &str) -> Result<Self, InvalidCursor> {
        let (ms, id) = raw.split_once('.').ok_or(InvalidCursor)?;
        let digits = ms.strip_prefix('-').unwrap_or(ms);
        if !(1..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidCursor);
        }
        let created_at = ms
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or(InvalidCursor)?;
        let bytes = hex::decode(id).map_err(|_| InvalidCursor)?;
        if bytes.is_empty() || bytes.len() > MAX_ID_BYTES {
            return Err(InvalidCursor);
        }
        Ok(Self {
            created_at,
            // A position only: an id no item has still orders among the others.
            id: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
}

/// From a query parameter.
impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::decode(&raw).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_millis(1_700_000_000_123).expect("time"),
            id: "7d1f0c1e-0000-4000-8000-000000000001".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        let odd = Cursor {
            created_at: DateTime::from_timestamp_millis(-5).expect("time"),
            id: "hash with spaces & symbols ✓".into(),
        };
        assert_eq!(Cursor::decode(&odd.encode()), Ok(odd));
        for bad in [
            "",
            "!!",
            "bm90LWEtY3Vyc29y",
            "eC55",
            "12.",
            ".61",
            "12.6",
            "12.zz",
            "1234567890123456.61",
            "+1.61",
        ] {
            assert_eq!(Cursor::decode(bad), Err(InvalidCursor), "{bad}");
        }
    }

    /// Every text of the documented form decodes, and every cursor handed out has that form.
    #[test]
    fn the_pattern_is_exactly_what_decodes() {
        let pattern = PATTERN.trim_start_matches('^').trim_end_matches('$');
        assert_eq!(pattern, r"-?[0-9]{1,15}\.([0-9a-fA-F]{2}){1,512}");
        for good in ["0.00", "-999999999999999.ff", "123.4142"] {
            assert!(Cursor::decode(good).is_ok(), "{good}");
        }
        let long = Cursor {
            created_at: DateTime::from_timestamp_millis(1).expect("time"),
            id: "é".repeat(128),
        };
        let encoded = long.encode();
        assert!(encoded.len() <= 2 + 1 + 2 * MAX_ID_BYTES, "{encoded}");
        assert_eq!(Cursor::decode(&encoded), Ok(long));
    }
}
