//! The HTTP/1.1 server: accepting connections, their time limits, and graceful shutdown.
//!
//! `axum::serve` keeps a connection as long as the client likes: one that never sends a
//! byte, one that sends half a request head, and an idle keep-alive connection are all held
//! forever, and a few hundred of them hold the process. So each connection here is watched
//! through three phases:
//!
//! - **head**: from the accept, or from the first byte after an idle spell, until hyper
//!   hands a complete request head to the application: limited by `header_timeout`, then the
//!   connection is closed (a client too slow to send a few hundred bytes is not a client);
//! - **busy**: a request is being answered: limited by the request's own time limit, not here;
//! - **idle**: the last answer is done and nothing new has arrived: limited by
//!   `idle_timeout`, then the connection is closed (a response still being written to a
//!   client that does not read it is cut off then too).
//!
//! And at most `max_connections` are open at once: at the cap the server stops accepting
//! (new clients wait in the kernel's backlog) until one closes.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long each connection may take, and how many may be open.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: u32,
}

/// Serves `router` on `listener` until `shutdown` completes; then closes the listener, asks
/// every connection to finish its request in progress and close, and waits for them for at
/// most `drain`. Returns whether every connection finished in time.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> bool {
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (stopping, stop) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: pause rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            connection(stream, peer, router, limits, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection holds a permit until it closes: all of them back means all closed.
    let all = limits.max_connections;
    tokio::time::timeout(drain, permits.acquire_many(all))
        .await
        .is_ok()
}

/// Where a connection is, shared by its reads, its requests and its watchdog.
#[derive(Default)]
struct Phase {
    /// Requests being answered.
    busy: AtomicU32,
    /// When the current head or idle phase began, in milliseconds since `epoch`.
    since: AtomicU32,
    /// Whether the connection is between requests with nothing received (idle), rather than
    /// receiving a head.
    idle: std::sync::atomic::AtomicBool,
}

struct Watch {
    phase: Phase,
    epoch: Instant,
}

impl Watch {
    fn now(&self) -> u32 {
        u32::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u32::MAX)
    }

    fn bytes_arrived(&self) {
        if self.phase.idle.swap(false, Ordering::AcqRel) {
            self.phase.since.store(self.now(), Ordering::Release);
        }
    }

    fn request_started(&self) {
        self.phase.busy.fetch_add(1, Ordering::AcqRel);
    }

    fn request_finished(&self) {
        if self.phase.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.phase.since.store(self.now(), Ordering::Release);
            self.phase.idle.store(true, Ordering::Release);
        }
    }

    /// When the current phase runs out (`None` while a request is being answered), and
    /// whether it is the idle phase.
    fn limit(&self, limits: &ConnectionLimits) -> Option<(Instant, bool)> {
        if self.phase.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let idle = self.phase.idle.load(Ordering::Acquire);
        let since = self.epoch + Duration::from_millis(u64::from(self.phase.since.load(Ordering::Acquire)));
        let allowed = if idle {
            limits.idle_timeout
        } else {
            limits.header_timeout
        };
        Some((since + allowed, idle))
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let watch = Arc::new(Watch {
        phase: Phase::default(),
        epoch: Instant::now(),
    });
    let io = TokioIo::new(Watched {
        stream,
        watch: watch.clone(),
    });
    let requests = watch.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let request = request.map(axum::body::Body::new);
        let router = router.clone();
        let busy = Busy::start(requests.clone());
        async move {
            let response = router.oneshot(request).await;
            drop(busy);
            response
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let limit = watch.limit(&limits);
        let sleep = async {
            match limit {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                return;
            }
            () = sleep => {
                // The phase may have moved on since the limit was read: look again.
                if let Some((at, idle)) = watch.limit(&limits)
                    && Instant::now() >= at
                {
                    let what = if idle { "idle" } else { "sending its request head" };
                    tracing::debug!(%peer, "closing a connection {what} for too long");
                    return;
                }
            }
            changed = stop.changed(), if !closing => {
                let _ = changed;
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Marks a request as being answered while it lives (also when its future is dropped).
struct Busy(Arc<Watch>);

impl Busy {
    fn start(watch: Arc<Watch>) -> Self {
        watch.request_started();
        Self(watch)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The socket, noting when bytes arrive.
struct Watched {
    stream: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
