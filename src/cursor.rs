//! Cursors of paginated lists: the position of the last item of a page, as the time it was
//! created and its id, sent to clients as opaque base64url text.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};

/// The longest id a cursor carries (user hashes have up to 128 characters).
const MAX_ID_LEN: usize = 128;

/// A position in an oldest-first list: the last item of a page. Opaque to clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

/// Text that is not a cursor this service handed out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a cursor")]
pub struct InvalidCursor;

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}.{}",
            self.created_at.timestamp_millis(),
            self.id
        ))
    }

    pub fn decode(raw: &str) -> Result<Self, InvalidCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| InvalidCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| InvalidCursor)?;
        let (ms, id) = text.split_once('.').ok_or(InvalidCursor)?;
        let created_at = ms
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or(InvalidCursor)?;
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(InvalidCursor);
        }
        Ok(Self {
            created_at,
            id: id.to_owned(),
        })
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
        for bad in ["", "!!", "bm90LWEtY3Vyc29y", &URL_SAFE_NO_PAD.encode("x.y")] {
            assert_eq!(Cursor::decode(bad), Err(InvalidCursor), "{bad}");
        }
    }
}
