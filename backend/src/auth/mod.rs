//! Who may change the catalogue (and, with `BOOKSTORE_PUBLIC_READS=false`, read it).
//!
//! A request carries at most one credential, looked at in this order:
//!
//! - `Authorization: Bearer <token>`: the operator token (`BOOKSTORE_ADMIN_TOKEN`), compared
//!   in constant time, or an API token (`bks_…`, made by `bookstore token create`), found by
//!   its hash. Revoked and expired tokens are refused.
//! - the `bookstore_session` cookie that `POST /session` set in a browser, found by its
//!   hash. A change made with it must come from this site's own pages (`Origin`): the
//!   cookie is `SameSite=Strict` too, so a page elsewhere cannot use it.
//!
//! Refusals: 401 (with `WWW-Authenticate`) for no credential or one that is unknown,
//! revoked or expired; 403 for a credential that may not do this (a read-only token, a
//! session cookie from another origin); 429 for a client that presented too many unknown
//! credentials ([`limiter`]). Each is counted in `bookstore_auth_failures_total{reason}`.

mod client;
pub mod commands;
mod limiter;
pub mod secret;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::header::{AUTHORIZATION, COOKIE, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

pub use client::{Network, TrustedProxies};
use limiter::FailureLimiter;
use secret::OperatorToken;

use crate::error::Error;
use crate::metrics::Metrics;
use crate::store::credentials::{CredentialStore, NewToken, SessionRecord, TokenRecord};
use crate::store::unix_now;

/// The session cookie's name over plain HTTP.
pub const SESSION_COOKIE: &str = "bookstore_session";
/// Its name over HTTPS. A browser stores a `__Host-` cookie only if it is `Secure`, has
/// `Path=/` and no `Domain`, so neither a plain-HTTP answer (a network attacker's) nor a
/// sibling domain can plant or overwrite one.
pub const SECURE_SESSION_COOKIE: &str = "__Host-bookstore_session";
/// A token's last use is written at most this often (seconds): a busy script's requests do
/// not each become a write.
const TOUCH_EVERY: i64 = 60;
/// Live sessions one token may have: a new sign-in past this ends the oldest.
pub const SESSIONS_PER_TOKEN: u32 = 16;
/// How often expired sessions are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How often the trusted proxies' host names are looked up again (a recreated container has a new
/// address).
const RESOLVE_PROXIES_EVERY: Duration = Duration::from_secs(10);
/// Where the log tells an operator to get a token.
const HOW_TO_MAKE_A_TOKEN: &str = "make yourself an API token with `bookstore token create --name YOUR-NAME` \
    (on the same DATABASE_URL; in the compose stack: `docker compose exec backend bookstore token create \
    --name YOUR-NAME`) and sign in with it in the UI, or send it as `Authorization: Bearer <token>`";
/// The name of the token made on first start.
pub const FIRST_TOKEN_NAME: &str = "first-token";

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The operator token.
    Operator,
    /// An API token, by id.
    Token(i64),
}

/// How the credential came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Session,
}

/// The authenticated maker of a request (a request extension, for the handlers).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The token's name (`operator` for the operator token).
    pub name: String,
    pub can_write: bool,
    pub via: Via,
    /// When the credential stops working (unix seconds), if it does.
    pub expires_at: Option<i64>,
}

impl Caller {
    /// What `Idempotency-Key`s are scoped to: the credential (a session shares its token's).
    pub fn scope(&self) -> String {
        match self.principal {
            Principal::Operator => "operator".to_owned(),
            Principal::Token(id) => format!("token:{id}"),
        }
    }
}

/// Why a credential was refused; `reason` is the metric's label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Invalid(String),
    Forbidden(String),
    Limited(Duration),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid(_) => "invalid",
            Self::Forbidden(_) => "forbidden",
            Self::Limited(_) => "limited",
        }
    }
}

/// The settings of [`Auth`].
#[derive(Clone)]
pub struct AuthConfig {
    pub operator: Option<OperatorToken>,
    pub public_reads: bool,
    pub proxies: TrustedProxies,
    pub session_ttl: Duration,
    pub failures_per_minute: u32,
    /// Origins allowed to call the API from other sites (CORS): also allowed to change it
    /// with a session cookie.
    pub cors_origins: Vec<String>,
}

/// Checks credentials; cloning shares it.
#[derive(Clone)]
pub struct Auth(Arc<Inner>);

struct Inner {
    store: CredentialStore,
    config: AuthConfig,
    metrics: Metrics,
    limiter: FailureLimiter,
    /// When each token's last use was last written.
    touched: Mutex<HashMap<i64, i64>>,
}

/// A credential as the request presented it.
enum Presented<'a> {
    Bearer(&'a str),
    Malformed,
    Session(&'a str),
}

impl Auth {
    /// Starts checking credentials against `store`, and deleting expired sessions from it
    /// every ten minutes (while this `Auth` lives).
    pub fn new(store: CredentialStore, config: AuthConfig, metrics: Metrics) -> Self {
        let inner = Arc::new(Inner {
            limiter: FailureLimiter::new(store.clone(), config.failures_per_minute),
            store,
            config,
            metrics,
            touched: Mutex::default(),
        });
        if !inner.config.proxies.hosts().is_empty() {
            let weak: Weak<Inner> = Arc::downgrade(&inner);
            tokio::spawn(async move {
                loop {
                    let Some(inner) = weak.upgrade() else { return };
                    inner.config.proxies.resolve().await;
                    drop(inner);
                    tokio::time::sleep(RESOLVE_PROXIES_EVERY).await;
                }
            });
        }
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PURGE_EVERY).await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(error) = inner.store.purge_sessions(unix_now()).await {
                    tracing::warn!(%error, "deleting expired sessions failed");
                }
                if let Err(error) = inner.limiter.purge().await {
                    tracing::warn!(%error, "deleting refilled failure counts failed");
                }
            }
        });
        Self(inner)
    }

    pub fn public_reads(&self) -> bool {
        self.0.config.public_reads
    }

    pub fn session_ttl(&self) -> Duration {
        self.0.config.session_ttl
    }

    pub fn store(&self) -> &CredentialStore {
        &self.0.store
    }

    /// Makes the first-start token, if no token has ever existed and no operator token is
    /// set, and says in the log how to write: with it (shown this once), or how to get one.
    pub async fn announce(&self) -> anyhow::Result<()> {
        let public = if self.public_reads() {
            "reading is public"
        } else {
            "reading needs a token too (BOOKSTORE_PUBLIC_READS=false)"
        };
        if self.0.config.operator.is_some() {
            tracing::info!(
                "changes need a credential: the operator token (BOOKSTORE_ADMIN_TOKEN) or an API token; \
                 {HOW_TO_MAKE_A_TOKEN}; {public}"
            );
            return Ok(());
        }
        let token = secret::new_token();
        let first = NewToken {
            name: FIRST_TOKEN_NAME.to_owned(),
            hash: secret::hash(&token),
            can_write: true,
            created_at: unix_now(),
            expires_at: None,
        };
        if self.0.store.create_first_token(&first).await? {
            tracing::warn!(
                name = FIRST_TOKEN_NAME,
                "No credential existed, so a first API token was made. It is shown only this once, here: {token} \
                 Sign in with it in the UI, or send it as `Authorization: Bearer {token}` (curl -H …). \
                 `bookstore token create --name NAME` makes more; `bookstore token revoke {FIRST_TOKEN_NAME}` \
                 retires this one. {public}."
            );
            return Ok(());
        }
        let now = unix_now();
        let writers = self
            .0
            .store
            .list_tokens()
            .await?
            .iter()
            .filter(|token| token.can_write && usable(token, now).is_ok())
            .count();
        if writers == 0 {
            tracing::warn!(
                "no API token can write and no operator token is set, so nobody can change the catalogue: \
                 {HOW_TO_MAKE_A_TOKEN}; {public}"
            );
        } else {
            tracing::info!(
                tokens = writers,
                "changes need a credential: an API token (`bookstore token list` shows them); \
                 {HOW_TO_MAKE_A_TOKEN}; {public}"
            );
        }
        Ok(())
    }

    /// The caller of a request from `peer`, if it presented a credential; the (counted)
    /// refusal if it presented a bad one, which counts against the client if nobody ever
    /// issued it (a guess).
    pub async fn authenticate(&self, peer: IpAddr, headers: &HeaderMap) -> Result<Option<Caller>, Error> {
        let Some(presented) = presented(headers, self.https(peer, headers)) else {
            return Ok(None);
        };
        let client = client::limit_key(self.0.config.proxies.client(peer, headers));
        let checked = match presented {
            Presented::Malformed => Err(Checked::Unknown(
                "the Authorization header must be `Bearer <token>`".to_owned(),
            )),
            Presented::Bearer(token) => self.bearer(token).await,
            Presented::Session(id) => self.session(id).await,
        };
        self.settle(checked, client).await.map(Some)
    }

    /// The caller, or the answer to a credential that does not work. A valid credential is
    /// never refused by the limit on failures; an unknown one is a 401 until its client (or
    /// everyone) has failed too often, then a 429.
    async fn settle(&self, checked: Result<Caller, Checked>, client: IpAddr) -> Result<Caller, Error> {
        match checked {
            Ok(caller) => Ok(caller),
            Err(Checked::Unknown(why)) => {
                let limiter = &self.0.limiter;
                let counted = match limiter.check(client).await? {
                    Ok(()) => limiter.spend(client).await?,
                    limited => limited,
                };
                if let Err(wait) = counted {
                    return Err(self.refuse(Refusal::Limited(wait)));
                }
                tracing::warn!(%client, "refused an unknown credential: {why}");
                Err(self.refuse(Refusal::Invalid(why)))
            }
            Err(Checked::Ended(why)) => Err(self.refuse(Refusal::Invalid(why))),
            Err(Checked::Unavailable(error)) => Err(Error::from(error)),
        }
    }

    async fn bearer(&self, token: &str) -> Result<Caller, Checked> {
        if self
            .0
            .config
            .operator
            .as_ref()
            .is_some_and(|op| op.matches(token))
        {
            return Ok(Caller {
                principal: Principal::Operator,
                name: "operator".to_owned(),
                can_write: true,
                via: Via::Bearer,
                expires_at: None,
            });
        }
        let record = self.token(token).await?;
        Ok(Caller {
            principal: Principal::Token(record.id),
            name: record.name,
            can_write: record.can_write,
            via: Via::Bearer,
            expires_at: record.expires_at,
        })
    }

    /// The usable API token `token`, its use recorded.
    async fn token(&self, token: &str) -> Result<TokenRecord, Checked> {
        const UNKNOWN: &str = "the token is not valid";
        if !secret::looks_like_token(token) {
            return Err(Checked::Unknown(UNKNOWN.to_owned()));
        }
        let record = self
            .0
            .store
            .token_by_hash(&secret::hash(token))
            .await
            .map_err(Checked::Unavailable)?
            .ok_or_else(|| Checked::Unknown(UNKNOWN.to_owned()))?;
        let now = unix_now();
        usable(&record, now).map_err(|why| Checked::Ended(why.to_owned()))?;
        self.touch(&record, now);
        Ok(record)
    }

    /// Writes the token's last use, unless that was done less than a minute ago.
    fn touch(&self, record: &TokenRecord, now: i64) {
        {
            let mut touched = self.0.touched.lock().unwrap_or_else(|e| e.into_inner());
            let last = *touched
                .entry(record.id)
                .or_insert(record.last_used_at.unwrap_or(i64::MIN));
            if now.saturating_sub(last) < TOUCH_EVERY {
                return;
            }
            touched.insert(record.id, now);
        }
        let (store, id) = (self.0.store.clone(), record.id);
        tokio::spawn(async move {
            if let Err(error) = store.touch_token(id, now).await {
                tracing::warn!(%error, token = id, "recording a token's last use failed");
            }
        });
    }

    async fn session(&self, id: &str) -> Result<Caller, Checked> {
        const UNKNOWN: &str = "the session is not valid; sign in again";
        let found = self
            .0
            .store
            .find_session(&secret::hash(id))
            .await
            .map_err(Checked::Unavailable)?
            .ok_or_else(|| Checked::Unknown(UNKNOWN.to_owned()))?;
        let session = found.session;
        if session.expires_at <= unix_now() {
            return Err(Checked::Ended(
                "the session has expired; sign in again".to_owned(),
            ));
        }
        // Revoking a token deletes its sessions, but a sign-in that checked the token just
        // before the revocation committed inserts its session just after: this catches it.
        if found.token_revoked {
            return Err(Checked::Ended(
                "the token this session was made from has been revoked".to_owned(),
            ));
        }
        let principal = match (&session.token_id, &session.operator_fingerprint) {
            (Some(id), _) => Principal::Token(*id),
            (None, Some(fingerprint)) => {
                let current = self.0.config.operator.as_ref().map(OperatorToken::fingerprint);
                if current.as_ref() != Some(fingerprint) {
                    return Err(Checked::Ended(
                        "the operator token this session was made from has changed; sign in again".to_owned(),
                    ));
                }
                Principal::Operator
            }
            (None, None) => return Err(Checked::Unknown(UNKNOWN.to_owned())),
        };
        Ok(Caller {
            principal,
            name: session.name,
            can_write: session.can_write,
            via: Via::Session,
            expires_at: Some(session.expires_at),
        })
    }

    /// Exchanges `token` for a new session: its id (the cookie's value) and the caller.
    pub async fn sign_in(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
        token: &str,
    ) -> Result<(String, Caller), Error> {
        let client = client::limit_key(self.0.config.proxies.client(peer, headers));
        let caller = self.settle(self.bearer(token).await, client).await?;
        let id = secret::new_session_id();
        let created_at = unix_now();
        let ttl = i64::try_from(self.session_ttl().as_secs()).unwrap_or(i64::MAX);
        let expires_at = created_at
            .saturating_add(ttl)
            .min(caller.expires_at.unwrap_or(i64::MAX));
        let (token_id, operator_fingerprint) = match caller.principal {
            Principal::Token(id) => (Some(id), None),
            Principal::Operator => (
                None,
                self.0.config.operator.as_ref().map(OperatorToken::fingerprint),
            ),
        };
        let record = SessionRecord {
            id_hash: secret::hash(&id),
            token_id,
            operator_fingerprint,
            name: caller.name.clone(),
            can_write: caller.can_write,
            created_at,
            expires_at,
        };
        self.0.store.create_session(&record, SESSIONS_PER_TOKEN).await?;
        Ok((
            id,
            Caller {
                via: Via::Session,
                expires_at: Some(expires_at),
                ..caller
            },
        ))
    }

    /// Ends the session the request's cookie names, if any, and gives the `Set-Cookie` value
    /// that makes the browser forget it (for the scheme the request came over).
    pub async fn sign_out(&self, peer: IpAddr, headers: &HeaderMap) -> Result<HeaderValue, Error> {
        let https = self.https(peer, headers);
        if let Some(id) = session_cookie(headers, https) {
            self.0.store.delete_session(&secret::hash(id)).await?;
        }
        Ok(cleared_cookie_header(https))
    }

    /// Whether a request's `Origin` is this site's own (or an allowed CORS origin): the
    /// host and port the browser asked for, as `Host` (or a trusted proxy's
    /// `X-Forwarded-Host`) names them. A browser always sends `Origin` with a change.
    pub fn same_origin(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        if self.0.config.cors_origins.iter().any(|allowed| allowed == origin) {
            return true;
        }
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        let Some(host) = self.0.config.proxies.host(peer, headers) else {
            return false;
        };
        let https = self.0.config.proxies.forwarded_https(peer, headers);
        let ours = if https { "https" } else { "http" };
        // Behind a TLS proxy that does not say so, the browser's scheme is https and ours
        // http: the host and port still tell this site from any other.
        (scheme.eq_ignore_ascii_case(ours) || scheme.eq_ignore_ascii_case("https"))
            && without_default_port(authority, scheme)
                .eq_ignore_ascii_case(without_default_port(host, scheme))
    }

    /// Whether the client reached this site over HTTPS (so the cookie can be `Secure`).
    pub fn https(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        self.0.config.proxies.forwarded_https(peer, headers)
    }

    /// The error answering `refusal`, counted.
    pub fn refuse(&self, refusal: Refusal) -> Error {
        self.0.metrics.auth_failure(refusal.reason());
        match refusal {
            Refusal::Missing => Error::Unauthorized {
                detail: "this needs a credential: send `Authorization: Bearer <token>`, or sign in"
                    .to_owned(),
                invalid: false,
            },
            Refusal::Invalid(detail) => Error::Unauthorized {
                detail,
                invalid: true,
            },
            Refusal::Forbidden(detail) => Error::Forbidden(detail),
            Refusal::Limited(wait) => Error::TooManyRequests {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            },
        }
    }
}

/// Why a presented credential does not work.
enum Checked {
    /// Nobody issued it: it counts against the client as a guess.
    Unknown(String),
    /// It was real, but has expired or been revoked: a stale credential, not a guess.
    Ended(String),
    Unavailable(sqlx::Error),
}

/// `Ok` if an API token may be used at `now`, else why not.
fn usable(token: &TokenRecord, now: i64) -> Result<(), &'static str> {
    if token.revoked_at.is_some() {
        return Err("the token has been revoked");
    }
    if token.expires_at.is_some_and(|at| at <= now) {
        return Err("the token has expired");
    }
    Ok(())
}

/// The credential a request presents: its `Authorization` header, else the session cookie
/// named for its scheme (`https`).
fn presented(headers: &HeaderMap, https: bool) -> Option<Presented<'_>> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        return Some(token.map_or(Presented::Malformed, Presented::Bearer));
    }
    session_cookie(headers, https).map(Presented::Session)
}

/// The session cookie's name for a request made over HTTPS or not.
fn cookie_name(https: bool) -> &'static str {
    if https {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The session cookie's value, if the request carries one. Over HTTPS only the `__Host-`
/// cookie counts: an unprefixed one there may have been planted over plain HTTP.
pub fn session_cookie(headers: &HeaderMap, https: bool) -> Option<&str> {
    let name = cookie_name(https);
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

fn without_default_port<'a>(authority: &'a str, scheme: &str) -> &'a str {
    let default = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// The `Set-Cookie` value of a new session: `__Host-`-prefixed and `Secure` over HTTPS.
pub fn session_cookie_header(id: &str, max_age: i64, https: bool) -> HeaderValue {
    let name = cookie_name(https);
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={id}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("hex and ASCII attributes make a valid header value")
}

/// The `Set-Cookie` value that deletes the session cookie of a request's scheme.
pub fn cleared_cookie_header(https: bool) -> HeaderValue {
    session_cookie_header("", 0, https)
}

/// The address a request came from (loopback for a request made without a socket, as in
/// tests that call the router directly).
pub fn peer(request_extensions: &axum::http::Extensions) -> IpAddr {
    request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |ConnectInfo(addr)| addr.ip())
}

impl Auth {
    /// The caller of a request to the catalogue that needs a credential (every change, and
    /// every read when reads are not public): a change needs one that may write, and by
    /// session must come from this site's own pages. `Err` is the refusal, ready to send (a
    /// session that no longer works also tells the browser to forget its cookie).
    pub async fn admit(&self, peer: IpAddr, headers: &HeaderMap, changes: bool) -> Result<Caller, Response> {
        let caller = match self.authenticate(peer, headers).await {
            Ok(Some(caller)) => caller,
            Ok(None) => return Err(self.refuse(Refusal::Missing).into_response()),
            Err(error) => {
                let by_cookie = !headers.contains_key(AUTHORIZATION);
                let ended = matches!(error, Error::Unauthorized { .. });
                let mut response = error.into_response();
                if by_cookie && ended {
                    // The browser's cookie no longer works: it may as well forget it.
                    let https = self.https(peer, headers);
                    response
                        .headers_mut()
                        .insert(SET_COOKIE, cleared_cookie_header(https));
                }
                return Err(response);
            }
        };
        if changes && !caller.can_write {
            let refusal = Refusal::Forbidden(format!(
                "the token {:?} is read-only; changes need a token made without --read-only",
                caller.name
            ));
            return Err(self.refuse(refusal).into_response());
        }
        if changes && caller.via == Via::Session && !self.same_origin(peer, headers) {
            let refusal = Refusal::Forbidden(
                "a change made with a session cookie must come from this site's own pages (its Origin header)"
                    .to_owned(),
            );
            return Err(self.refuse(refusal).into_response());
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::client::tests::headers;
    use super::*;

    #[test]
    fn the_bearer_header_wins_over_the_cookie() {
        let both = headers(&[
            ("authorization", "Bearer abc"),
            ("cookie", "bookstore_session=s1"),
        ]);
        assert!(matches!(presented(&both, false), Some(Presented::Bearer("abc"))));
        let cookie = headers(&[("cookie", "theme=dark; bookstore_session=s1; x=y")]);
        assert!(matches!(
            presented(&cookie, false),
            Some(Presented::Session("s1"))
        ));
        let basic = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert!(matches!(presented(&basic, false), Some(Presented::Malformed)));
        assert!(presented(&headers(&[("cookie", "bookstore_session=")]), false).is_none());
        assert!(presented(&HeaderMap::new(), false).is_none());
    }

    #[test]
    fn over_https_only_the_host_prefixed_cookie_counts() {
        let plain = headers(&[("cookie", "bookstore_session=planted")]);
        assert!(presented(&plain, true).is_none());
        let both = headers(&[("cookie", "bookstore_session=planted; __Host-bookstore_session=s1")]);
        assert!(matches!(presented(&both, true), Some(Presented::Session("s1"))));
        assert!(matches!(
            presented(&both, false),
            Some(Presented::Session("planted"))
        ));
    }

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_and_prefixed_over_https() {
        let cookie = session_cookie_header("abc", 3600, true);
        assert_eq!(
            cookie,
            "__Host-bookstore_session=abc; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            cleared_cookie_header(true),
            "__Host-bookstore_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            cleared_cookie_header(false),
            "bookstore_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        );
        assert!(
            !session_cookie_header("abc", 60, false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }

    #[test]
    fn default_ports_do_not_tell_origins_apart() {
        assert_eq!(without_default_port("example.com:443", "https"), "example.com");
        assert_eq!(
            without_default_port("example.com:8080", "http"),
            "example.com:8080"
        );
    }
}
