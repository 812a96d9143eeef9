//! The benchmark's ceiling: a minimal hyper server that answers every request with a fixed,
//! book-sized JSON body. Nothing a real service does (routing, a database, logging,
//! metrics) happens here, so its requests per second are the most HTTP this machine can
//! serve; `scripts/bench.sh` reports the backend as a share of it.
//!
//! Usage: `ceiling ADDR` (default 127.0.0.1:8001).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BOOK: &[u8] = br#"{"id":4242,"title":"Book number 4242","author":"Author 242","year":1942,"genre":"Fiction","created_at":"2026-11-25T10:00:00Z","updated_at":"2026-11-25T10:00:00Z"}"#;

async fn answer(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BOOK)));
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8001".to_owned())
        .parse()
        .map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("ceiling listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
