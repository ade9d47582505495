//! Building the application from its configuration, and running it until told to stop.

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::Router;
use tokio::net::TcpListener;

use crate::{
    app,
    auth::{Authenticator, KeyError},
    config::{Config, LegacyRoutesAuth},
    storage::{self, StoreError, Stores},
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("JWT key: {0}")]
    Key(#[from] KeyError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
    stores: Stores,
}

impl Application {
    /// Opens the store, loads the JWT key and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let stores = storage::open(&config.storage).await?;
        Self::build_with_stores(config, stores).await
    }

    /// Like [`Application::build`], with stores opened by the caller.
    pub async fn build_with_stores(config: Config, stores: Stores) -> Result<Self, StartupError> {
        let auth = Arc::new(Authenticator::new(
            &config.jwt,
            &config.data_dir,
            config.legacy_routes_auth,
        )?);
        warn_about_risky_settings(&config);
        let router = app::router(stores.clone(), auth);
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.listen_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.listen_addr,
            source,
        })?;
        Ok(Self {
            listener,
            router,
            local_addr,
            stores,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr, backend = self.stores.backend, "listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

fn warn_about_risky_settings(config: &Config) {
    if config.legacy_routes_auth == LegacyRoutesAuth::None {
        tracing::warn!(
            "LEGACY_ROUTES_AUTH=none: the indication program routes accept requests without a token; keep them on a private network"
        );
    }
}

/// Completes on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
