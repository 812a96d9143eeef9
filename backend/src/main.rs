//! `bookstore [serve]` runs the server; `bookstore healthcheck` probes one.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use bookstore::config::{Cli, Command};
use bookstore::startup::{Application, shutdown_signal};
use bookstore::{healthcheck, telemetry};
use clap::Parser;

/// mimalloc keeps per-thread heaps, so the runtime's workers never wait for each other to
/// allocate; its options are chosen when it is built (`no_thp` in `Cargo.toml`, see
/// docs/architecture.md#performance), never set at run time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    // init-secrets sets its own files' modes (some are for other services to read); the
    // alert log and the health check hold no catalogue data.
    if !matches!(
        command,
        Command::InitSecrets(_) | Command::WebConfig | Command::AlertLog(_) | Command::Healthcheck(_)
    ) {
        private_files();
    }
    // The one runtime: the server's threads, one per core; a thread for any other command.
    let mut builder = match command {
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(command)),
        Err(error) => {
            eprintln!("cannot start: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> ExitCode {
    survive_file_size_limit();
    match command {
        Command::Healthcheck(args) => match healthcheck::check(args.addr, args.timeout).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(reason) => {
                eprintln!("{reason}");
                ExitCode::FAILURE
            }
        },
        Command::CheckDatabase(args) => check_database(&args.database).await,
        Command::CopyDatabase(args) => copy_database(&args).await,
        Command::InitSecrets(args) => init_secrets(&args),
        Command::WebConfig => web_config(),
        Command::Token(args) => token(args.command).await,
        Command::Backup(args) => backup(&args).await,
        Command::AlertLog(args) => match bookstore::alert_log::run(args.addr, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("alert-log: cannot listen on {}: {error}", args.addr);
                ExitCode::FAILURE
            }
        },
        Command::Restore(args) => restore(&args).await,
        Command::Serve(args) => serve(args).await,
    }
}

/// The SQLite URL of `database`, or the exit code: 2 for a bad argument, or for PostgreSQL
/// (whose own tools do this better), with what to use instead.
fn sqlite_url(database: &bookstore::config::DatabaseArgs, postgres_tool: &str) -> Result<String, ExitCode> {
    let url = database.url().map_err(|error| {
        eprintln!("{error:#}");
        ExitCode::from(2)
    })?;
    match bookstore::store::Engine::of(&url) {
        Some(bookstore::store::Engine::Sqlite) => Ok(url),
        _ => {
            eprintln!(
                "this command copies SQLite files; for PostgreSQL use {postgres_tool} \
                 (docs/scaling.md#backups-on-postgresql)"
            );
            Err(ExitCode::from(2))
        }
    }
}

/// `bookstore backup DEST`: 0 done, 1 failed (nothing is left under DEST), 2 a bad argument.
async fn backup(args: &bookstore::config::BackupArgs) -> ExitCode {
    use bookstore::backups::copy as backup;
    let url = match sqlite_url(&args.database, "pg_dump") {
        Ok(url) => url,
        Err(code) => return code,
    };
    match backup::backup(&url, &args.dest).await {
        Ok(copy) => {
            println!(
                "backed up {} books to {} ({} bytes, {:.2} s); integrity check ok",
                copy.books,
                copy.path.display(),
                copy.bytes,
                copy.seconds
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("backup failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `bookstore restore SRC`: 0 done, 1 refused or failed (the database is untouched), 2 a bad
/// argument.
async fn restore(args: &bookstore::config::RestoreArgs) -> ExitCode {
    use bookstore::backups::copy as backup;
    let url = match sqlite_url(&args.database, "pg_restore") {
        Ok(url) => url,
        Err(code) => return code,
    };
    match backup::restore(&url, &args.src).await {
        Ok((copy, kept)) => {
            println!(
                "restored {} books into {} ({:.2} s); integrity check ok",
                copy.books,
                copy.path.display(),
                copy.seconds
            );
            if let Some(kept) = kept {
                println!("the database it replaced is kept as {}", kept.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("restore refused: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn check_database(database: &bookstore::config::DatabaseArgs) -> ExitCode {
    let url = match database.url() {
        Ok(url) => url,
        Err(error) => {
            eprintln!("{error:#}");
            return ExitCode::from(2);
        }
    };
    if bookstore::store::Engine::of(&url) != Some(bookstore::store::Engine::Sqlite) {
        eprintln!("check-database checks SQLite files; for PostgreSQL, use its own tools (amcheck, pg_dump)");
        return ExitCode::from(2);
    }
    let result = match bookstore::backups::copy::database_file(&url) {
        Ok(path) => bookstore::backups::copy::integrity(&path).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(problems) if problems == ["ok"] => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Ok(problems) => {
            problems.iter().for_each(|p| println!("{p}"));
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("cannot check {url}: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn copy_database(args: &bookstore::config::CopyDatabaseArgs) -> ExitCode {
    use bookstore::startup::redacted;
    use bookstore::store::transfer::{CopyError, copy};
    match copy(&args.from, &args.to, args.overwrite).await {
        Ok(copied) => {
            println!(
                "copied {} books from {} to {} (new ids start after {})",
                copied.books,
                redacted(&args.from),
                redacted(&args.to),
                copied.id_floor
            );
            ExitCode::SUCCESS
        }
        Err(error @ (CopyError::TargetNotEmpty(_) | CopyError::SameDatabase)) => {
            eprintln!("{error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("the copy failed, and no book was written to the target: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_secrets(args: &bookstore::config::InitSecretsArgs) -> ExitCode {
    use bookstore::secrets::{Made, init, init_admin_token, init_monitoring};
    let mut made = match init(
        &args.dir,
        args.postgres_dir.as_deref(),
        args.database_url.as_deref(),
        args.postgres_password.as_deref(),
    ) {
        Ok(made) => made,
        Err(error) => {
            eprintln!("cannot make the secrets in {}: {error}", args.dir.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = &args.monitoring_dir {
        match init_monitoring(dir, args.grafana_password.as_deref()) {
            Ok(files) => made.extend(files),
            Err(error) => {
                eprintln!("cannot make the monitoring secrets in {}: {error}", dir.display());
                return ExitCode::FAILURE;
            }
        }
    }
    if args.admin_token {
        match init_admin_token(&args.dir, args.chosen_admin_token.as_deref()) {
            Ok(file) => made.push(file),
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::FAILURE;
            }
        }
    }
    for file in made {
        match file {
            Made::Created(name) => println!("made {name}"),
            Made::Kept(name) => println!("kept {name}"),
            Made::Replaced(name) => println!("replaced {name} (from the environment)"),
        }
    }
    ExitCode::SUCCESS
}

/// `bookstore web-config`: the password from standard input, its web config on standard output.
fn web_config() -> ExitCode {
    let mut password = String::new();
    if let Err(error) = std::io::stdin().read_line(&mut password) {
        eprintln!("cannot read the password from standard input: {error}");
        return ExitCode::FAILURE;
    }
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("no password on standard input");
        return ExitCode::from(2);
    }
    match bookstore::secrets::web_config(password) {
        Ok(config) => {
            println!("{config}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cannot hash the password: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `bookstore token …`. Exit status: 0 done, 1 refused or failed, 2 a bad argument.
async fn token(command: bookstore::config::TokenCommand) -> ExitCode {
    use bookstore::auth::commands;
    use bookstore::config::TokenCommand;
    use bookstore::store::credentials::CreateError;

    let database = match &command {
        TokenCommand::Create(args) => &args.database,
        TokenCommand::List(args) => &args.database,
        TokenCommand::Revoke(args) => &args.database,
    };
    let url = match database.url() {
        Ok(url) => url,
        Err(error) => {
            eprintln!("{error:#}");
            return ExitCode::from(2);
        }
    };
    let store = match bookstore::store::open_credentials(&url).await {
        Ok(store) => store,
        Err(error) => {
            eprintln!(
                "cannot open the database {}: {error}",
                bookstore::startup::redacted(&url)
            );
            return ExitCode::FAILURE;
        }
    };
    let now = bookstore::store::unix_now();
    let code = match command {
        TokenCommand::Create(args) => {
            let name = match commands::token_name(&args.name) {
                Ok(name) => name,
                Err(rule) => {
                    eprintln!("{rule}");
                    return ExitCode::from(2);
                }
            };
            match commands::create(&store, &name, !args.read_only, args.expires_in).await {
                Ok((token, record)) => {
                    println!("{token}");
                    eprintln!(
                        "made the {} token {:?}; it is shown only this once. Use it as `Authorization: Bearer <token>`, \
                         or sign in with it in the UI.",
                        commands::scope(&record),
                        record.name
                    );
                    ExitCode::SUCCESS
                }
                Err(CreateError::NameTaken(name)) => {
                    eprintln!(
                        "an active token is named {name:?} already: choose another name, or revoke it first"
                    );
                    ExitCode::FAILURE
                }
                Err(CreateError::Database(error)) => {
                    eprintln!("cannot store the token: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        TokenCommand::List(args) => match store.list_tokens().await {
            Ok(tokens) if args.json => {
                println!("{}", commands::json(&tokens, now));
                ExitCode::SUCCESS
            }
            Ok(tokens) => {
                print!("{}", commands::table(&tokens, now));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("cannot list the tokens: {error}");
                ExitCode::FAILURE
            }
        },
        TokenCommand::Revoke(args) => match store.revoke_token(args.name.trim(), now).await {
            Ok(true) => {
                println!("revoked {:?}", args.name.trim());
                ExitCode::SUCCESS
            }
            Ok(false) => {
                eprintln!("there is no active token named {:?}", args.name.trim());
                ExitCode::FAILURE
            }
            Err(error) => {
                eprintln!("cannot revoke the token: {error}");
                ExitCode::FAILURE
            }
        },
    };
    store.close().await;
    code
}

async fn serve(args: bookstore::config::ServeArgs) -> ExitCode {
    telemetry::init(args.log_format);
    let result = async {
        let app = Application::build(&args).await?;
        app.run_until(shutdown_signal()).await?;
        anyhow::Ok(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The files that hold the catalogue (the database, its journal, backups) are made readable
/// by their user alone: they hold the hashes of API tokens and sessions, and nobody else on
/// the host needs them, nor a neighbouring container that mounts the data volume
/// (node-exporter measures its disk).
#[cfg(unix)]
fn private_files() {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
}

#[cfg(not(unix))]
fn private_files() {}

/// A write past the process's file-size limit (`RLIMIT_FSIZE`) raises SIGXFSZ, which kills
/// the process by default. Once any handler is installed (Tokio's, here, which only wakes a
/// `Signal` nobody waits for), the signal no longer kills and the write fails with `EFBIG`:
/// SQLite reports an I/O error, the writer answers 503 and recovers once the limit is lifted,
/// as it does for a full disk. Tokio keeps the handler for the rest of the process.
#[cfg(unix)]
fn survive_file_size_limit() {
    use tokio::signal::unix::{SignalKind, signal};
    if let Err(error) = signal(SignalKind::from_raw(libc::SIGXFSZ)) {
        eprintln!("cannot handle SIGXFSZ (a write past the file-size limit will end the process): {error}");
    }
}

#[cfg(not(unix))]
fn survive_file_size_limit() {}
