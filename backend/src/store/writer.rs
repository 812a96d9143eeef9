//! The single writer: one task owns the one write connection and commits writes in batches.
//!
//! SQLite takes one writer at a time, and what a write costs is mostly the commit (the pages
//! it appends to the WAL), not the statement. So requests do not each take the connection:
//! they queue their write here, and the writer takes everything queued (up to
//! [`MAX_BATCH`]), runs it in one transaction, commits once, and only then answers each
//! request. Under load, dozens of writes share a commit; alone, a write is committed at once.
//!
//! A write is acknowledged only after its commit, so an acknowledged write survives a crash
//! of the process. A write that is refused (404, 412, 422) changes nothing and does not
//! disturb the others in its batch; if the transaction itself fails, every write in it fails
//! with a retryable error and none is applied.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::{Connection, SqliteConnection};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Shared;
use super::books::{self, now};
use super::cache::Change;
use super::stored::{BookRef, StoredBook};
use crate::domain::{Book, FieldError, NewBook};
use crate::error::{Error, Result};

/// Most writes committed together; bounds how long the first one waits for the last.
const MAX_BATCH: usize = 128;
/// Writes that may wait for the writer before requests wait to queue (backpressure).
const QUEUE: usize = 4096;

pub type ChangeFn = Box<dyn FnOnce(&Book) -> Result<NewBook, Vec<FieldError>> + Send>;

pub enum Op {
    Create(NewBook),
    Update {
        id: i64,
        expected: Option<Vec<i64>>,
        change: ChangeFn,
    },
    Delete {
        id: i64,
        expected: Option<Vec<i64>>,
    },
}

/// What a write produced: the book as stored, or nothing for a delete.
pub type Written = Option<BookRef>;

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Written>>,
}

pub struct Writer {
    jobs: mpsc::Sender<Job>,
    stop: Arc<Notify>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    busy: Arc<AtomicBool>,
}

impl Writer {
    pub fn spawn(conn: SqliteConnection, shared: Arc<Shared>) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let stop = Arc::new(Notify::new());
        let busy = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(conn, queue, shared, stop.clone(), busy.clone()));
        Self {
            jobs,
            stop,
            task: std::sync::Mutex::new(Some(task)),
            busy,
        }
    }

    /// Queues a write and waits until it is committed (or refused).
    pub async fn write(&self, op: Op) -> Result<Written> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { op, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Whether a batch is being written right now (the write connection is in use).
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    /// Finishes the writes already queued, refuses new ones, and closes the connection.
    pub async fn stop(&self) {
        self.stop.notify_one();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

fn stopped() -> Error {
    Error::Unavailable("the database is closing".to_owned())
}

async fn run(
    mut conn: SqliteConnection,
    mut queue: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    stop: Arc<Notify>,
    busy: Arc<AtomicBool>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
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
            }
        };
        if received == 0 {
            break;
        }
        busy.store(true, Ordering::Relaxed);
        commit_batch(&mut conn, std::mem::take(&mut batch), &shared).await;
        busy.store(false, Ordering::Relaxed);
    }
    if let Err(error) = conn.close().await {
        tracing::warn!(%error, "closing the write connection failed");
    }
}

async fn commit_batch(conn: &mut SqliteConnection, batch: Vec<Job>, shared: &Shared) {
    let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|job| (job.op, job.reply)).unzip();
    match run_batch(conn, ops).await {
        Ok(outcomes) => {
            let changes: Vec<Change> = outcomes
                .iter()
                .filter_map(|outcome| outcome.as_ref().ok().map(|(change, _)| change.clone()))
                .collect();
            shared.apply(&changes);
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome.map(|(_, written)| written));
            }
        }
        Err(error) => {
            let error = Error::from(error);
            tracing::error!(%error, writes = replies.len(), "a write batch failed and was rolled back");
            for reply in replies {
                let _ = reply.send(Err(error.duplicate()));
            }
        }
    }
}

/// A write's answer, and what it changed.
type Outcome = Result<(Change, Written)>;

/// Runs every write in one transaction. A refused write is an `Ok(Err(_))` outcome; a
/// database failure aborts the whole batch.
async fn run_batch(conn: &mut SqliteConnection, ops: Vec<Op>) -> Result<Vec<Outcome>, sqlx::Error> {
    let now = now();
    // IMMEDIATE takes the write lock up front, so a reader elsewhere (a backup, a shell)
    // cannot make the transaction fail half-way.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut outcomes = Vec::with_capacity(ops.len());
    let mut creates = Vec::new();
    for op in ops {
        let outcome = match op {
            Op::Create(book) => {
                creates.push(book);
                continue;
            }
            // Creates set aside run before the change that follows them, keeping the order.
            Op::Update { id, expected, change } => {
                insert_creates(&mut tx, &mut creates, &now, &mut outcomes).await?;
                update(&mut tx, id, expected.as_deref(), change, &now).await?
            }
            Op::Delete { id, expected } => {
                insert_creates(&mut tx, &mut creates, &now, &mut outcomes).await?;
                delete(&mut tx, id, expected.as_deref()).await?
            }
        };
        outcomes.push(outcome);
    }
    insert_creates(&mut tx, &mut creates, &now, &mut outcomes).await?;
    tx.commit().await?;
    Ok(outcomes)
}

async fn update(
    conn: &mut SqliteConnection,
    id: i64,
    expected: Option<&[i64]>,
    change: ChangeFn,
    now: &str,
) -> Result<Outcome, sqlx::Error> {
    let current = match books::current(conn, id, expected).await? {
        Ok(current) => current,
        Err(refused) => return Ok(Err(refused)),
    };
    let next = match change(&current) {
        Ok(next) => next,
        Err(errors) => return Ok(Err(Error::invalid_fields(errors))),
    };
    let updated = books::update(conn, id, &next, now).await?;
    let stored = StoredBook::of(&updated);
    Ok(Ok((
        Change::Updated(Arc::new(updated), stored.clone()),
        Some(stored),
    )))
}

async fn delete(
    conn: &mut SqliteConnection,
    id: i64,
    expected: Option<&[i64]>,
) -> Result<Outcome, sqlx::Error> {
    if let Err(refused) = books::current(conn, id, expected).await? {
        return Ok(Err(refused));
    }
    books::delete(conn, id).await?;
    Ok(Ok((Change::Deleted(id), None)))
}

/// Inserts the creates set aside so far, in chunks of power-of-two sizes (so only a handful
/// of statements are ever prepared).
async fn insert_creates(
    conn: &mut SqliteConnection,
    creates: &mut Vec<NewBook>,
    now: &str,
    outcomes: &mut Vec<Outcome>,
) -> Result<(), sqlx::Error> {
    let mut rest = creates.as_slice();
    while !rest.is_empty() {
        let size = 1 << rest.len().ilog2();
        let (chunk, tail) = rest.split_at(size);
        let created = books::insert_many(conn, chunk, now).await?;
        if created.len() != chunk.len() {
            return Err(sqlx::Error::Protocol(format!(
                "inserted {} books but got {} back",
                chunk.len(),
                created.len()
            )));
        }
        for book in created {
            let stored = StoredBook::of(&book);
            outcomes.push(Ok((Change::Created(Arc::new(book)), Some(stored))));
        }
        rest = tail;
    }
    creates.clear();
    Ok(())
}
