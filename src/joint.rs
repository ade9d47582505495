//! The writes and reads that cross capabilities, in one place. A registration, a payment or a
//! release is one atomic step of the indication store, and that step also counts the user into
//! its program and queues the credit event of the callback outbox: this module is the only way
//! one capability's store reaches into another's tables (embedded) or documents (MongoDB),
//! so every such crossing is listed here. The owning capability keeps the format.

/// Inside a redb write transaction.
pub mod embedded {
    use redb::{ReadTransaction, WriteTransaction};

    use crate::{
        callbacks::{CreditEvent, store::embedded as callbacks},
        events::{Event, store::embedded as events},
        programs::{ProgramId, store::embedded as programs},
        storage::{StoreError, embedded::backend},
    };

    /// Queues a credit event in the callback outbox, in the caller's transaction.
    pub(crate) fn queue_event(
        txn: &WriteTransaction,
        event: &CreditEvent,
    ) -> Result<(), StoreError> {
        callbacks::queue(txn, event)
    }

    /// Appends an event to the feed, in the caller's transaction.
    pub(crate) fn record_event(txn: &WriteTransaction, event: &Event) -> Result<(), StoreError> {
        events::append(txn, event)
    }

    /// Counts `added` users into the program, in the caller's transaction; `false` (nothing
    /// written) when the program does not exist.
    pub(crate) fn count_program_users(
        txn: &WriteTransaction,
        program: ProgramId,
        added: u64,
    ) -> Result<bool, StoreError> {
        programs::add_program_users(txn, program, added)
    }

    /// How many users the program has, as its writes counted them.
    pub(crate) fn program_users(
        txn: &ReadTransaction,
        program: ProgramId,
    ) -> Result<u64, StoreError> {
        let key = program.to_string();
        Ok(txn
            .open_table(programs::PROGRAM_USERS)
            .map_err(backend)?
            .get(key.as_str())
            .map_err(backend)?
            .map_or(0, |count| count.value()))
    }
}

/// Inside a MongoDB user document.
pub mod mongo {
    use mongodb::bson::Document;

    use crate::{
        callbacks::{CreditEvent, store::mongo::CallbackDoc},
        events::{Event, store::mongo::EventDoc},
        storage::StoreError,
    };

    /// A credit event as it waits inside its user's document for the callback relay.
    pub(crate) type EventInUser = CallbackDoc;

    /// The event to write into the user's document, in the write that moves the credit.
    pub(crate) fn event_in_user(event: &CreditEvent) -> Result<EventInUser, StoreError> {
        CallbackDoc::from_event(event)
    }

    /// The same, as a document for a `$push`.
    pub(crate) fn event_document(event: &CreditEvent) -> Result<Document, StoreError> {
        CallbackDoc::to_document(event)
    }

    /// A feed event as it waits inside the document of its move for the events relay (in the
    /// document's `events`).
    pub(crate) fn feed_document(event: &Event) -> Result<Document, StoreError> {
        EventDoc::to_document(event)
    }
}
