//! CSV answers streamed a page at a time (`csv` crate quoting), for exports of any size.

use std::{future::Future, sync::Arc};

use axum::{
    body::{Body, Bytes},
    http::header,
    response::{IntoResponse, Response},
};
use futures_util::stream;

use crate::storage::StoreError;

/// A page of CSV rows, and where the next page starts (`None`: the last page).
pub type CsvPage<P> = (Vec<Vec<String>>, Option<P>);

/// A streamed CSV answer named `name`: `header`, then the rows of `page(None)`, then of
/// `page(Some(next))` while a page says where the next starts. The first page is read before
/// answering, so that a store that does not answer is a 503, not a cut-off file; later pages are
/// read as the client takes the answer, one at a time (constant memory whatever the size).
pub async fn csv_export<P, F, Fut>(
    name: &str,
    header: &[&str],
    page: F,
) -> Result<Response, StoreError>
where
    P: Send + 'static,
    F: Fn(Option<P>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<CsvPage<P>, StoreError>> + Send,
{
    let page = Arc::new(page);
    let (rows, next) = page(None).await?;
    let first = csv_chunk(Some(header), rows);
    Ok(csv_response(name, first, next, move |after| {
        let page = page.clone();
        async move {
            let (rows, next) = page(Some(after)).await?;
            Ok((csv_chunk(None, rows), next))
        }
    }))
}

/// CSV rows as bytes: the header first when asked.
fn csv_chunk<R: IntoIterator<Item = Vec<String>>>(header: Option<&[&str]>, rows: R) -> Bytes {
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

/// A streamed CSV answer: the first chunk, then the pages `more` reads while it has a position
/// to read from.
fn csv_response<P, F, Fut>(name: &str, first: Bytes, position: Option<P>, more: F) -> Response
where
    P: Send + 'static,
    F: Fn(P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(Bytes, Option<P>), StoreError>> + Send,
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
