//! An audit entry: who changed what, from what to what, and why.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{field: [before, after]}` of the fields a change changed.
pub type Changes = Map<String, Value>;

/// One recorded change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// A version 7 UUID: entries in id order are in time order.
    pub id: String,
    pub at: DateTime<Utc>,
    /// The token's `sub`, `key:<name>` for an API key, `anonymous` without a caller.
    pub actor: String,
    /// `admin` or `service` (the highest the caller has); `None` without a caller.
    pub role: Option<String>,
    /// `program.update`, `credit.reverse`, …
    pub action: String,
    /// The id of what changed.
    pub target: String,
    pub changes: Changes,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub request_id: Option<String>,
    /// `false` until the change is seen done: an entry left `false` belongs to a change that
    /// a crash or a store failure interrupted, which may or may not have been made.
    pub completed: bool,
}

/// The fields of `after` that differ from `before` (both JSON objects), as `[before, after]`;
/// a field on one side only has `null` on the other.
pub fn diff(before: &Value, after: &Value) -> Changes {
    let empty = Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let mut fields: Vec<&String> = before.keys().chain(after.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter_map(|field| {
            let (old, new) = (
                before.get(field).unwrap_or(&Value::Null),
                after.get(field).unwrap_or(&Value::Null),
            );
            (old != new).then(|| (field.clone(), Value::Array(vec![old.clone(), new.clone()])))
        })
        .collect()
}

/// The changes of something made (`before` nothing) or removed (`after` nothing).
pub fn created(after: &Value) -> Changes {
    diff(&Value::Null, after)
}

pub fn removed(before: &Value) -> Changes {
    diff(before, &Value::Null)
}

/// The changes from a record `before` to `after` (`None`: made, or removed), with the fields
/// `view` shows of it.
pub fn changes_of<R>(
    view: impl Fn(&R) -> Value + Send + Sync + 'static,
) -> impl Fn(Option<&R>, Option<&R>) -> Changes + Send + Sync + 'static {
    move |before, after| {
        diff(
            &before.map(&view).unwrap_or(Value::Null),
            &after.map(&view).unwrap_or(Value::Null),
        )
    }
}

/// Which entries a page lists, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// The id of the last entry of the previous page.
    pub after: Option<String>,
    pub limit: usize,
}

impl AuditFilter {
    /// Whether an entry passes the filter's fields (not its cursor or limit).
    pub fn admits(&self, entry: &AuditEntry) -> bool {
        self.actor.as_ref().is_none_or(|a| *a == entry.actor)
            && self.action.as_ref().is_none_or(|a| *a == entry.action)
            && self.target.as_ref().is_none_or(|t| *t == entry.target)
            && self.since.is_none_or(|since| entry.at >= since)
            && self.until.is_none_or(|until| entry.at < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_keeps_changed_fields_only() {
        let changes = diff(
            &json!({ "name": "A", "target_value": 100, "hold_days": 0 }),
            &json!({ "name": "A", "target_value": 150, "review": "flagged" }),
        );
        assert_eq!(
            Value::Object(changes),
            json!({
                "target_value": [100, 150],
                "hold_days": [0, null],
                "review": [null, "flagged"],
            })
        );
        assert_eq!(
            Value::Object(created(&json!({ "name": "A" }))),
            json!({ "name": [null, "A"] })
        );
        assert_eq!(
            Value::Object(removed(&json!({ "name": "A" }))),
            json!({ "name": ["A", null] })
        );
    }
}
