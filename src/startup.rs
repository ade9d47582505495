//! Building the application from its configuration, and running it until told to stop.

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    app::{self, Parts},
    auth::{Authenticator, KeyError},
    callbacks::{
        OutboxSignal,
        delivery::{Endpoint, Sender},
        worker::{POLL_INTERVAL, Worker, WorkerSettings},
    },
    clock::{Clock, SystemClock},
    config::{CallbackConfig, Config, HttpConfig, LegacyRoutesAuth},
    events::retention::{SWEEP_INTERVAL, Sweeper},
    indication::{
        release::ReleaseWorker,
        totals::{FOLD_INTERVAL, FiguresWorker},
    },
    ops::server,
    storage::StoreError,
    stores::{self, Stores},
    webhooks::{
        sender::{WebhookAdmin, WebhookClient},
        worker::{TICK, WebhookSettings, WebhookWorker},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("JWT key: {0}")]
    Key(#[from] KeyError),
    #[error("callback HTTP client: {0}")]
    CallbackClient(#[from] reqwest::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    stores: Stores,
    auth: Arc<Authenticator>,
    /// The one clock of the service: the router's handlers and both workers read it.
    clock: Arc<dyn Clock>,
    signal: OutboxSignal,
    /// `None` while no callback URL is configured: events wait as `pending`.
    worker: Option<Worker>,
    release: ReleaseWorker,
    figures: FiguresWorker,
    sweeper: Sweeper,
    webhooks: WebhookWorker,
    webhook_admin: WebhookAdmin,
    http: HttpConfig,
}

impl Application {
    /// Opens the store, loads the JWT key and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let stores = stores::open(&config.storage).await?;
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
        let signal = OutboxSignal::default();
        let worker = callback_worker(&config.callbacks, &stores, &signal)?;
        let release = ReleaseWorker {
            users: stores.indication.clone(),
            programs: stores.programs.clone(),
            clock: Arc::new(SystemClock),
            interval: config.credit_release_interval,
            signal: signal.clone(),
        };
        let figures = FiguresWorker {
            users: stores.indication.clone(),
            clock: Arc::new(SystemClock),
            interval: FOLD_INTERVAL,
        };
        let sweeper = Sweeper {
            feed: stores.events.clone(),
            clock: Arc::new(SystemClock),
            retention: event_retention(&config),
            interval: SWEEP_INTERVAL,
        };
        let webhook_client =
            WebhookClient::new(config.callbacks.timeout, config.webhooks.allow_private)?;
        let webhooks = WebhookWorker {
            store: stores.webhooks.clone(),
            feed: stores.events.clone(),
            client: webhook_client.clone(),
            settings: WebhookSettings {
                concurrency: config.callbacks.concurrency,
                lease: config.callbacks.lease,
                timeout: config.callbacks.timeout,
                schedule: config.callbacks.schedule.clone(),
                disable_after: config.webhooks.disable_after,
                retention: config.events.retention,
                tick: TICK,
            },
            clock: Arc::new(SystemClock),
            owner: uuid::Uuid::new_v4().to_string(),
        };
        let webhook_admin = WebhookAdmin {
            client: webhook_client,
            rotation_overlap: chrono::Duration::from_std(config.webhooks.rotation_overlap)
                .unwrap_or(chrono::Duration::MAX),
        };
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
            local_addr,
            stores,
            auth,
            clock: Arc::new(SystemClock),
            signal,
            worker,
            release,
            figures,
            sweeper,
            webhooks,
            webhook_admin,
            http: config.http.clone(),
        })
    }

    /// Runs the whole service — the routes, credit releases and callback deliveries — on
    /// `clock` instead of the system's, so that tests can move time.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        if let Some(worker) = &mut self.worker {
            worker.clock = clock.clone();
        }
        self.release.clock = clock.clone();
        self.figures.clock = clock.clone();
        self.sweeper.clock = clock.clone();
        self.webhooks.clock = clock.clone();
        self.clock = clock;
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Serves, and runs the workers (callbacks, releases, figures, the event sweeper, webhooks)
    /// beside the server, each a named task, until `shutdown` completes; then lets requests in
    /// flight finish and the workers stop between steps. A task that fails or panics is logged by its name and stops the others:
    /// the process then ends with an error (a non-zero status), for its supervisor (systemd,
    /// Kubernetes) to restart it. Nothing is lost: every step is durable before it is
    /// acknowledged, and a delivery's lease lapses by itself.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), TaskFailed> {
        tracing::info!(addr = %self.local_addr, backend = self.stores.backend, "listening");
        let router = app::router(
            Parts {
                stores: self.stores.clone(),
                auth: self.auth,
                clock: self.clock,
                outbox_signal: self.signal,
                event_retention: self.sweeper.retention,
                webhooks: self.webhook_admin,
            },
            &self.http,
        );
        let stop = CancellationToken::new();
        let mut tasks = Tasks::default();
        let worker = self.worker;
        let idle = stop.clone();
        tasks.spawn("callback worker", async move {
            match worker {
                Some(worker) => worker.run(idle).await,
                None => idle.cancelled().await,
            }
        });
        tasks.spawn("release worker", self.release.run(stop.clone()));
        tasks.spawn("figures worker", self.figures.run(stop.clone()));
        tasks.spawn("event sweeper", self.sweeper.run(stop.clone()));
        tasks.spawn("webhook worker", self.webhooks.run(stop.clone()));
        let (listener, http, served) = (self.listener, self.http, stop.clone());
        tasks.spawn("server", async move {
            server::serve(listener, router, &http, async move {
                tokio::select! {
                    () = shutdown => served.cancel(),
                    () = served.cancelled() => {},
                }
            })
            .await;
        });
        let mut failed = None;
        while let Some(ended) = tasks.set.join_next_with_id().await {
            match ended {
                Ok((_, name)) if stop.is_cancelled() => tracing::debug!(task = name, "stopped"),
                Ok((_, name)) => {
                    tracing::error!(task = name, "ended on its own; stopping the service");
                    failed.get_or_insert(TaskFailed(format!("the {name} ended on its own")));
                }
                Err(err) => {
                    let name = tasks.names.get(&err.id()).copied().unwrap_or("a task");
                    tracing::error!(task = name, error = %err, "panicked; stopping the service");
                    failed.get_or_insert(TaskFailed(format!("the {name} panicked: {err}")));
                }
            }
            stop.cancel();
        }
        failed.map_or(Ok(()), Err)
    }
}

/// The service's tasks, each under its name: a task answers its name when it ends, and the
/// name of one that panicked is found by its id.
#[derive(Default)]
struct Tasks {
    set: tokio::task::JoinSet<&'static str>,
    names: std::collections::HashMap<tokio::task::Id, &'static str>,
}

impl Tasks {
    fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.set.spawn(async move {
            task.await;
            name
        });
        self.names.insert(handle.id(), name);
    }
}

/// A task of the service ended before it was told to stop, or panicked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TaskFailed(pub String);

/// The worker that delivers credit events, if a callback URL is configured.
fn callback_worker(
    config: &CallbackConfig,
    stores: &Stores,
    signal: &OutboxSignal,
) -> Result<Option<Worker>, StartupError> {
    let Some(url) = &config.endpoint else {
        tracing::warn!(
            "ENDPOINT_CALLBACK_CREDIT_ON_SIGNUP is not set: credit events are kept as pending and sent once it is"
        );
        return Ok(None);
    };
    if config.signing_secret.is_none() {
        tracing::warn!(
            "CALLBACK_SIGNING_SECRET is not set: callbacks are sent unsigned, and the billing service cannot tell them from forgeries"
        );
    }
    let endpoint = Endpoint {
        url_template: url.clone(),
        secret: config.signing_secret.clone(),
    };
    Ok(Some(Worker {
        outbox: stores.callbacks.clone(),
        sender: Sender::new(endpoint, config.timeout)?,
        settings: WorkerSettings {
            concurrency: config.concurrency,
            lease: config.lease,
            timeout: config.timeout,
            schedule: config.schedule.clone(),
            poll_interval: POLL_INTERVAL,
        },
        clock: Arc::new(SystemClock),
        signal: signal.clone(),
        owner: uuid::Uuid::new_v4().to_string(),
    }))
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

/// `EVENT_RETENTION` as a time span (a retention beyond what one holds is kept as the longest).
fn event_retention(config: &Config) -> chrono::Duration {
    chrono::Duration::from_std(config.events.retention).unwrap_or(chrono::Duration::MAX)
}
