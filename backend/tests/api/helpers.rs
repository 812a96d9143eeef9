//! Starting the application for a test, and small helpers that keep tests readable.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;

use bookstore::config::{ServeArgs, TEST_OPERATOR_TOKEN};
use bookstore::startup::Application;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub struct TestApp {
    pub addr: SocketAddr,
    /// Sends the operator token with every request (`ServeArgs::for_tests` sets it).
    pub client: Client,
    /// Sends no credential.
    pub anonymous: Client,
    pub store: bookstore::store::Store,
    pub engine: Engine,
    /// The test's own database.
    pub database_url: String,
    _stop: oneshot::Sender<()>,
    _dir: TempDir,
}

/// The database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The variable naming a PostgreSQL server the tests may create databases on (an admin URL,
/// such as `postgres://postgres@127.0.0.1:5432/postgres`). `scripts/test.sh postgres` starts
/// a throwaway server and sets it.
pub const POSTGRES_VARIABLE: &str = "BOOKSTORE_TEST_POSTGRES";

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// A brand-new, empty database on the test PostgreSQL server; returns its URL.
async fn fresh_postgres_database() -> String {
    use sqlx::{Connection, Executor};
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let admin = std::env::var(POSTGRES_VARIABLE).unwrap_or_else(|_| {
        panic!(
            "the PostgreSQL runs need a server: set {POSTGRES_VARIABLE} to an admin URL \
             (scripts/test.sh postgres starts a throwaway one and does)"
        )
    });
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .subsec_nanos();
    let name = format!("api_{}_{n}_{nanos}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("the test PostgreSQL answers");
    conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .expect("a test database");
    let (base, _) = admin.rsplit_once('/').expect("an admin URL names a database");
    format!("{base}/{name}")
}

impl TestApp {
    /// The application on 127.0.0.1 with a brand-new database and no sample data.
    pub async fn spawn(engine: Engine) -> Self {
        Self::spawn_with(engine, |_| {}).await
    }

    pub async fn spawn_with(engine: Engine, adjust: impl FnOnce(&mut ServeArgs)) -> Self {
        let (dir, url) = Self::new_database(engine).await;
        Self::spawn_on(engine, dir, url, adjust).await
    }

    /// A place for a new database, not made yet on SQLite (a new, empty one on PostgreSQL).
    pub async fn new_database(engine: Engine) -> (TempDir, String) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = match engine {
            Engine::Sqlite => format!("sqlite://{}", dir.path().join("test.db").display()),
            Engine::Postgres => fresh_postgres_database().await,
        };
        (dir, url)
    }

    /// The application on the database at `url` (in `dir`, on SQLite).
    pub async fn spawn_on(
        engine: Engine,
        dir: TempDir,
        url: String,
        adjust: impl FnOnce(&mut ServeArgs),
    ) -> Self {
        let mut args = ServeArgs::for_tests(url.clone());
        adjust(&mut args);
        let app = Application::build(&args).await.expect("the application starts");
        let addr = app.local_addr();
        let store = app.store();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        let mut operator = reqwest::header::HeaderMap::new();
        operator.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {TEST_OPERATOR_TOKEN}")
                .parse()
                .expect("a header value"),
        );
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(operator)
            .build()
            .expect("an HTTP client");
        let anonymous = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        let app = Self {
            addr,
            client,
            anonymous,
            store,
            engine,
            database_url: url,
            _stop: stop,
            _dir: dir,
        };
        app.wait_ready().await;
        app
    }

    /// Polls `/readyz` until it answers 200 (the search index loads just after start-up).
    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let answer = self.client.get(self.url("/readyz")).send().await;
            if answer.is_ok_and(|response| response.status() == StatusCode::OK) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the app never became ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The folder holding the test's SQLite files (empty on PostgreSQL).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// This site's own origin, as a browser on it sends in `Origin`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET is answered")
    }

    /// `PUT path` with a JSON body; add headers with [`Call::header`], then `.await` it.
    pub fn put(&self, path: &str, body: &Value) -> Call {
        Call(self.client.put(self.url(path)).json(body))
    }

    /// `PATCH path` with a JSON body (`application/json`).
    pub fn patch(&self, path: &str, body: &Value) -> Call {
        Call(self.client.patch(self.url(path)).json(body))
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Call {
        Call(self.client.delete(self.url(path)))
    }

    /// `POST path` with a JSON body, for requests that need headers.
    pub fn post(&self, path: &str, body: &Value) -> Call {
        Call(self.client.post(self.url(path)).json(body))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST is answered")
    }

    /// Sends `body` as is, with the given Content-Type (or none).
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self
            .client
            .request(method.parse().expect("a method"), self.url(path))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.expect("the request is answered")
    }

    /// Creates a book and returns it as the API returned it.
    pub async fn create(&self, body: Value) -> Value {
        let response = self.post_json("/books", &body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "creating {body}");
        response.json().await.expect("a JSON book")
    }

    /// Writes books straight into the database, in one transaction: for catalogues too big to
    /// make one request at a time. The database's triggers keep its indexes, text index and
    /// counts as they do for the API's own writes.
    pub async fn insert_directly(&self, books: &[NewRow]) {
        use sqlx::{Connection, QueryBuilder};
        let now = "2026-11-25T10:00:00Z";
        for chunk in books.chunks(2000) {
            macro_rules! insert {
                ($conn:expr, $db:ty, $stamp:literal) => {{
                    let mut tx = $conn.begin().await.expect("a transaction");
                    let mut sql = QueryBuilder::<$db>::new(
                        "INSERT INTO books (title, author, year, genre, created_at, updated_at, title_key, author_key, genre_key) ",
                    );
                    sql.push_values(chunk, |mut row, book| {
                        row.push_bind(book.title.clone())
                            .push_bind(book.author.clone())
                            .push_bind(book.year)
                            .push_bind(book.genre.clone())
                            .push_bind(now)
                            .push_unseparated($stamp)
                            .push_bind(now)
                            .push_unseparated($stamp)
                            .push_bind(book.title.to_lowercase())
                            .push_bind(book.author.to_lowercase())
                            .push_bind(book.genre.as_deref().map(str::to_lowercase));
                    });
                    sql.build().execute(&mut *tx).await.expect("books inserted");
                    tx.commit().await.expect("committed");
                }};
            }
            match self.engine {
                Engine::Sqlite => {
                    let mut conn = sqlx::SqliteConnection::connect(&self.database_url)
                        .await
                        .expect("SQLite");
                    insert!(conn, sqlx::Sqlite, "");
                }
                Engine::Postgres => {
                    let mut conn = sqlx::PgConnection::connect(&self.database_url)
                        .await
                        .expect("PostgreSQL");
                    insert!(conn, sqlx::Postgres, "::timestamptz");
                }
            }
        }
        if self.engine == Engine::Postgres {
            // As autovacuum would, soon: the planner's statistics of the new catalogue.
            use sqlx::{Connection, Executor};
            let mut conn = sqlx::PgConnection::connect(&self.database_url)
                .await
                .expect("PostgreSQL");
            conn.execute("ANALYZE books").await.expect("analyzed");
        }
    }

    /// Creates a valid book with the given title.
    pub async fn create_titled(&self, title: &str) -> Value {
        self.create(json!({"title": title, "author": "Some Author", "year": 2000}))
            .await
    }
}

/// A book to write straight into the database ([`TestApp::insert_directly`]).
#[derive(Debug, Clone)]
pub struct NewRow {
    pub title: String,
    pub author: String,
    pub year: i32,
    pub genre: Option<String>,
}

/// A request being built; awaiting it sends it and expects an answer.
pub struct Call(reqwest::RequestBuilder);

impl Call {
    pub fn header(self, name: &str, value: impl AsRef<str>) -> Self {
        Self(self.0.header(name, value.as_ref()))
    }

    pub fn if_match(self, tag: impl AsRef<str>) -> Self {
        self.header("if-match", tag)
    }
}

impl IntoFuture for Call {
    type Output = Response;
    type IntoFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.0.send().await.expect("the request is answered") })
    }
}

/// A valid book body.
pub fn dune() -> Value {
    json!({"title": "Dune", "author": "Frank Herbert", "year": 1965, "genre": "Science fiction"})
}

/// Asserts an RFC 9457 problem with this status, and returns its body.
pub async fn assert_problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "errors are problem documents"
    );
    let body: Value = response.json().await.expect("a JSON problem");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["type"], "about:blank");
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
    body
}

/// The `field` of every entry of a problem's `errors`.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .expect("an errors array")
        .iter()
        .map(|e| e["field"].as_str().expect("a field name").to_owned())
        .collect()
}

pub fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("a {name} header"))
        .to_str()
        .expect("an ASCII header")
}

/// The ids of a JSON array of books.
pub fn ids(books: &Value) -> Vec<i64> {
    books
        .as_array()
        .expect("an array of books")
        .iter()
        .map(|b| b["id"].as_i64().expect("an id"))
        .collect()
}

/// Reads a raw HTTP/1.1 response until the server closes the connection or 2 s pass.
pub async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                buffer.extend_from_slice(&chunk[..n]);
                if response_complete(&buffer) {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&buffer).into_owned()
}

/// Whether `buffer` holds a whole response with a Content-Length body.
fn response_complete(buffer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buffer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .is_some_and(|length| body.len() >= length)
}
