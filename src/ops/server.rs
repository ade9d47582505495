//! The server loop: hyper's connection builder (HTTP/1 and HTTP/2) with header and idle
//! deadlines,
//! a cap on concurrent requests that sheds the excess with 503, the client's address for the
//! rate limits, and a graceful stop.

use std::{convert::Infallible, future::Future, net::SocketAddr, time::Duration};

use axum::{
    Router,
    error_handling::HandleErrorLayer,
    extract::{ConnectInfo, Request},
    response::{IntoResponse, Response},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::{BoxError, ServiceBuilder, ServiceExt};

use crate::{
    config::HttpConfig,
    error::ApiError,
    ops::{deadline::Deadlines, metrics},
};

/// Pause after a failed accept (out of file descriptors, most often) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Answers a request the server has no room for: 503 at once, never a queue.
async fn overloaded(_: BoxError) -> Response {
    metrics::shed_request();
    ApiError::Overloaded.into_response()
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets the
/// requests in flight finish and closes idle connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &HttpConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    let service = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .concurrency_limit(config.max_concurrent_requests)
        .service(router);
    let mut builder = Builder::new(TokioExecutor::new());
    // Hyper's own header timer would also run on idle keep-alive connections; `Deadlines`
    // keeps the header and idle limits apart instead.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(config.header_read_timeout));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = service
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            })
            .map_err(|never: Infallible| match never {});
        let io = Deadlines::new(
            stream,
            config.header_read_timeout,
            config.keep_alive_timeout,
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
