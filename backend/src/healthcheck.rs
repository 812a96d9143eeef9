//! `bookstore healthcheck`: asks the server's `/readyz` and exits 0 only on a 200.
//!
//! Readiness, not liveness: the contract makes `/readyz` what health checks use, so a
//! container whose database cannot commit (a full disk, say) shows as unhealthy rather than
//! as a healthy process that fails every write.
//!
//! The runtime image has no shell and no curl, so the container health check runs the
//! binary itself. A plain HTTP/1.1 request over TCP is all it takes.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the server at `addr` answers `GET /readyz` with 200 within `timeout`.
pub async fn check(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let target = reachable(addr);
    let exchange = async {
        let mut stream = TcpStream::connect(target)
            .await
            .map_err(|e| format!("cannot connect to {target}: {e}"))?;
        let request = format!("GET /readyz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = [0u8; 32];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut head[read..]).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            read += n;
        }
        let status_line = String::from_utf8_lossy(&head[..read]).into_owned();
        if status_line.starts_with("HTTP/1.1 200") || status_line.starts_with("HTTP/1.0 200") {
            Ok(())
        } else {
            Err(format!(
                "unhealthy: {}",
                status_line.lines().next().unwrap_or("no answer")
            ))
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer from {target} within {timeout:?}"))?
}

/// A server listening on 0.0.0.0 or [::] is reached on the loopback address.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, v4.port())),
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, v6.port())),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_address_is_checked_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:8000".parse().unwrap()).to_string(),
            "127.0.0.1:8000"
        );
        assert_eq!(reachable("[::]:8000".parse().unwrap()).to_string(), "[::1]:8000");
        assert_eq!(
            reachable("10.0.0.5:80".parse().unwrap()).to_string(),
            "10.0.0.5:80"
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_unhealthy() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert!(check(addr, Duration::from_secs(2)).await.is_err());
    }
}
