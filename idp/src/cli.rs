//! The `padlock` command line. `main.rs` only calls [`main`].

use crate::config::{Config, EXAMPLE, LogFormat};
use crate::remote::{Remote, segment};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
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
    /// Companies (through the admin API of a running server).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Users of a company.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Relying panels (OIDC clients).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// API accounts: client credentials only, exempt from the second factor, limited to their scopes.
    ApiAccount {
        #[command(subcommand)]
        command: ApiAccountCommand,
    },
    /// A company's roles: the built-in admin and user, and its own named sets of permissions.
    Role {
        #[command(subcommand)]
        command: RoleCommand,
    },
    /// PAM hosts: the credential a host running pam_padlock.so uses, bound to one company.
    PamHost {
        #[command(subcommand)]
        command: PamHostCommand,
    },
    /// Token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// With the server stopped: set a new password for a company administrator (a person holding
    /// company.manage) whose password is lost. Their sessions end; their second factor stays.
    RecoverAdmin(RecoverArgs),
}

#[derive(clap::Args)]
struct RecoverArgs {
    #[command(flatten)]
    file: ConfigFileArg,
    /// Data directory (default: the configuration's).
    #[arg(long, env = "PADLOCK_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The administrator's email.
    #[arg(long)]
    email: String,
    /// File holding the new password (default: generate one and print it once).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

/// How management commands reach the server.
#[derive(clap::Args)]
struct RemoteArgs {
    /// Operator credential written by the first `padlock serve`.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "./padlock-data/operator.json"
    )]
    credentials: PathBuf,
    /// Padlock's URL (default: the issuer in the credential file).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a company.
    Create {
        /// Company name.
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List companies.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Turn two-factor authentication on or off for every user of a company.
    #[command(name = "2fa")]
    TwoFactor {
        /// Company id or name.
        tenant: String,
        /// Turn 2FA on: it applies to every user at their next login.
        #[arg(long, conflicts_with = "disable", required_unless_present = "disable")]
        enable: bool,
        /// Turn 2FA off.
        #[arg(long)]
        disable: bool,
        /// Methods offered, comma-separated: sms-email, totp, duo (default: keep; new companies offer sms-email).
        #[arg(long, value_delimiter = ',')]
        methods: Option<Vec<String>>,
        /// Duo Auth API integration key.
        #[arg(long, requires_all = ["duo_skey_file", "duo_host"])]
        duo_ikey: Option<String>,
        /// File holding the Duo secret key.
        #[arg(long, value_name = "FILE", requires = "duo_ikey")]
        duo_skey_file: Option<PathBuf>,
        /// Duo API hostname (api-xxxxxxxx.duosecurity.com).
        #[arg(long, requires = "duo_ikey")]
        duo_host: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user to a company.
    Add {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// Email (the login name).
        #[arg(long)]
        email: String,
        /// File holding the initial password.
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
        /// Mobile number in E.164 form, for SMS codes.
        #[arg(long)]
        mobile: Option<String>,
        /// Role (repeatable), e.g. `admin`.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Unix user name for PAM logins (default: the email's local part).
        #[arg(long)]
        unix_name: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List a company's users, by email, a page at a time (`--json` adds `next` for `--after`).
    List {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// Users after this email.
        #[arg(long)]
        after: Option<String>,
        /// Users per page (1 to 1000, the default).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Change a user: email, Unix name (unique within the company), mobile number, roles,
    /// disabled. Disabling or removing a role ends the user's sessions.
    #[command(alias = "edit")]
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
    Update {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// The user's id or email.
        user: String,
        /// The new login email.
        #[arg(long, group = "change")]
        email: Option<String>,
        /// The new Unix name for PAM logins.
        #[arg(long, group = "change", conflicts_with = "default_unix_name")]
        unix_name: Option<String>,
        /// Put back the default Unix name (the email's local part).
        #[arg(long, group = "change")]
        default_unix_name: bool,
        /// The mobile number for SMS codes (E.164, e.g. +15551234567).
        #[arg(long, group = "change", conflicts_with = "no_mobile")]
        mobile: Option<String>,
        /// Clear the mobile number (codes then go by email).
        #[arg(long, group = "change")]
        no_mobile: bool,
        /// Refuse every login of the user (the last enabled administrator cannot be disabled).
        #[arg(long, group = "change", conflicts_with = "enable")]
        disable: bool,
        /// Let a disabled user sign in again.
        #[arg(long, group = "change")]
        enable: bool,
        /// The user's roles, replacing the current ones (repeatable; built-in or the company's own).
        #[arg(long = "role", group = "change", conflicts_with = "no_roles")]
        roles: Vec<String>,
        /// Take every role from the user.
        #[arg(long, group = "change")]
        no_roles: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Make a one-time link (24 hours) that sets the user's password; it is emailed to the user
    /// and printed once.
    SetPasswordLink {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// The user's id or email.
        user: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Choose a user's second factor, or reset their authenticator app (they are told by email).
    #[command(name = "2fa")]
    #[command(group(clap::ArgGroup::new("what").required(true)))]
    TwoFactor {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// The user's id or email.
        user: String,
        /// sms-email, totp or duo (one the company offers and the user is enrolled in).
        #[arg(long, group = "what")]
        method: Option<String>,
        /// Remove the user's authenticator-app enrolment (a lost phone).
        #[arg(long, group = "what")]
        reset_totp: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// End a user's second-factor lock and password throttle (they are told by email).
    Unlock {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// The user's id or email.
        user: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Link a user to an existing Duo user (Duo must be able to authenticate them; Duo becomes
    /// the user's method), or remove the user's Duo enrolment.
    Duo {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// The user's id or email.
        user: String,
        /// The Duo username to link.
        #[arg(long, conflicts_with = "remove", required_unless_present = "remove")]
        link: Option<String>,
        /// Remove the Duo enrolment (the user falls back to the company's other method).
        #[arg(long)]
        remove: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a relying panel.
    Add {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Exact redirect URI (repeatable).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE required).
        #[arg(long)]
        public: bool,
        /// Exact post-logout redirect URI (repeatable).
        #[arg(long = "post-logout-uri")]
        post_logout_uris: Vec<String>,
        /// ID token algorithm.
        #[arg(long, value_parser = ["RS256", "ES256", "EdDSA"])]
        id_token_alg: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
enum ApiAccountCommand {
    /// Create an API account.
    Add {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Scope it may obtain (repeatable, at least one).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Make an existing user an API account: their password stops working, their sessions end,
    /// and a client secret is printed once.
    Set {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// The user's id or email.
        user: String,
        /// Scope it may obtain (repeatable, at least one).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Make an API account a person again: its client secrets are revoked (send it a
    /// set-password link).
    Clear {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// The user's id or email.
        user: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// A new client secret for an API account (printed once); the old one stops working.
    Rotate {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// The API account's client_id.
        client_id: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
enum RoleCommand {
    /// List the company's roles and what each permits.
    List {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Create one of the company's own roles or replace its permissions.
    Set {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// The role's name (a-z 0-9 . _ -).
        name: String,
        /// A permission it holds (repeatable): company.manage, users.manage, audit.read.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Delete one of the company's own roles (nobody may hold it).
    Remove {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// The role's name.
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
enum PamHostCommand {
    /// Create a PAM host credential for a company; prints host_id and host_secret (once).
    Add {
        /// Company id or name.
        #[arg(long)]
        tenant: String,
        /// Display name (e.g. the host's name).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List PAM hosts (never their secrets).
    List {
        /// Only this company (id or name).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Remove a PAM host: its module's next call is refused.
    Remove {
        /// The host_id.
        host_id: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make new signing keys current; the previous ones stay published for a day.
    Rotate {
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Show a page of audit events, newest first (`--json` adds `next`, the cursor of the next
    /// page, for `--before`).
    List {
        /// Only this company (id or name).
        #[arg(long)]
        tenant: Option<String>,
        /// From this time on: Unix seconds or RFC 3339 (2026-11-28T09:00:00Z).
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        filter: AuditFilter,
        /// Events older than this cursor (a previous page's `next`).
        #[arg(long)]
        before: Option<String>,
        /// Events per page (1 to 1000; default 100).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Write audit events to standard output as CSV (formula-looking cells neutralised) or JSON
    /// Lines, oldest first, at most 100,000.
    Export {
        /// Only this company (id or name).
        #[arg(long)]
        tenant: Option<String>,
        /// From this time on: Unix seconds or RFC 3339 (2026-11-28T09:00:00Z).
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        filter: AuditFilter,
        /// csv or jsonl.
        #[arg(long, default_value = "csv", value_parser = ["csv", "jsonl"])]
        format: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// Which audit events to show.
#[derive(clap::Args)]
struct AuditFilter {
    /// Only events whose actor or target is this (user id, email, client id).
    #[arg(long)]
    user: Option<String>,
    /// Only this action, or those starting with the text before a final `*` (`login.*`).
    #[arg(long)]
    action: Option<String>,
    /// Only this outcome.
    #[arg(long, value_parser = ["success", "failure"])]
    outcome: Option<String>,
}

impl AuditFilter {
    /// The filter as query parameters.
    fn query(self) -> Vec<(&'static str, String)> {
        [
            ("user", self.user),
            ("action", self.action),
            ("outcome", self.outcome),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
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
    if let Ok(v) = std::env::var("PADLOCK_LOG_FORMAT") {
        config.log_format = v.parse().map_err(|e| format!("PADLOCK_LOG_FORMAT: {e}"))?;
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
        Command::Tenant { command } => manage(command.into()),
        Command::User { command } => manage(command.into()),
        Command::Client { command } => manage(command.into()),
        Command::ApiAccount { command } => manage(command.into()),
        Command::Role { command } => manage(command.into()),
        Command::PamHost { command } => manage(command.into()),
        Command::Keys { command } => manage(command.into()),
        Command::Audit { command } => manage(command.into()),
        Command::RecoverAdmin(args) => recover_admin(args),
    }
}

/// One management call: where to send it and how to show the answer.
struct Call {
    remote: RemoteArgs,
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: serde_json::Value,
    /// Key under which a list answer is wrapped for `--json` (one object per command).
    list_key: Option<&'static str>,
    /// For a paged list: the query parameter that asks for the next page (`before`, `after`);
    /// its value is shown as `next`.
    cursor: Option<&'static str>,
    show: fn(&serde_json::Value) -> String,
}

enum Method {
    Get,
    /// A GET whose text answer is printed as it is (an export), `--json` or not.
    GetText,
    Post,
    Put,
    Patch,
    Delete,
}

fn call(
    remote: RemoteArgs,
    method: Method,
    path: String,
    body: serde_json::Value,
    show: fn(&serde_json::Value) -> String,
) -> Result<Call, String> {
    Ok(Call {
        remote,
        method,
        path,
        query: Vec::new(),
        body,
        list_key: None,
        cursor: None,
        show,
    })
}

fn field<'a>(v: &'a serde_json::Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

fn show_secret(v: &serde_json::Value) -> String {
    let mut out = format!("client_id: {}", field(v, "client_id"));
    if let Some(s) = v["client_secret"].as_str() {
        out.push_str(&format!(
            "\nclient_secret: {s}\n(the secret is shown this once; store it now)"
        ));
    }
    out
}

/// The strings of a JSON array, joined with `sep`.
fn joined(v: &serde_json::Value, sep: &str) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(serde_json::Value::as_str)
                .collect::<Vec<_>>()
                .join(sep)
        })
        .unwrap_or_default()
}

fn lines(v: &serde_json::Value, f: fn(&serde_json::Value) -> String) -> String {
    v.as_array()
        .map(|a| a.iter().map(f).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

impl From<TenantCommand> for Result<Call, String> {
    fn from(c: TenantCommand) -> Self {
        match c {
            TenantCommand::TwoFactor {
                tenant,
                enable,
                disable: _,
                methods,
                duo_ikey,
                duo_skey_file,
                duo_host,
                remote,
            } => {
                let mut body = serde_json::json!({ "enabled": enable });
                if let Some(m) = methods {
                    body["methods"] = serde_json::json!(m);
                }
                if let (Some(ikey), Some(file), Some(host)) = (duo_ikey, duo_skey_file, duo_host) {
                    let skey = std::fs::read_to_string(&file)
                        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                    body["duo"] =
                        serde_json::json!({ "ikey": ikey, "skey": skey.trim(), "api_host": host });
                }
                call(
                    remote,
                    Method::Put,
                    format!("/tenants/{}/two-factor", segment(&tenant)),
                    body,
                    |v| {
                        let methods: Vec<&str> = ["sms_email", "totp", "duo"]
                            .into_iter()
                            .filter(|m| v["two_factor"]["methods"][*m] == true)
                            .collect();
                        format!(
                            "{}: two-factor authentication {} (methods: {})",
                            field(v, "name"),
                            if v["two_factor"]["enabled"] == true {
                                "on"
                            } else {
                                "off"
                            },
                            methods.join(", ")
                        )
                    },
                )
            }
            TenantCommand::Create { name, remote } => call(
                remote,
                Method::Post,
                "/tenants".into(),
                serde_json::json!({ "name": name }),
                |v| format!("created company {} ({})", field(v, "name"), field(v, "id")),
            ),
            TenantCommand::List { remote } => Ok(Call {
                list_key: Some("tenants"),
                ..call(
                    remote,
                    Method::Get,
                    "/tenants".into(),
                    serde_json::Value::Null,
                    |v| {
                        lines(v, |t| {
                            format!(
                                "{}\t{}\t2fa {}",
                                field(t, "id"),
                                field(t, "name"),
                                if t["two_factor"]["enabled"] == true {
                                    "on"
                                } else {
                                    "off"
                                }
                            )
                        })
                    },
                )?
            }),
        }
    }
}

impl From<UserCommand> for Result<Call, String> {
    fn from(c: UserCommand) -> Self {
        match c {
            UserCommand::Add {
                tenant,
                email,
                password_file,
                mobile,
                roles,
                unix_name,
                remote,
            } => {
                let password = std::fs::read_to_string(&password_file)
                    .map_err(|e| format!("cannot read {}: {e}", password_file.display()))?;
                let password = password.trim_end_matches(['\n', '\r']);
                let body = serde_json::json!({ "email": email, "password": password, "mobile": mobile, "roles": roles, "unix_name": unix_name });
                call(
                    remote,
                    Method::Post,
                    format!("/tenants/{}/users", segment(&tenant)),
                    body,
                    |v| format!("created user {} ({})", field(v, "email"), field(v, "id")),
                )
            }
            UserCommand::Update {
                tenant,
                user,
                email,
                unix_name,
                default_unix_name,
                mobile,
                no_mobile,
                disable,
                enable,
                roles,
                no_roles,
                remote,
            } => {
                let mut body = serde_json::Map::new();
                if let Some(e) = email {
                    body.insert("email".into(), serde_json::json!(e));
                }
                if unix_name.is_some() || default_unix_name {
                    body.insert("unix_name".into(), serde_json::json!(unix_name));
                }
                if mobile.is_some() || no_mobile {
                    body.insert("mobile".into(), serde_json::json!(mobile));
                }
                if disable || enable {
                    body.insert("disabled".into(), serde_json::json!(disable));
                }
                if !roles.is_empty() || no_roles {
                    body.insert("roles".into(), serde_json::json!(roles));
                }
                call(
                    remote,
                    Method::Patch,
                    format!("/tenants/{}/users/{}", segment(&tenant), segment(&user)),
                    serde_json::Value::Object(body),
                    |v| {
                        format!(
                            "{}: Unix name {}, roles [{}]{}",
                            field(v, "email"),
                            field(v, "unix_name"),
                            joined(&v["roles"], ", "),
                            if v["disabled"] == true {
                                ", disabled"
                            } else {
                                ""
                            }
                        )
                    },
                )
            }
            UserCommand::TwoFactor {
                tenant,
                user,
                method,
                reset_totp: _,
                remote,
            } => {
                let done = |v: &serde_json::Value| {
                    format!(
                        "{}: preferred method {}",
                        field(v, "email"),
                        v["preferred_method"]
                            .as_str()
                            .unwrap_or("(the company's default)")
                    )
                };
                let path = |end: &str| {
                    format!(
                        "/tenants/{}/users/{}/{end}",
                        segment(&tenant),
                        segment(&user)
                    )
                };
                match method {
                    Some(m) => call(
                        remote,
                        Method::Put,
                        path("two-factor"),
                        serde_json::json!({ "preferred_method": m }),
                        done,
                    ),
                    None => call(
                        remote,
                        Method::Delete,
                        path("totp"),
                        serde_json::Value::Null,
                        done,
                    ),
                }
            }
            UserCommand::SetPasswordLink {
                tenant,
                user,
                remote,
            } => call(
                remote,
                Method::Post,
                format!(
                    "/tenants/{}/users/{}/set-password-link",
                    segment(&tenant),
                    segment(&user)
                ),
                serde_json::Value::Null,
                |v| {
                    format!(
                        "{}\n(works once, until {}; also emailed to the user)",
                        field(v, "url"),
                        v["expires_at"]
                            .as_u64()
                            .map(crate::domain::format_time)
                            .unwrap_or_default()
                    )
                },
            ),
            UserCommand::Unlock {
                tenant,
                user,
                remote,
            } => call(
                remote,
                Method::Post,
                format!(
                    "/tenants/{}/users/{}/unlock",
                    segment(&tenant),
                    segment(&user)
                ),
                serde_json::Value::Null,
                |v| format!("{}: unlocked", field(v, "email")),
            ),
            UserCommand::Duo {
                tenant,
                user,
                link,
                remove: _,
                remote,
            } => {
                let path = format!("/tenants/{}/users/{}/duo", segment(&tenant), segment(&user));
                let done = |v: &serde_json::Value| match v["duo_username"].as_str() {
                    Some(name) => format!("{}: Duo user {name}", field(v, "email")),
                    None => format!("{}: no Duo enrolment", field(v, "email")),
                };
                match link {
                    Some(username) => call(
                        remote,
                        Method::Put,
                        path,
                        serde_json::json!({ "username": username }),
                        done,
                    ),
                    None => call(remote, Method::Delete, path, serde_json::Value::Null, done),
                }
            }
            UserCommand::List {
                tenant,
                after,
                limit,
                remote,
            } => Ok(Call {
                query: after
                    .map(|a| ("after", a))
                    .into_iter()
                    .chain(limit.map(|l| ("limit", l.to_string())))
                    .collect(),
                list_key: Some("users"),
                cursor: Some("after"),
                ..call(
                    remote,
                    Method::Get,
                    format!("/tenants/{}/users", segment(&tenant)),
                    serde_json::Value::Null,
                    |v| {
                        lines(v, |u| {
                            format!(
                                "{}\t{}\t{}{}",
                                field(u, "id"),
                                field(u, "email"),
                                joined(&u["roles"], ","),
                                if u["api_account"] == true {
                                    "\tAPI account"
                                } else {
                                    ""
                                }
                            )
                        })
                    },
                )?
            }),
        }
    }
}

impl From<ClientCommand> for Result<Call, String> {
    fn from(c: ClientCommand) -> Self {
        let ClientCommand::Add {
            name,
            redirect_uris,
            public,
            post_logout_uris,
            id_token_alg,
            remote,
        } = c;
        let body = serde_json::json!({ "name": name, "redirect_uris": redirect_uris, "public": public, "post_logout_redirect_uris": post_logout_uris, "id_token_alg": id_token_alg });
        call(remote, Method::Post, "/clients".into(), body, show_secret)
    }
}

impl From<ApiAccountCommand> for Result<Call, String> {
    fn from(c: ApiAccountCommand) -> Self {
        match c {
            ApiAccountCommand::Add {
                tenant,
                name,
                scopes,
                remote,
            } => call(
                remote,
                Method::Post,
                format!("/tenants/{}/api-accounts", segment(&tenant)),
                serde_json::json!({ "name": name, "scopes": scopes }),
                show_secret,
            ),
            ApiAccountCommand::Set {
                tenant,
                user,
                scopes,
                remote,
            } => call(
                remote,
                Method::Put,
                format!(
                    "/tenants/{}/users/{}/api-account",
                    segment(&tenant),
                    segment(&user)
                ),
                serde_json::json!({ "scopes": scopes }),
                show_secret,
            ),
            ApiAccountCommand::Clear {
                tenant,
                user,
                remote,
            } => call(
                remote,
                Method::Delete,
                format!(
                    "/tenants/{}/users/{}/api-account",
                    segment(&tenant),
                    segment(&user)
                ),
                serde_json::Value::Null,
                |v| {
                    format!(
                        "{}: no longer an API account; its secrets are revoked (send a set-password link)",
                        field(v, "email")
                    )
                },
            ),
            ApiAccountCommand::Rotate {
                tenant,
                client_id,
                remote,
            } => call(
                remote,
                Method::Post,
                format!(
                    "/tenants/{}/api-accounts/{}/rotate",
                    segment(&tenant),
                    segment(&client_id)
                ),
                serde_json::Value::Null,
                show_secret,
            ),
        }
    }
}

/// One role: name, permissions, and whether it is built in.
fn show_role(r: &serde_json::Value) -> String {
    format!(
        "{}\t{}{}",
        field(r, "name"),
        joined(&r["permissions"], ","),
        if r["built_in"] == true {
            "\tbuilt-in"
        } else {
            ""
        }
    )
}

impl From<RoleCommand> for Result<Call, String> {
    fn from(c: RoleCommand) -> Self {
        match c {
            RoleCommand::List { tenant, remote } => Ok(Call {
                list_key: Some("roles"),
                ..call(
                    remote,
                    Method::Get,
                    format!("/tenants/{}/roles", segment(&tenant)),
                    serde_json::Value::Null,
                    |v| lines(v, show_role),
                )?
            }),
            RoleCommand::Set {
                tenant,
                name,
                permissions,
                remote,
            } => call(
                remote,
                Method::Put,
                format!("/tenants/{}/roles/{}", segment(&tenant), segment(&name)),
                serde_json::json!({ "permissions": permissions }),
                show_role,
            ),
            RoleCommand::Remove {
                tenant,
                name,
                remote,
            } => call(
                remote,
                Method::Delete,
                format!("/tenants/{}/roles/{}", segment(&tenant), segment(&name)),
                serde_json::Value::Null,
                |v| format!("removed role {}", field(v, "removed")),
            ),
        }
    }
}

impl From<PamHostCommand> for Result<Call, String> {
    fn from(c: PamHostCommand) -> Self {
        match c {
            PamHostCommand::Add {
                tenant,
                name,
                remote,
            } => call(
                remote,
                Method::Post,
                format!("/tenants/{}/pam-hosts", segment(&tenant)),
                serde_json::json!({ "name": name }),
                |v| {
                    format!(
                        "host_id: {}\nhost_secret: {}\n(the secret is shown only now: put it in the host's host_secret_file, mode 0600, owned by root)",
                        field(v, "host_id"),
                        field(v, "host_secret")
                    )
                },
            ),
            PamHostCommand::List { tenant, remote } => {
                let query = tenant.map(|t| vec![("tenant", t)]).unwrap_or_default();
                Ok(Call {
                    query,
                    list_key: Some("pam_hosts"),
                    ..call(
                        remote,
                        Method::Get,
                        "/pam-hosts".into(),
                        serde_json::Value::Null,
                        |v| {
                            lines(v, |h| {
                                format!(
                                    "{}\t{}\t{}",
                                    field(h, "host_id"),
                                    field(h, "name"),
                                    field(h, "tenant")
                                )
                            })
                        },
                    )?
                })
            }
            PamHostCommand::Remove { host_id, remote } => call(
                remote,
                Method::Delete,
                format!("/pam-hosts/{}", segment(&host_id)),
                serde_json::Value::Null,
                |v| format!("removed PAM host {}", field(v, "removed")),
            ),
        }
    }
}

impl From<KeysCommand> for Result<Call, String> {
    fn from(c: KeysCommand) -> Self {
        let KeysCommand::Rotate { remote } = c;
        call(
            remote,
            Method::Post,
            "/keys/rotate".into(),
            serde_json::json!({}),
            |v| format!("current keys: {}", joined(&v["current"], " ")),
        )
    }
}

impl From<AuditCommand> for Result<Call, String> {
    fn from(c: AuditCommand) -> Self {
        let (tenant, since, filter, before, limit, remote) = match c {
            AuditCommand::Export {
                tenant,
                since,
                filter,
                format,
                remote,
            } => {
                let mut query = vec![("format", format)];
                query.extend(filter.query());
                query.extend(tenant.map(|t| ("tenant", t)));
                if let Some(s) = since {
                    query.push(("since", parse_since(&s)?.to_string()));
                }
                return Ok(Call {
                    query,
                    ..call(
                        remote,
                        Method::GetText,
                        "/audit/export".into(),
                        serde_json::Value::Null,
                        |v| v.as_str().unwrap_or_default().to_owned(),
                    )?
                });
            }
            AuditCommand::List {
                tenant,
                since,
                filter,
                before,
                limit,
                remote,
            } => (tenant, since, filter, before, limit, remote),
        };
        let mut query = filter.query();
        query.extend(before.map(|b| ("before", b)));
        query.extend(limit.map(|l| ("limit", l.to_string())));
        if let Some(t) = tenant {
            query.push(("tenant", t));
        }
        if let Some(s) = since {
            query.push(("since", parse_since(&s)?.to_string()));
        }
        Ok(Call {
            query,
            list_key: Some("events"),
            cursor: Some("before"),
            ..call(
                remote,
                Method::Get,
                "/audit".into(),
                serde_json::Value::Null,
                |v| {
                    lines(v, |e| {
                        let at = e["at"].as_u64().and_then(|t| {
                            time::OffsetDateTime::from_unix_timestamp(i64::try_from(t).ok()?).ok()
                        });
                        let at = at
                            .and_then(|t| {
                                t.format(&time::format_description::well_known::Rfc3339)
                                    .ok()
                            })
                            .unwrap_or_default();
                        format!(
                            "{at}\t{}\t{}\t{}\t{}",
                            field(e, "actor"),
                            field(e, "action"),
                            field(e, "target"),
                            field(e, "outcome")
                        )
                    })
                },
            )?
        })
    }
}

fn parse_since(s: &str) -> Result<u64, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
        .ok_or_else(|| {
            format!("--since `{s}`: use Unix seconds or RFC 3339 such as 2026-11-28T09:00:00Z")
        })
}

fn manage(call: Result<Call, String>) -> ExitCode {
    let call = match call {
        Ok(c) => c,
        Err(e) => {
            eprintln!("padlock: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("padlock: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut next = None;
    let result = runtime.block_on(async {
        let remote = Remote::connect(&call.remote.credentials, call.remote.url.as_deref()).await?;
        match call.method {
            Method::Get => match call.cursor {
                Some(cursor) => {
                    let (value, n) = remote
                        .get_page::<serde_json::Value>(&call.path, &call.query, cursor)
                        .await?;
                    next = n;
                    Ok(value)
                }
                None => {
                    remote
                        .get::<serde_json::Value>(&call.path, &call.query)
                        .await
                }
            },
            Method::GetText => remote
                .get_text(&call.path, &call.query)
                .await
                .map(serde_json::Value::String),
            Method::Post => {
                remote
                    .post::<serde_json::Value>(&call.path, &call.body)
                    .await
            }
            Method::Put => {
                remote
                    .put::<serde_json::Value>(&call.path, &call.body)
                    .await
            }
            Method::Patch => {
                remote
                    .patch::<serde_json::Value>(&call.path, &call.body)
                    .await
            }
            Method::Delete => remote.delete::<serde_json::Value>(&call.path).await,
        }
    });
    match result {
        Ok(serde_json::Value::String(text)) if matches!(call.method, Method::GetText) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(value) => {
            if call.remote.json {
                let mut value = match call.list_key {
                    Some(k) => serde_json::json!({ k: value }),
                    None => value,
                };
                if let Some(n) = &next {
                    value["next"] = serde_json::json!(n);
                }
                println!("{value}");
            } else {
                println!("{}", (call.show)(&value));
                if let (Some(n), Some(cursor)) = (&next, call.cursor) {
                    println!("(more: add --{cursor} {n})");
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("padlock: {e}");
            ExitCode::FAILURE
        }
    }
}

fn recover_admin(args: RecoverArgs) -> ExitCode {
    let run = || -> Result<String, String> {
        let (config, _) = load(&args.file)?;
        let data_dir = args.data_dir.unwrap_or(config.data_dir);
        let password = args
            .password_file
            .map(|f| {
                std::fs::read_to_string(&f)
                    .map(|p| {
                        crate::secret::Password::new(p.trim_end_matches(['\n', '\r']).to_owned())
                    })
                    .map_err(|e| format!("cannot read {}: {e}", f.display()))
            })
            .transpose()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let done = runtime
            .block_on(crate::recover::recover_admin(
                &data_dir,
                &args.email,
                password,
                now,
            ))
            .map_err(|e| e.to_string())?;
        Ok(match done.generated {
            Some(p) => format!(
                "new password of {} ({}): {p}\n(shown this once; their sessions ended, their second factor is unchanged)",
                done.email, done.company
            ),
            None => format!(
                "password of {} ({}) set; their sessions ended, their second factor is unchanged",
                done.email, done.company
            ),
        })
    };
    match run() {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("padlock: {e}");
            ExitCode::FAILURE
        }
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
    if !problems.is_empty() {
        for p in problems {
            eprintln!("{name}: {p}");
        }
        return ExitCode::FAILURE;
    }
    // Build the senders as `serve` does, so that certificate files, addresses and secrets that
    // would stop it are reported here too.
    let senders = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async {
                crate::delivery::Delivery::from_config(&config, &config.data_dir).map(drop)
            })
        });
    if let Err(e) = senders {
        eprintln!("{name}: {e}");
        return ExitCode::FAILURE;
    }
    println!("{name}: OK");
    ExitCode::SUCCESS
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
    // Colour only for a person at a terminal: escape codes in a file, a pipe or the journal are
    // noise to every reader and tool.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let json = config.log_format == LogFormat::Json;
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
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
        // A log collector reading JSON gets the reason as one more JSON line.
        Err(e) if json => {
            tracing::error!(error = %e, "padlock could not start");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("padlock: {e}");
            ExitCode::FAILURE
        }
    }
}
