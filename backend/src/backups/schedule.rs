//! Scheduled backups (`BOOKSTORE_BACKUP_DIR`): a backup ([`super::copy`])
//! every interval, the newest kept, and their metrics.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::copy::{CopyError, backup};
use crate::metrics::{BACKUP_FAILURES, BACKUP_INTERVAL, BACKUP_LAST_SUCCESS, Metrics};

/// Scheduled backups (`BOOKSTORE_BACKUP_DIR`): where, how often, how many to keep.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub dir: PathBuf,
    pub every: Duration,
    pub keep: usize,
}

/// A failed scheduled backup is tried again this soon (or at its interval, if shorter).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);

impl Schedule {
    /// Takes a backup of the database at `url` on this schedule, for as long as the returned
    /// task runs: the first at once unless the folder holds a recent one. Exports when the last
    /// one succeeded and how many failed; a failure is logged and counted, and never touches
    /// serving.
    pub fn spawn(self, url: String, metrics: &Metrics) -> tokio::task::JoinHandle<()> {
        let (last_success, failures) = metrics.record(|| {
            metrics::describe_gauge!(
                BACKUP_LAST_SUCCESS,
                "When the last scheduled backup succeeded (Unix time)."
            );
            metrics::describe_counter!(BACKUP_FAILURES, "Scheduled backups that failed.");
            metrics::describe_gauge!(
                BACKUP_INTERVAL,
                "How often a scheduled backup runs (BOOKSTORE_BACKUP_INTERVAL)."
            );
            metrics::gauge!(BACKUP_INTERVAL).set(self.every.as_secs_f64());
            (
                metrics::gauge!(BACKUP_LAST_SUCCESS),
                metrics::counter!(BACKUP_FAILURES),
            )
        });
        failures.absolute(0);
        tokio::spawn(async move {
            self.remove_leftovers();
            let last = self.newest().map(|(_, at)| at);
            last_success.set(last.map_or(0.0, unix_seconds));
            let mut wait = last
                .and_then(|at| at.elapsed().ok())
                .map_or(Duration::ZERO, |age| self.every.saturating_sub(age));
            loop {
                tokio::time::sleep(wait).await;
                let destination = self.dir.join(backup_name(SystemTime::now()));
                let result = match fs::create_dir_all(&self.dir) {
                    Ok(()) => backup(&url, &destination).await,
                    Err(source) => Err(CopyError::Io {
                        context: format!("cannot make {}", self.dir.display()),
                        source,
                    }),
                };
                match result {
                    Ok(copy) => {
                        last_success.set(unix_seconds(SystemTime::now()));
                        tracing::info!(
                            path = %copy.path.display(), books = copy.books, bytes = copy.bytes,
                            seconds = copy.seconds, "scheduled backup done"
                        );
                        self.rotate();
                        wait = self.every;
                    }
                    Err(error) => {
                        failures.increment(1);
                        tracing::error!(dir = %self.dir.display(), %error, "scheduled backup failed");
                        wait = self.every.min(RETRY_AFTER_FAILURE);
                    }
                }
            }
        })
    }

    /// The scheduled backups in the folder, newest first.
    fn backups(&self) -> Vec<(PathBuf, SystemTime)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<(PathBuf, SystemTime)> = entries
            .filter_map(Result::ok)
            .filter(|entry| is_backup_name(&entry.file_name().to_string_lossy()))
            .filter_map(|entry| Some((entry.path(), entry.metadata().ok()?.modified().ok()?)))
            .collect();
        // The names sort by the time they were taken.
        found.sort_by(|a, b| b.0.cmp(&a.0));
        found
    }

    fn newest(&self) -> Option<(PathBuf, SystemTime)> {
        self.backups().into_iter().next()
    }

    /// Deletes all but the newest `keep`.
    fn rotate(&self) {
        for (path, _) in self.backups().into_iter().skip(self.keep) {
            match fs::remove_file(&path) {
                Ok(()) => tracing::info!(path = %path.display(), "deleted an old scheduled backup"),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot delete an old scheduled backup")
                }
            }
        }
    }

    /// Partial copies left by a process that stopped during a backup.
    fn remove_leftovers(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".bookstore-") && name.contains(".db.partial-") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// `bookstore-20261125T090000Z.db`: sortable, and unlike any other file in the folder.
fn backup_name(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    format!(
        "bookstore-{:04}{:02}{:02}T{:02}{:02}{:02}Z.db",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

fn is_backup_name(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix("bookstore-")
        .and_then(|n| n.strip_suffix("Z.db"))
    else {
        return false;
    };
    stamp.len() == 15
        && stamp
            .char_indices()
            .all(|(i, c)| if i == 8 { c == 'T' } else { c.is_ascii_digit() })
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_backup_names_sort_by_time_and_nothing_else_matches() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let name = backup_name(at);
        assert_eq!(name, "bookstore-20261118T110640Z.db");
        assert!(is_backup_name(&name));
        assert!(backup_name(at) < backup_name(at + Duration::from_secs(1)));
        for other in [
            "bookstore.db",
            "bookstore-2026.db",
            "bookstore-20261118T000000Z.db.lock",
            "x.db",
        ] {
            assert!(!is_backup_name(other), "{other}");
        }
    }
}
