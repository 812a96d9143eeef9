//! The single writer: one task owns the one write connection and commits writes in batches.
//!
//! SQLite takes one writer at a time, and what a write costs is mostly the commit (the pages
//! it appends to the WAL), not the statement. So requests do not each take the connection:
//! they queue their write here, and the writer takes everything queued (up to
//! [`MAX_BATCH`]), runs it in one `BEGIN IMMEDIATE` transaction, commits once, and only then
//! answers each request. Under load, dozens of writes share a commit; alone, a write is
//! committed at once.
//!
//! Outcomes are honest:
//! - a write is acknowledged only after its commit, so an acknowledged write survives a
//!   crash of the process;
//! - a write whose request has already been answered (its [`Deadline`] gave up, or its
//!   client went away) is skipped before its batch begins, so a "safe to retry" answer is
//!   never followed by the write happening anyway;
//! - a refused write (404, 412, 422) changes nothing and does not disturb its batch;
//! - if the batch fails before or at `COMMIT`, nothing of it is written (SQLite commits
//!   atomically, and a failed write of the WAL leaves no commit record), and every write in
//!   it gets a retryable error. Only a failed `fsync` of the commit leaves the outcome
//!   unknown (the commit record may be on disk), and those writes are told exactly that.
//!
//! After any failed batch the connection is dropped and a fresh one opened, so no state of
//! the failed transaction can wedge the next one. Until a batch (or, with no writes waiting,
//! a one-row probe write every second) commits again, [`WriterHealth`] says so, and
//! `/readyz` answers 503.
//!
//! The database keeps its own indexes, text index and counts in step with each change (its
//! triggers, in the same transaction); the writer only tells the book cache what changed.
//!
//! The writer has a thread of its own (running its own small runtime), so that the round
//! trips to its connection's thread are not queued behind the HTTP work of the server's
//! runtime; and it never checkpoints (copies the WAL into the database file, with its
//! flushes to the disk): the [`Checkpointer`] does, on a connection of its own, while the
//! writer goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, Sqlite, SqliteConnection};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::cache::{BookCache, Change};
use crate::deadline::Deadline;
use crate::domain::{Edit, IdempotencyKey, NewBook, Precondition, Timestamp};
use crate::error::{Error, Result};
use crate::store::catalogue::{Created, unix_now};
use crate::store::sql::Sql;
use crate::store::stored::{BookRef, StoredBook};

/// Most writes committed together; bounds how long the first one waits for the last.
const MAX_BATCH: usize = 128;
/// Writes that may wait for the writer before requests wait to queue (backpressure).
const QUEUE: usize = 4096;
/// How often a writer that cannot commit tries again with no writes waiting.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// A write, as data.
#[derive(Debug)]
pub enum Op {
    Create {
        book: NewBook,
        key: Option<IdempotencyKey>,
    },
    Update {
        id: i64,
        precondition: Precondition,
        edit: Edit,
    },
    Delete {
        id: i64,
        precondition: Precondition,
    },
}

/// What a write produced, for its caller.
#[derive(Debug)]
pub enum Written {
    Created(Created),
    /// The book after the change (unchanged, and not written, if the edit changed nothing).
    Updated(BookRef),
    Deleted,
}

struct Job {
    op: Op,
    deadline: Deadline,
    reply: oneshot::Sender<Result<Written>>,
}

/// Whether the writer can commit, for `/readyz`.
#[derive(Default)]
pub struct WriterHealth {
    failing: Mutex<Option<String>>,
}

impl WriterHealth {
    /// `None` when writes commit; otherwise what is wrong.
    pub fn problem(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn fail(&self, why: String) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    fn recover(&self) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if failing.take().is_some() {
            tracing::info!("the writer commits again");
        }
    }
}

pub struct Writer {
    jobs: mpsc::Sender<Job>,
    stop: Arc<Notify>,
    /// Says when the writer's thread has finished.
    finished: Mutex<Option<oneshot::Receiver<()>>>,
    busy: Arc<AtomicBool>,
    pub health: Arc<WriterHealth>,
}

/// What the writer task owns.
struct Task {
    options: SqliteConnectOptions,
    conn: Option<SqliteConnection>,
    cache: Arc<BookCache>,
    /// Told after every commit: the WAL has grown.
    committed: mpsc::Sender<()>,
    busy: Arc<AtomicBool>,
    health: Arc<WriterHealth>,
}

impl Writer {
    /// Starts the writer on `conn` (reopened from `options` whenever a batch fails), telling
    /// `cache` every change it commits, and `committed` that it did.
    pub fn spawn(
        options: SqliteConnectOptions,
        conn: SqliteConnection,
        cache: Arc<BookCache>,
        committed: mpsc::Sender<()>,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let stop = Arc::new(Notify::new());
        let busy = Arc::new(AtomicBool::new(false));
        let health = Arc::new(WriterHealth::default());
        let task = Task {
            options,
            conn: Some(conn),
            cache,
            committed,
            busy: busy.clone(),
            health: health.clone(),
        };
        let (done, finished) = oneshot::channel();
        let stopping = stop.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime on a thread of its own");
                runtime.block_on(task.run(queue, stopping));
                let _ = done.send(());
            })
            .expect("the writer's thread starts");
        Self {
            jobs,
            stop,
            finished: Mutex::new(Some(finished)),
            busy,
            health,
        }
    }

    /// Queues a write and waits until it is committed (or refused, or skipped).
    pub async fn write(&self, op: Op, deadline: &Deadline) -> Result<Written> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            op,
            deadline: deadline.clone(),
            reply,
        };
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Whether a batch is being written right now (the write connection is in use).
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    /// Finishes the writes already queued, refuses new ones, and closes the connection.
    pub async fn stop(&self) {
        self.stop.notify_one();
        let finished = self.finished.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(finished) = finished {
            let _ = finished.await;
        }
    }
}

fn stopped() -> Error {
    Error::Unavailable("the database is closing".to_owned())
}

impl Task {
    async fn run(mut self, mut queue: mpsc::Receiver<Job>, stop: Arc<Notify>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut stopping = false;
        loop {
            let failing = self.health.problem().is_some();
            let received = if stopping {
                queue.recv_many(&mut batch, MAX_BATCH).await
            } else {
                tokio::select! {
                    received = queue.recv_many(&mut batch, MAX_BATCH) => received,
                    () = stop.notified() => {
                        // Refuse new writes, but finish the ones already queued.
                        queue.close();
                        stopping = true;
                        continue;
                    }
                    () = tokio::time::sleep(PROBE_EVERY), if failing => {
                        self.probe().await;
                        continue;
                    }
                }
            };
            if received == 0 {
                break;
            }
            self.busy.store(true, Ordering::Relaxed);
            self.commit_batch(std::mem::take(&mut batch)).await;
            self.busy.store(false, Ordering::Relaxed);
        }
        self.close().await;
    }

    async fn close(&mut self) {
        if let Some(conn) = self.conn.take()
            && let Err(error) = conn.close().await
        {
            tracing::warn!(%error, "closing the write connection failed");
        }
    }

    /// The write connection, opened again if the last batch dropped it.
    async fn connection(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        if self.conn.is_none() {
            self.conn = Some(self.options.connect().await?);
        }
        Ok(self.conn.as_mut().expect("just opened"))
    }

    async fn commit_batch(&mut self, batch: Vec<Job>) {
        // Skip the writes nobody waits for any more: their requests were answered as safe to
        // retry, so they must not happen.
        let jobs: Vec<Job> = batch
            .into_iter()
            .filter(|job| !job.reply.is_closed() && job.deadline.begin_commit())
            .collect();
        if jobs.is_empty() {
            return;
        }
        let (ops, replies): (Vec<Op>, Vec<_>) = jobs.into_iter().map(|job| (job.op, job.reply)).unzip();
        let outcome = match self.connection().await {
            Ok(conn) => run_batch(conn, ops).await,
            Err(error) => Err(Failure::Before(error)),
        };
        match outcome {
            Ok(outcomes) => {
                // Full: a checkpoint is due already.
                let _ = self.committed.try_send(());
                self.health.recover();
                let changes: Vec<Change> = outcomes
                    .iter()
                    .filter_map(|outcome| outcome.as_ref().ok().and_then(|(change, _)| change.clone()))
                    .collect();
                self.cache.apply(&changes);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome.map(|(_, written)| written));
                }
            }
            Err(failure) => {
                let error = self.failed(failure);
                tracing::error!(error = %error, writes = replies.len(), "a write batch failed; nothing of it was written unless said otherwise");
                for reply in replies {
                    let _ = reply.send(Err(error.duplicate()));
                }
            }
        }
    }

    /// After a failed batch: drop the connection (whatever state the failure left it in),
    /// mark the writer unhealthy, and say what the callers may assume.
    fn failed(&mut self, failure: Failure) -> Error {
        self.conn = None;
        let (error, outcome_unknown) = match failure {
            Failure::Before(error) => (error, false),
            Failure::Commit(error) => {
                let unknown = is_fsync_failure(&error);
                (error, unknown)
            }
        };
        self.health
            .fail(format!("the last write could not commit: {error}"));
        if outcome_unknown {
            Error::OutcomeUnknown(error.to_string())
        } else {
            Error::Unavailable(error.to_string())
        }
    }

    /// With no writes waiting, checks whether a write can commit again.
    async fn probe(&mut self) {
        let result = match self.connection().await {
            Ok(conn) => probe(conn).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => self.health.recover(),
            Err(error) => {
                self.conn = None;
                tracing::debug!(%error, "the writer still cannot commit");
                self.health.fail(format!("no write can commit: {error}"));
            }
        }
    }
}

/// Where a batch failed.
enum Failure {
    /// Before `COMMIT`: nothing was written.
    Before(sqlx::Error),
    /// At `COMMIT`.
    Commit(sqlx::Error),
}

/// `SQLITE_IOERR_FSYNC` and `SQLITE_IOERR_DIR_FSYNC`: the commit record was written but may
/// not be durable; after a restart it may or may not be there.
fn is_fsync_failure(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    db.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code == 1034 || code == 1290)
}

/// A write's answer, and what it changed (if anything).
type Outcome = Result<(Option<Change>, Written)>;

/// Runs every write in one transaction. A refused write is an `Ok(Err(_))` outcome; a
/// database failure aborts the whole batch.
async fn run_batch(conn: &mut SqliteConnection, ops: Vec<Op>) -> Result<Vec<Outcome>, Failure> {
    // IMMEDIATE takes the write lock up front, so a reader elsewhere (a backup, a shell)
    // cannot make the transaction fail half-way. The statements are sent as they are,
    // rather than through sqlx's transaction type, so that the writer alone knows what state
    // the connection is in.
    conn.execute("BEGIN IMMEDIATE").await.map_err(Failure::Before)?;
    match batch_statements(conn, ops).await {
        Ok(outcomes) => match conn.execute("COMMIT").await {
            Ok(_) => Ok(outcomes),
            Err(error) => Err(Failure::Commit(error)),
        },
        Err(error) => {
            // The connection is dropped anyway; rolling back first frees the lock at once.
            let _ = conn.execute("ROLLBACK").await;
            Err(Failure::Before(error))
        }
    }
}

async fn batch_statements(conn: &mut SqliteConnection, ops: Vec<Op>) -> Result<Vec<Outcome>, sqlx::Error> {
    let now = Timestamp::now();
    let mut outcomes = Vec::with_capacity(ops.len());
    let mut creates = Vec::new();
    for op in ops {
        let outcome = match op {
            Op::Create { book, key: None } => {
                creates.push(book);
                continue;
            }
            // Creates set aside run before the change that follows them, keeping the order.
            // (Two writes with the same key are never in one batch: the store lets only one
            // request per key in at a time.)
            Op::Create { book, key: Some(key) } => {
                insert_creates(conn, &mut creates, &now, &mut outcomes).await?;
                Sqlite::create_with_key(conn, &book, &key, &now)
                    .await?
                    .map(|created| (Some(Change::Created), Written::Created(created)))
            }
            Op::Update {
                id,
                precondition,
                edit,
            } => {
                insert_creates(conn, &mut creates, &now, &mut outcomes).await?;
                Sqlite::change_book(conn, id, &precondition, edit, &now)
                    .await?
                    .map(|(book, written)| {
                        let stored = StoredBook::of(&book);
                        (
                            written.then(|| Change::Updated(stored.clone())),
                            Written::Updated(stored),
                        )
                    })
            }
            Op::Delete { id, precondition } => {
                insert_creates(conn, &mut creates, &now, &mut outcomes).await?;
                Sqlite::remove_book(conn, id, &precondition)
                    .await?
                    .map(|()| (Some(Change::Deleted(id)), Written::Deleted))
            }
        };
        outcomes.push(outcome);
    }
    insert_creates(conn, &mut creates, &now, &mut outcomes).await?;
    Ok(outcomes)
}

/// Inserts the creates set aside so far, in chunks of power-of-two sizes (so only a handful
/// of statements are ever prepared).
async fn insert_creates(
    conn: &mut SqliteConnection,
    creates: &mut Vec<NewBook>,
    now: &Timestamp,
    outcomes: &mut Vec<Outcome>,
) -> Result<(), sqlx::Error> {
    let mut rest = creates.as_slice();
    while !rest.is_empty() {
        let size = 1 << rest.len().ilog2();
        let (chunk, tail) = rest.split_at(size);
        let created = Sqlite::insert_books(conn, chunk, now).await?;
        if created.len() != chunk.len() {
            return Err(sqlx::Error::Protocol(format!(
                "inserted {} books but got {} back",
                chunk.len(),
                created.len()
            )));
        }
        for book in created {
            let stored = StoredBook::of(&book);
            outcomes.push(Ok((
                Some(Change::Created),
                Written::Created(Created::new(stored)),
            )));
        }
        rest = tail;
    }
    creates.clear();
    Ok(())
}

/// A one-row write that proves a commit can succeed (the health check of a writer that
/// failed).
async fn probe(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    conn.execute("BEGIN IMMEDIATE").await?;
    let written = sqlx::query("INSERT OR REPLACE INTO writer_probe (id, at) VALUES (1, $1)")
        .bind(unix_now())
        .execute(&mut *conn)
        .await;
    match written {
        Ok(_) => conn.execute("COMMIT").await.map(drop),
        Err(error) => {
            let _ = conn.execute("ROLLBACK").await;
            Err(error)
        }
    }
}

/// Copies the WAL into the database file, off the write path: when the writer has committed,
/// at most every [`CHECKPOINT_EVERY`], on a connection of its own. (SQLite would otherwise
/// do it inside whichever commit takes the WAL past a thousand pages, and that commit, and
/// every write queued behind it, would wait for its copying and flushing.) A checkpoint of
/// this kind (`PASSIVE`) never blocks the writer or a reader; it copies what no reader still
/// needs, and the writer starts the WAL over once all of it has been copied. It stops when
/// the writer does, and its connection, closing last, folds in whatever is left.
pub struct Checkpointer(Mutex<Option<JoinHandle<()>>>);

/// How often, at most, the WAL is checkpointed while writes go on.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

impl Checkpointer {
    /// Checkpoints after each commit the writer reports on `committed`.
    pub fn spawn(options: SqliteConnectOptions, mut committed: mpsc::Receiver<()>) -> Self {
        let task = tokio::spawn(async move {
            let mut conn: Option<SqliteConnection> = None;
            while committed.recv().await.is_some() {
                let checkpointed = match conn.as_mut() {
                    Some(conn) => checkpoint(conn).await,
                    None => match options.connect().await {
                        Ok(opened) => checkpoint(conn.insert(opened)).await,
                        Err(error) => Err(error),
                    },
                };
                if let Err(error) = checkpointed {
                    // The next commit tries again (a full disk fails the writes too, and says so).
                    tracing::debug!(%error, "checkpoint failed");
                    conn = None;
                }
                tokio::time::sleep(CHECKPOINT_EVERY).await;
            }
            if let Some(conn) = conn {
                let _ = conn.close().await;
            }
        });
        Self(Mutex::new(Some(task)))
    }

    /// Waits for the checkpointer to finish (after the writer has stopped).
    pub async fn finished(&self) {
        let task = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn checkpoint(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await.map(drop)
}
