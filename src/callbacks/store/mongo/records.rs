//! Credit events as MongoDB stores them: inside their user until relayed (`CallbackDoc`), then
//! in `callbacks` (`OutboxDoc`).

use super::*;

/// What an event holds wherever it is stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct EventFields {
    pub(super) event_type: CreditEventType,
    pub(super) user_hash: String,
    pub(super) amount: Decimal128,
    pub(super) program_name: String,
    pub(super) user_indicator_hash: String,
    pub(super) status: CallbackStatus,
    pub(super) attempts: i64,
    pub(super) last_error: Option<String>,
    pub(super) created_at: mongodb::bson::DateTime,
    pub(super) next_attempt_at: mongodb::bson::DateTime,
}

/// An event as written inside its user document, waiting for the relay.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CallbackDoc {
    pub(super) id: String,
    #[serde(flatten)]
    pub(super) event: EventFields,
}

impl CallbackDoc {
    pub(crate) fn from_event(event: &CreditEvent) -> Result<Self, StoreError> {
        Ok(Self {
            id: event.id.clone(),
            event: EventFields {
                event_type: event.event_type,
                user_hash: event.user_hash.to_string(),
                amount: to_decimal128(event.amount)?,
                program_name: event.program_name.clone(),
                user_indicator_hash: event.user_indicator_hash.to_string(),
                status: event.status,
                attempts: i64::from(event.attempts),
                last_error: event.last_error.clone(),
                created_at: to_bson_datetime(event.created_at),
                next_attempt_at: to_bson_datetime(event.next_attempt_at),
            },
        })
    }

    pub(crate) fn to_document(event: &CreditEvent) -> Result<Document, StoreError> {
        mongodb::bson::to_document(&Self::from_event(event)?)
            .map_err(|e| StoreError::Backend(format!("cannot encode event: {e}")))
    }
}

/// An event in the `callbacks` collection: as in its user, with its delivery's state.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct OutboxDoc {
    #[serde(rename = "_id")]
    pub(super) id: String,
    #[serde(flatten)]
    pub(super) event: EventFields,
    pub(super) last_attempt_at: Option<mongodb::bson::DateTime>,
    pub(super) delivered_at: Option<mongodb::bson::DateTime>,
    pub(super) due_at: mongodb::bson::DateTime,
    pub(super) lease_owner: Option<String>,
}

impl From<CallbackDoc> for OutboxDoc {
    fn from(waiting: CallbackDoc) -> Self {
        Self {
            id: waiting.id,
            due_at: waiting.event.next_attempt_at,
            event: waiting.event,
            last_attempt_at: None,
            delivered_at: None,
            lease_owner: None,
        }
    }
}

impl OutboxDoc {
    pub(super) fn into_event(self) -> Result<CreditEvent, StoreError> {
        let optional = |at: Option<mongodb::bson::DateTime>| at.map(from_bson_datetime).transpose();
        let event = self.event;
        Ok(CreditEvent {
            event_type: event.event_type,
            user_hash: UserHash::from_stored(event.user_hash),
            amount: from_decimal128(event.amount)?,
            program_name: event.program_name,
            user_indicator_hash: UserHash::from_stored(event.user_indicator_hash),
            status: event.status,
            attempts: u32::try_from(event.attempts)
                .map_err(|_| StoreError::Corrupt(format!("event {}: attempts", self.id)))?,
            last_error: event.last_error,
            last_attempt_at: optional(self.last_attempt_at)?,
            next_attempt_at: from_bson_datetime(event.next_attempt_at)?,
            delivered_at: optional(self.delivered_at)?,
            created_at: from_bson_datetime(event.created_at)?,
            id: self.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documents keep the field names and the one level they had before their shared fields
    /// were one struct: events written by earlier versions read back, and later ones read.
    #[test]
    fn stored_documents_keep_their_fields() {
        let event = CreditEvent::new(
            CreditEventType::SignupCredit,
            UserHash::from_stored("bo".to_owned()),
            "12.50".parse().expect("money"),
            "Friends".to_owned(),
            UserHash::from_stored("ana".to_owned()),
            DateTime::from_timestamp_millis(1_796_000_000_123).expect("a time"),
        );
        let waiting = CallbackDoc::to_document(&event).expect("encodes");
        let fields = [
            "id",
            "event_type",
            "user_hash",
            "amount",
            "program_name",
            "user_indicator_hash",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "next_attempt_at",
        ];
        assert_eq!(waiting.keys().collect::<Vec<_>>(), fields);
        let relayed = OutboxDoc::from(CallbackDoc::from_event(&event).expect("converts"));
        let outbox = mongodb::bson::to_document(&relayed).expect("encodes");
        let mut expected: Vec<&str> = fields.to_vec();
        expected[0] = "_id";
        expected.extend(["last_attempt_at", "delivered_at", "due_at", "lease_owner"]);
        assert_eq!(outbox.keys().collect::<Vec<_>>(), expected);
        let read: OutboxDoc = mongodb::bson::from_document(outbox).expect("decodes");
        assert_eq!(read.into_event().expect("an event"), event);
    }
}
