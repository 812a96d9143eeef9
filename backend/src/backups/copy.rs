//! `bookstore backup` and `bookstore restore` for SQLite: a consistent copy of a live
//! database, and putting one back.
//!
//! A backup is `VACUUM INTO` a hidden file next to the destination (one read transaction:
//! a snapshot, while the server keeps writing), checked with SQLite's integrity check, flushed
//! to disk, and only then renamed to its name; a failure leaves nothing under that name.
//!
//! A restore refuses while a server has the database open: every server holds a shared lock
//! on `DB.lock` for as long as it runs ([`ServerLock`]; the kernel drops it if the process
//! dies), and the restore takes it exclusively or stops. The copy is checked, written next to
//! the database, and renamed over it; the database it replaces is kept as `DB.before-restore-TIMESTAMP`.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

/// What went wrong, for the command to print.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}")]
    Refused(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{context}: {source}")]
    Database { context: String, source: sqlx::Error },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CopyError {
    let context = context.into();
    move |source| CopyError::Io { context, source }
}

fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> CopyError {
    let context = context.into();
    move |source| CopyError::Database { context, source }
}

/// A finished copy.
#[derive(Debug)]
pub struct Copied {
    pub path: PathBuf,
    pub books: i64,
    pub bytes: u64,
    pub seconds: f64,
}

/// The database file an `sqlite://` URL names.
pub fn database_file(url: &str) -> Result<PathBuf, CopyError> {
    let options = SqliteConnectOptions::from_str(url).map_err(db(format!("{url} is not a SQLite URL")))?;
    Ok(options.get_filename().to_owned())
}

/// Copies the live database at `url` to `destination`, which must not exist yet.
pub async fn backup(url: &str, destination: &Path) -> Result<Copied, CopyError> {
    let started = Instant::now();
    let source = database_file(url)?;
    if !source.is_file() {
        return Err(CopyError::Refused(format!(
            "there is no database at {}",
            source.display()
        )));
    }
    if destination.exists() {
        return Err(CopyError::Refused(format!(
            "{} exists already: choose a new name (a backup never overwrites one)",
            destination.display()
        )));
    }
    let partial = partial_name(destination, "partial");
    let live = SqliteConnectOptions::new()
        .filename(&source)
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(10));
    let books = snapshot(live, &source, &partial).await?;
    if let Err(error) = fs::rename(&partial, destination) {
        let _ = fs::remove_file(&partial);
        return Err(CopyError::Io {
            context: format!("cannot name the copy {}", destination.display()),
            source: error,
        });
    }
    flush_folder(destination)?;
    Ok(Copied {
        path: destination.to_owned(),
        books,
        bytes: fs::metadata(destination).map(|m| m.len()).unwrap_or(0),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Writes a consistent copy of the database `options` open (at `source`) to `partial` with
/// `VACUUM INTO` (one read transaction: a snapshot, while a server may keep writing), checks
/// it and flushes it to disk. Returns its number of books; on any failure nothing is left at
/// `partial`.
async fn snapshot(options: SqliteConnectOptions, source: &Path, partial: &Path) -> Result<i64, CopyError> {
    let copied = async {
        let mut conn = options
            .connect()
            .await
            .map_err(db(format!("cannot open {}", source.display())))?;
        sqlx::query("VACUUM INTO ?")
            .bind(partial.to_string_lossy().as_ref())
            .execute(&mut conn)
            .await
            .map_err(db(format!("cannot write the copy {}", partial.display())))?;
        conn.close().await.ok();
        let books = check(partial).await?;
        flush(partial)?;
        Ok(books)
    }
    .await;
    if copied.is_err() {
        let _ = fs::remove_file(partial);
    }
    copied
}

/// Replaces the database at `url` with a checked copy of `source`, unless a server has it
/// open. Returns the copy, and where the replaced database was kept (if there was one).
pub async fn restore(url: &str, source: &Path) -> Result<(Copied, Option<PathBuf>), CopyError> {
    let started = Instant::now();
    let target = database_file(url)?;
    if !source.is_file() {
        return Err(CopyError::Refused(format!(
            "there is no file at {}",
            source.display()
        )));
    }
    if let Some(folder) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(folder).map_err(io(format!("cannot make {}", folder.display())))?;
    }
    let lock = lock_file(&target).map_err(io(format!("cannot open {}", lock_path(&target).display())))?;
    if lock.try_lock().is_err() {
        return Err(CopyError::Refused(format!(
            "a server has {} open: stop it first (docker compose stop backend), then restore",
            target.display()
        )));
    }
    check(source).await.map_err(|e| {
        CopyError::Refused(format!(
            "{} is not a sound bookstore database: {e}",
            source.display()
        ))
    })?;
    // A consistent copy of the source (which may be in WAL mode itself) next to the target.
    let partial = partial_name(&target, "restoring");
    let _ = fs::remove_file(&partial);
    let books = snapshot(
        SqliteConnectOptions::new().filename(source).read_only(true),
        source,
        &partial,
    )
    .await?;
    let kept = if target.exists() {
        // Fold the old database's write-ahead log into it (a server killed without a clean
        // stop leaves one), so that the file set aside is whole on its own.
        let folded = async {
            let mut conn = SqliteConnectOptions::new()
                .filename(&target)
                .create_if_missing(false)
                .connect()
                .await?;
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut conn)
                .await?;
            conn.close().await?;
            Ok::<_, sqlx::Error>(busy)
        }
        .await;
        match folded {
            Ok(0) => {}
            Ok(_) => {
                let _ = fs::remove_file(&partial);
                return Err(CopyError::Refused(format!(
                    "{} is busy (another process is using it): stop it, then restore",
                    target.display()
                )));
            }
            Err(source) => {
                let _ = fs::remove_file(&partial);
                return Err(CopyError::Database {
                    context: format!("cannot fold the write-ahead log of {} into it", target.display()),
                    source,
                });
            }
        }
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut name = target.as_os_str().to_owned();
        name.push(format!(".before-restore-{stamp}"));
        let kept = PathBuf::from(name);
        fs::rename(&target, &kept).map_err(io(format!("cannot set {} aside", target.display())))?;
        Some(kept)
    } else {
        None
    };
    // The old database's write-ahead log belongs to it, not to the copy.
    for suffix in ["-wal", "-shm"] {
        let mut name = target.as_os_str().to_owned();
        name.push(suffix);
        match fs::remove_file(PathBuf::from(name)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(CopyError::Io {
                    context: format!("cannot remove the old {suffix} file"),
                    source: error,
                });
            }
            _ => {}
        }
    }
    fs::rename(&partial, &target).map_err(io(format!("cannot put the copy at {}", target.display())))?;
    flush_folder(&target)?;
    drop(lock);
    Ok((
        Copied {
            path: target.clone(),
            books,
            bytes: fs::metadata(&target).map(|m| m.len()).unwrap_or(0),
            seconds: started.elapsed().as_secs_f64(),
        },
        kept,
    ))
}

/// `bookstore check-database`: SQLite's own consistency check of the file at `path`, opened
/// read-only (never created): `["ok"]` when all is well, else the problems found.
pub async fn integrity(path: &Path) -> Result<Vec<String>, CopyError> {
    let mut conn = open_read_only(path).await?;
    let problems = integrity_of(&mut conn, path).await;
    conn.close().await.ok();
    problems
}

async fn open_read_only(path: &Path) -> Result<SqliteConnection, CopyError> {
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    options
        .connect()
        .await
        .map_err(db(format!("cannot open {}", path.display())))
}

async fn integrity_of(conn: &mut SqliteConnection, path: &Path) -> Result<Vec<String>, CopyError> {
    sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(conn)
        .await
        .map_err(db(format!("cannot check {}", path.display())))
}

/// Runs SQLite's integrity check on `path` and checks it is a bookstore database; returns
/// its number of books.
async fn check(path: &Path) -> Result<i64, CopyError> {
    let mut conn = open_read_only(path).await?;
    let problems = integrity_of(&mut conn, path).await?;
    if problems != ["ok"] {
        return Err(CopyError::Refused(format!(
            "the integrity check of {} failed: {}",
            path.display(),
            problems.join("; ")
        )));
    }
    let books: i64 = sqlx::query_scalar("SELECT count(*) FROM books")
        .fetch_one(&mut conn)
        .await
        .map_err(db(format!("{} has no bookstore data", path.display())))?;
    conn.close().await.ok();
    Ok(books)
}

/// The file a server keeps a shared lock on while it has `database` open.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn lock_file(database: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(database))
}

/// A running server's claim on its database file: a shared lock on `DB.lock` for as long as
/// it runs (the kernel drops it if the process dies), which [`restore`] takes exclusively or
/// refuses.
#[derive(Debug)]
pub struct ServerLock(#[allow(dead_code)] File);

impl ServerLock {
    pub fn hold(database: &Path) -> std::io::Result<Self> {
        let file = lock_file(database)?;
        file.lock_shared()?;
        Ok(Self(file))
    }
}

/// A hidden name next to `path`, for a file being written.
fn partial_name(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

fn flush(path: &Path) -> Result<(), CopyError> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(io(format!("cannot flush {} to disk", path.display())))
}

/// Makes a rename in `path`'s folder durable.
fn flush_folder(path: &Path) -> Result<(), CopyError> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(io(format!("cannot flush {} to disk", folder.display())))
}
