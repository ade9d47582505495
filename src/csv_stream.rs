//! CSV answers streamed a page at a time (`csv` crate quoting), for exports of any size.

use std::sync::Arc;

use axum::{
    body::{Body, Bytes},
    http::header,
    response::{IntoResponse, Response},
};
use futures_util::stream;

use crate::storage::StoreError;

/// CSV rows as bytes: the header first when asked.
pub fn csv_chunk<R: IntoIterator<Item = Vec<String>>>(header: Option<&[&str]>, rows: R) -> Bytes {
    let mut writer = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail but for a record of another length, which none is.
    if let Some(header) = header {
        let _ = writer.write_record(header);
    }
    for row in rows {
        let _ = writer.write_record(&row);
    }
    Bytes::from(writer.into_inner().unwrap_or_default())
}

/// A streamed CSV answer: the first chunk, read before answering (so that a store that does
/// not answer is a 503, not a cut-off file), then the pages `more` reads while it has a
/// position to read from.
pub fn csv_response<P, F, Fut>(name: &str, first: Bytes, position: Option<P>, more: F) -> Response
where
    P: Send + 'static,
    F: Fn(P) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(Bytes, Option<P>), StoreError>> + Send,
{
    let more = Arc::new(more);
    let rest = stream::unfold(position, move |position| {
        let more = more.clone();
        async move {
            let position = position?;
            Some(match more(position).await {
                Ok((chunk, next)) => (Ok::<_, std::io::Error>(chunk), next),
                Err(err) => {
                    tracing::warn!(error = %err, "export cut short by the store");
                    (Err(std::io::Error::other(err.to_string())), None)
                }
            })
        }
    });
    let body = Body::from_stream(futures_util::StreamExt::chain(
        stream::once(async move { Ok::<_, std::io::Error>(first) }),
        rest,
    ));
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}
