//! The `padlock` command line. `main.rs` only calls [`main`].

use crate::config::{Config, EXAMPLE};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The file read when no `-c` is given, if it exists.
const DEFAULT_CONFIG_FILE: &str = "padlock.toml";

#[derive(Parser)]
#[command(
    name = "padlock",
    version,
    about = "Padlock: an OpenID Connect identity provider with a company-wide second factor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the identity provider.
    Serve(ServeArgs),
    /// Check or print the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(clap::Args)]
struct ConfigFileArg {
    /// Configuration file (default: ./padlock.toml if it exists).
    #[arg(
        short = 'c',
        long = "config",
        env = "PADLOCK_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    file: ConfigFileArg,
    /// Listen address.
    #[arg(long, env = "PADLOCK_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Data directory.
    #[arg(long, env = "PADLOCK_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Issuer URL (default http://<listen>).
    #[arg(long, env = "PADLOCK_ISSUER", value_name = "URL")]
    issuer: Option<String>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file; errors name the key; non-zero exit on any problem.
    Check(ConfigFileArg),
    /// Print a documented configuration with every key at its default.
    Example,
}

/// Reads the configuration file (explicit, or ./padlock.toml if present, or defaults) and applies
/// the environment overrides that have no flag.
fn load(arg: &ConfigFileArg) -> Result<(Config, Option<PathBuf>), String> {
    let path = arg.config.clone().or_else(|| {
        Path::new(DEFAULT_CONFIG_FILE)
            .exists()
            .then(|| DEFAULT_CONFIG_FILE.into())
    });
    let mut config = match &path {
        Some(p) => Config::load(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => Config::default(),
    };
    if let Some(v) = std::env::var_os("PADLOCK_MASTER_KEY_FILE") {
        config.master_key_file = Some(v.into());
    }
    if let Some(v) = std::env::var("PADLOCK_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
    {
        config.log = v;
    }
    Ok((config, path))
}

/// Runs the command line; returns the process exit code.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Example,
        } => {
            print!("{EXAMPLE}");
            ExitCode::SUCCESS
        }
        Command::Config {
            command: ConfigCommand::Check(arg),
        } => check(&arg),
        Command::Serve(args) => serve(args),
    }
}

fn check(arg: &ConfigFileArg) -> ExitCode {
    let (config, path) = match load(arg) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("padlock: {e}");
            return ExitCode::FAILURE;
        }
    };
    let name = path.map_or_else(|| "(defaults)".to_owned(), |p| p.display().to_string());
    let problems = config.validate();
    if problems.is_empty() {
        println!("{name}: OK");
        return ExitCode::SUCCESS;
    }
    for p in problems {
        eprintln!("{name}: {p}");
    }
    ExitCode::FAILURE
}

fn serve(args: ServeArgs) -> ExitCode {
    let (mut config, path) = match load(&args.file) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("padlock: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = args.data_dir {
        config.data_dir = v;
    }
    if let Some(v) = args.issuer {
        config.issuer = Some(v);
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Some(p) = &path {
        tracing::info!(config = %p.display(), "configuration loaded");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("padlock: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::server::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("padlock: {e}");
            ExitCode::FAILURE
        }
    }
}
