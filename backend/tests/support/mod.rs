//! The built binary as a process, for the tests that need one of their own (signals,
//! restarts, resource limits): `Server` starts `bookstore serve` on a port it chooses itself,
//! with JSON logs, and reads where it listens from its log.
#![allow(dead_code)] // each test crate uses part of it

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_bookstore");

/// The binary under test: this build's, or `BOOKSTORE_BIN` (to run these tests against
/// another build, say an older release, to see which behaviours it lacks).
pub fn binary() -> String {
    std::env::var("BOOKSTORE_BIN").unwrap_or_else(|_| BINARY.to_owned())
}

/// The operator token every `Server` starts with (as `BOOKSTORE_ADMIN_TOKEN`), unless the
/// test starts it with [`Server::start_without_operator`].
pub const OPERATOR: &str = "process-test-operator-token";

/// An HTTP client that sends the operator token with every request.
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {OPERATOR}").parse().expect("a header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

/// A running `bookstore serve` with JSON logs, on a port it chose itself.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub logs: mpsc::Receiver<String>,
    /// The lines logged before "listening", not yet drained.
    early: std::sync::Mutex<Vec<String>>,
}

impl Server {
    pub fn start(db: &Path, extra: &[&str]) -> Self {
        Self::start_logging(db, extra, "info")
    }

    pub fn start_logging(db: &Path, extra: &[&str], filter: &str) -> Self {
        let mut command = Command::new(binary());
        command.env("BOOKSTORE_ADMIN_TOKEN", OPERATOR);
        Self::spawn(command, db, extra, filter)
    }

    /// Starts the server with these environment variables set as well.
    pub fn start_with_env(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(binary());
        command
            .env("BOOKSTORE_ADMIN_TOKEN", OPERATOR)
            .envs(env.iter().copied());
        Self::spawn(command, db, extra, "info")
    }

    /// Starts the server with no operator token: API tokens are the only credentials.
    pub fn start_without_operator(db: &Path, extra: &[&str]) -> Self {
        let mut command = Command::new(binary());
        command
            .env_remove("BOOKSTORE_ADMIN_TOKEN")
            .env_remove("BOOKSTORE_ADMIN_TOKEN_FILE");
        Self::spawn(command, db, extra, "info")
    }

    fn spawn(mut command: Command, db: &Path, extra: &[&str], filter: &str) -> Self {
        let mut child = command
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--static-dir",
                "",
            ])
            .arg("--database-url")
            .arg(format!("sqlite://{}", db.display()))
            .args(extra)
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (send, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut early = Vec::new();
        let addr = loop {
            let line = logs
                .recv_timeout(Duration::from_secs(20))
                .expect("the server logs where it listens");
            let entry: Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON log line: {line}"));
            if entry["message"] == "listening" {
                break entry["addr"].as_str().unwrap().parse().unwrap();
            }
            early.push(line);
        };
        Self {
            child,
            addr,
            logs,
            early: std::sync::Mutex::new(early),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Polls `/readyz` until it answers 200.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = client.get(self.url("/readyz")).send().await;
            if answer.is_ok_and(|response| response.status() == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "the server never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit in {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A `/proc/<pid>/status` figure in kB (`VmRSS`, `VmHWM`...).
    pub fn status_kb(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc is readable");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Sets the process's soft limit on file size (`RLIMIT_FSIZE`), keeping the hard limit,
    /// as `prlimit --fsize=N: --pid PID` does: a write past it fails with EFBIG (the binary
    /// handles SIGXFSZ rather than dying of it). `None` lifts it.
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit reads the process's limits into `old`, a valid rlimit.
        let read = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, std::ptr::null(), &mut old) };
        assert_eq!(read, 0, "prlimit cannot read the limit");
        let new = libc::rlimit {
            rlim_cur: bytes.unwrap_or(old.rlim_max),
            rlim_max: old.rlim_max,
        };
        // SAFETY: prlimit reads `new`, a valid rlimit; the old value is not asked for.
        let set = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &new, std::ptr::null_mut()) };
        assert_eq!(set, 0, "prlimit cannot set the limit");
    }

    /// Every log line so far.
    pub fn drain_logs(&self) -> Vec<String> {
        let mut lines = std::mem::take(&mut *self.early.lock().unwrap());
        lines.extend(self.logs.try_iter());
        lines
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
