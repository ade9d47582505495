//! The command line: `serve` (the default), `token`, `health`, and the imports.

use std::{fs::File, io::BufReader, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    api_keys::{
        NewKey,
        domain::{KeyFieldError, key_fields},
    },
    auth::{Authenticator, Claims, KeyError},
    config::{Config, ConfigError},
    indication::import::{ImportError as UsersImportError, import_users},
    referrals::import::{ImportError as ReferrersImportError, import_referrers},
    startup::{Application, StartupError, TaskFailed, shutdown_signal},
    storage::StoreError,
    stores, telemetry,
};

/// Why a command failed: printed for the operator, and the process exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Stopped(#[from] TaskFailed),
    #[error("JWT key: {0}")]
    Key(#[from] KeyError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    ImportUsers {
        path: PathBuf,
        source: UsersImportError,
    },
    #[error("{path}: {source}")]
    ImportReferrers {
        path: PathBuf,
        source: ReferrersImportError,
    },
    #[error("{url}: {detail}")]
    Health { url: String, detail: String },
    #[error("api-key: {0}")]
    KeyField(#[from] KeyFieldError),
}

fn open(path: &std::path::Path) -> Result<File, CliError> {
    File::open(path).map_err(|source| CliError::Open {
        path: path.to_owned(),
        source,
    })
}

#[derive(Debug, Parser)]
#[command(
    name = "referral-api",
    version,
    about = "Referral programs and referral codes over HTTP"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Mint a token signed with the configured key, for curl and scripts.
    Token(TokenArgs),
    /// Ask the service running on LISTEN_ADDR for `GET /health`; exit 0 if it answers 200.
    /// For container health checks, where the image has no curl.
    Health,
    /// Import users from the original's users.txt (one a line, fields split by `|`, the hash
    /// first) into the default program. Idempotent.
    ImportUsers {
        /// The file to read.
        file: PathBuf,
    },
    /// Import referrers and their existing codes from a CSV file with the header
    /// `email,firstName,lastName,referralCode`. Codes keep their spelling. Idempotent.
    ImportReferrers {
        /// The file to read.
        file: PathBuf,
    },
    /// API keys for back-end callers.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a key and print it (shown this once; only its hash is kept).
    Create {
        /// Who uses it (`billing`): callers with the key are `key:<name>`.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Service,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The account id (`sub` claim).
    #[arg(long)]
    pub sub: String,
    /// A role to grant; repeat for several. None: an end user.
    #[arg(long, value_enum)]
    pub role: Vec<RoleArg>,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub given_name: Option<String>,
    #[arg(long)]
    pub family_name: Option<String>,
    /// Lifetime, such as 15m, 1h or 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

/// Runs a command.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let config = Config::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Token(args) => {
            println!("{}", mint(&config, args)?);
            Ok(())
        }
        Command::Health => probe(&config).await,
        Command::ImportUsers { file } => import(config, file).await,
        Command::ImportReferrers { file } => import_codes(config, file).await,
        Command::ApiKey(ApiKeyCommand::Create { name, role }) => {
            println!("{}", create_key(&config, &name, role).await?);
            Ok(())
        }
    }
}

/// Makes an API key in the configured store; the key, to print once.
async fn create_key(config: &Config, name: &str, role: RoleArg) -> Result<String, CliError> {
    let role = match role {
        RoleArg::Admin => "admin",
        RoleArg::Service => "service",
    };
    let (name, role) = key_fields(Some(name), Some(role))?;
    let stores = stores::open(&config.storage).await?;
    let made = NewKey::generate(name, role, crate::clock::now());
    stores.api_keys.insert_key(&made.record).await?;
    Ok(made.key)
}

/// How long `health` waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

async fn probe(config: &Config) -> Result<(), CliError> {
    let mut addr = config.listen_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/health");
    let failed = |detail: String| CliError::Health {
        url: url.clone(),
        detail,
    };
    let response = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|e| failed(e.to_string()))?
        .get(&url)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if response.status().is_success() {
        println!("{url}: {}", response.status());
        Ok(())
    } else {
        Err(failed(response.status().to_string()))
    }
}

async fn import_codes(config: Config, path: PathBuf) -> Result<(), CliError> {
    let file = open(&path)?;
    let stores = stores::open(&config.storage).await?;
    let report = import_referrers(BufReader::new(file), stores.referrals.as_ref())
        .await
        .map_err(|source| CliError::ImportReferrers {
            path: path.clone(),
            source,
        })?;
    let skipped = report.skipped.iter().map(|(line, reason)| (*line, reason));
    print_report(&path, "referrers", report.created, report.existing, skipped);
    Ok(())
}

async fn import(config: Config, path: PathBuf) -> Result<(), CliError> {
    let file = open(&path)?;
    let stores = stores::open(&config.storage).await?;
    let report = import_users(
        BufReader::new(file),
        stores.programs.as_ref(),
        stores.indication.as_ref(),
    )
    .await
    .map_err(|source| CliError::ImportUsers {
        path: path.clone(),
        source,
    })?;
    let skipped = report
        .skipped
        .iter()
        .map(|(line, reason)| (*line as u64, reason));
    print_report(&path, "users", report.created, report.existing, skipped);
    Ok(())
}

/// What an import did: each skipped line on stderr, then the counts.
fn print_report<'a>(
    path: &std::path::Path,
    what: &str,
    created: usize,
    existing: usize,
    skipped: impl Iterator<Item = (u64, &'a String)>,
) {
    let mut count = 0;
    for (line, reason) in skipped {
        eprintln!("{}:{line}: skipped: {reason}", path.display());
        count += 1;
    }
    println!("imported {created} new {what}, {existing} already existed, {count} lines skipped");
}

async fn serve(config: Config) -> Result<(), CliError> {
    telemetry::init(config.log_format);
    let app = Application::build(config).await?;
    Ok(app.run_until_stopped(shutdown_signal()).await?)
}

fn mint(config: &Config, args: TokenArgs) -> Result<String, CliError> {
    let auth = Authenticator::new(&config.jwt, &config.data_dir, config.legacy_routes_auth)?;
    let roles = args
        .role
        .iter()
        .map(|r| match r {
            RoleArg::Admin => "admin".to_owned(),
            RoleArg::Service => "service".to_owned(),
        })
        .collect();
    let claims = Claims {
        sub: args.sub,
        exp: 0,
        email: args.email,
        given_name: args.given_name,
        family_name: args.family_name,
        roles,
        iss: None,
        aud: None,
    };
    Ok(auth.mint(claims, args.ttl)?)
}
