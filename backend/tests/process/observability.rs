//! What a process tells its operators: metrics of its own, JSON request logs, trace context,
//! CPU time, and spans exported to an OTLP collector.

use super::*;

#[tokio::test]
async fn the_metrics_of_a_process_count_its_books_and_requests() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &[]);
    server.wait_ready().await;
    for _ in 0..3 {
        reqwest::get(server.url("/books/1")).await.unwrap();
    }
    reqwest::get(server.url("/no/such/thing")).await.unwrap();
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} in\n{text}"))
    };
    assert_eq!(value("bookstore_books"), 12.0);
    assert_eq!(
        value(r#"http_requests_total{method="GET",route="/books/{id}",status="200"}"#),
        3.0
    );
    assert_eq!(
        value(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#),
        1.0
    );
    assert_eq!(
        value(r#"http_request_duration_seconds_count{method="GET",route="/books/{id}",status="200"}"#),
        3.0
    );
    assert_eq!(
        value(&format!(
            "bookstore_build_info{{version=\"{}\",database=\"sqlite\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert!(value("process_open_fds") > 0.0);
    assert!(value("process_start_time_seconds") > 1.7e9);
    assert_eq!(
        value("http_requests_in_flight"),
        1.0,
        "the scrape itself is in flight"
    );
}

#[tokio::test]
async fn request_logs_are_json_lines_with_the_route_and_request_id() {
    let (_dir, db) = temp_db();
    let server = Server::start_logging(
        &db,
        &["--demo-data", "false"],
        "info,bookstore=debug,tower_http=debug",
    );
    server.wait_ready().await;
    let client = support::client();
    client
        .get(server.url("/books/5"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    let entry = log_line(&server, |e| {
        e["span"]["request_id"] == "trace-me-42" && e["message"] == "finished processing request"
    });
    assert_eq!(entry["span"]["route"], "/books/{id}");
    assert_eq!(entry["status"], 404);
}

/// The next JSON log line that `wanted` accepts, within 5 s.
fn log_line(server: &Server, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let line = server
            .logs
            .recv_timeout(Duration::from_secs(5))
            .expect("a log line");
        let entry: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if wanted(&entry) {
            return entry;
        }
        assert!(Instant::now() < deadline, "no such log line");
    }
}

#[tokio::test]
async fn a_request_joins_the_callers_trace_returns_it_and_logs_its_trace_id() {
    let (_dir, db) = temp_db();
    // The default level: the request's span is not recorded, its trace id still is.
    let server = Server::start_logging(&db, &["--demo-data", "false"], "info");
    server.wait_ready().await;
    let client = support::client();
    let refused = |traceparent: Option<&str>| {
        let mut request = client
            .post(server.url("/books"))
            .bearer_auth("bks_not-a-token")
            .json(&serde_json::json!({"title": "T", "author": "A", "year": 2000}));
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        request.send()
    };

    let answer = refused(Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let parts = traceparent_parts(&answer);
    assert_eq!(parts.len(), 4, "{parts:?}");
    assert_eq!(
        (parts[0].as_str(), parts[1].as_str(), parts[3].as_str()),
        ("00", "0af7651916cd43dd8448eb211c80319c", "01")
    );
    assert!(
        parts[2].len() == 16 && parts[2] != "b7ad6b7169203331",
        "this server's own span: {parts:?}"
    );
    let entry = log_line(&server, |e| e["level"] == "WARN");
    assert_eq!(entry["trace_id"], "0af7651916cd43dd8448eb211c80319c", "{entry}");

    // Without one (or with one that does not parse), the request starts its own trace.
    for traceparent in [None, Some("00-NOT-A-TRACE-01")] {
        let answer = refused(traceparent).await.unwrap();
        let trace_id = traceparent_parts(&answer).swap_remove(1);
        assert_eq!(trace_id.len(), 32);
        assert_ne!(trace_id, "0af7651916cd43dd8448eb211c80319c");
        let entry = log_line(&server, |e| e["level"] == "WARN");
        assert_eq!(entry["trace_id"], trace_id.as_str(), "{entry}");
    }
}

#[tokio::test]
async fn a_failed_request_is_logged_once() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "false", "--request-timeout", "300ms"]);
    server.wait_ready().await;
    // A stalled upload runs past the time limit: a 503.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /books HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nX-Request-Id: log-me-once\r\n\
                 Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{{",
                support::OPERATOR
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    // Another request, so that every line about the first has been written.
    reqwest::get(server.url("/healthz")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines: Vec<String> = server
        .drain_logs()
        .into_iter()
        .filter(|line| line.contains("log-me-once"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("\"status\":503"), "{}", lines[0]);
}

/// The process's CPU time as the kernel reports it in /proc/PID/stat (utime + stime).
fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf only reads a constant.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[tokio::test]
async fn cpu_seconds_are_a_counter_with_sub_second_resolution_that_matches_the_kernel() {
    let (_dir, db) = temp_db();
    let server = Server::start(&db, &["--demo-data", "true"]);
    server.wait_ready().await;
    let client = reqwest::Client::new();
    // A burst of work, well under a second of CPU in all.
    for i in 0..300 {
        client
            .get(server.url(&format!("/books?q=a{i}")))
            .send()
            .await
            .unwrap();
    }
    let text = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let kernel = proc_cpu_seconds(server.child.id());
    assert!(
        text.contains("# TYPE process_cpu_seconds_total counter\n"),
        "typed as a counter"
    );
    let exported: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("process_cpu_seconds_total "))
        .expect("the series")
        .parse()
        .unwrap();
    let series = text
        .lines()
        .filter(|l| l.starts_with("process_cpu_seconds_total"))
        .count();
    assert_eq!(series, 1, "one series");
    assert!(
        exported > 0.0 && exported.fract() != 0.0,
        "not whole seconds: {exported}"
    );
    // The kernel counts in ticks (10 ms); the exporter read it a moment earlier.
    assert!(
        (exported - kernel).abs() < 0.1,
        "exported {exported} s, the kernel says {kernel} s"
    );
}

/// A stand-in for an OpenTelemetry collector's OTLP/HTTP receiver (no collector binary exists
/// here): it answers every POST with `status` and hands on each request it got.
struct Collector {
    url: String,
    requests: std::sync::mpsc::Receiver<CollectedRequest>,
}

struct CollectedRequest {
    head: String,
    body: Value,
}

impl Collector {
    fn start(status: u16) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (send, requests) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let length = head
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|n| n.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if send.send(CollectedRequest { head, body }).is_err() {
                    break;
                }
            }
        });
        Self { url, requests }
    }

    /// Every span received within `wait`, with the request that carried it.
    fn spans(&self, wait: Duration) -> Vec<(String, Value, Value)> {
        let deadline = Instant::now() + wait;
        let mut spans = Vec::new();
        while let Ok(request) = self
            .requests
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            for resource in request.body["resourceSpans"].as_array().unwrap() {
                for scope in resource["scopeSpans"].as_array().unwrap() {
                    for span in scope["spans"].as_array().unwrap() {
                        spans.push((request.head.clone(), resource["resource"].clone(), span.clone()));
                    }
                }
            }
        }
        spans
    }
}

fn attribute<'a>(span: &'a Value, key: &str) -> &'a Value {
    let found = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key);
    &found.unwrap_or_else(|| panic!("no attribute {key} in {span}"))["value"]
}

/// The fields of an answer's `traceparent`: version, trace id, span id, flags.
fn traceparent_parts(answer: &reqwest::Response) -> Vec<String> {
    answer.headers()["traceparent"]
        .to_str()
        .unwrap()
        .split('-')
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn with_an_otlp_endpoint_every_sampled_request_becomes_a_span_at_the_collector() {
    let collector = Collector::start(200);
    let (_dir, db) = temp_db();
    let server = Server::start_with_env(
        &db,
        &["--demo-data", "false"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "bookstore-under-test"),
        ],
    );
    server.wait_ready().await;
    let client = support::client();
    let joined = client
        .get(server.url("/books/5"))
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 404);
    let created = client
        .post(server.url("/books"))
        .json(&json!({"title": "Traced", "author": "A", "year": 2001}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created_trace = traceparent_parts(&created).swap_remove(1);
    // The caller decided not to sample this trace: it is not exported.
    let unsampled = client
        .get(server.url("/books"))
        .header(
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-00",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unsampled.status(), 200);

    let mut spans = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while spans
        .iter()
        .filter(|(_, _, s): &&(String, Value, Value)| s["name"] != "GET /readyz")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "spans never reached the collector: {spans:?}"
        );
        spans.extend(collector.spans(Duration::from_millis(300)));
    }
    let (head, resource, span) = spans
        .iter()
        .find(|(_, _, s)| s["name"] == "GET /books/{id}")
        .unwrap();
    assert!(head.starts_with("POST /v1/traces HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let service = resource["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "service.name")
        .unwrap();
    assert_eq!(service["value"]["stringValue"], "bookstore-under-test");
    assert_eq!(span["traceId"], "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(span["parentSpanId"], "b7ad6b7169203331");
    assert_eq!(
        span["spanId"],
        traceparent_parts(&joined)[2].as_str(),
        "the span the answer named"
    );
    assert_eq!(span["kind"], 2, "a server span");
    assert_eq!(attribute(span, "http.request.method")["stringValue"], "GET");
    assert_eq!(attribute(span, "http.route")["stringValue"], "/books/{id}");
    assert_eq!(attribute(span, "url.path")["stringValue"], "/books/5");
    assert_eq!(attribute(span, "http.response.status_code")["intValue"], "404");
    assert_eq!(
        span["status"]["code"], 0,
        "a 404 is the client's, not an error of the server"
    );
    let start: u128 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u128 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    assert!(
        start <= end && end <= now && now - start < 60_000_000_000,
        "{start} {end} {now}"
    );

    let (_, _, span) = spans.iter().find(|(_, _, s)| s["name"] == "POST /books").unwrap();
    assert_eq!(
        span["traceId"],
        created_trace.as_str(),
        "a trace the server started"
    );
    assert!(span.get("parentSpanId").is_none(), "{span}");
    assert_eq!(attribute(span, "http.response.status_code")["intValue"], "201");

    spans.extend(collector.spans(Duration::from_millis(500)));
    assert!(
        spans
            .iter()
            .all(|(_, _, s)| s["traceId"] != "11111111111111111111111111111111"),
        "an unsampled trace was exported"
    );
}

#[tokio::test]
async fn spans_still_queued_are_sent_when_the_server_stops() {
    let collector = Collector::start(200);
    let (_dir, db) = temp_db();
    // A batch would only leave after a minute: only the shutdown can send it.
    let mut server = Server::start_with_env(
        &db,
        &["--demo-data", "false"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ],
    );
    server.wait_ready().await;
    let answer = reqwest::get(server.url("/books?q=last")).await.unwrap();
    let span_id = traceparent_parts(&answer).swap_remove(2);
    assert!(
        collector.spans(Duration::from_millis(300)).is_empty(),
        "nothing is sent before the batch is due"
    );
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(15)).success());
    let spans = collector.spans(Duration::from_secs(2));
    assert!(
        spans.iter().any(|(_, _, s)| s["spanId"] == span_id.as_str()),
        "{spans:?}"
    );
}

#[tokio::test]
async fn a_collector_that_is_down_failing_or_silent_costs_a_warning_and_nothing_else() {
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let failing = Collector::start(500);
    // Accepts connections (the kernel does, into the backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    for (endpoint, reason) in [
        (gone.as_str(), "cannot connect"),
        (failing.url.as_str(), "answered 500"),
        (silent_url.as_str(), "did not answer in time"),
    ] {
        let (_dir, db) = temp_db();
        let server = Server::start_with_env(
            &db,
            &["--demo-data", "false"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
                ("OTEL_BSP_SCHEDULE_DELAY", "50"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "300"),
            ],
        );
        server.wait_ready().await;
        let client = support::client();
        for i in 0..5 {
            let answer = client
                .post(server.url("/books"))
                .json(&json!({"title": format!("Book {i}"), "author": "A", "year": 2001}))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 201, "serving goes on");
        }
        let entry = log_line(&server, |e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("cannot export spans"))
        });
        assert_eq!(entry["level"], "WARN");
        assert!(entry["message"].as_str().unwrap().contains(reason), "{entry}");
        let (_, books) = get_json(&server.url("/books")).await;
        assert_eq!(books.as_array().unwrap().len(), 5, "{books}");
    }
}

#[test]
fn an_unusable_otlp_endpoint_stops_the_start_with_the_reason() {
    let (_dir, db) = temp_db();
    let output = Command::new(BINARY)
        .args(["serve", "--addr", "127.0.0.1:0", "--static-dir", ""])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .env("BOOKSTORE_ADMIN_TOKEN", support::OPERATOR)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4318")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(
        logs.contains("OTEL_EXPORTER_OTLP_ENDPOINT=https://collector.example:4318"),
        "{logs}"
    );
    assert!(logs.contains("https is not supported"), "{logs}");
}
