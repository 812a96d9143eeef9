//! `bookstore token create | list | revoke`: managing API tokens from the command line,
//! against the database `DATABASE_URL` names, while a server runs on it or not.

use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::secret;
use crate::store::credentials::{CreateError, CredentialStore, NewToken, TokenRecord};
use crate::store::unix_now;

/// Longest token name.
pub const NAME_MAX: usize = 64;

/// A token's name: 1 to 64 characters once trimmed, none of them a control character.
pub fn token_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let length = name.chars().count();
    if length == 0 || length > NAME_MAX {
        return Err(format!("a token name must be 1 to {NAME_MAX} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("a token name cannot hold control characters".to_owned());
    }
    Ok(name.to_owned())
}

/// Makes a token and returns it: the only time it exists outside the caller's hands.
pub async fn create(
    store: &CredentialStore,
    name: &str,
    can_write: bool,
    expires_in: Option<Duration>,
) -> Result<(String, TokenRecord), CreateError> {
    let token = secret::new_token();
    let now = unix_now();
    let expires_at =
        expires_in.map(|ttl| now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)));
    let record = store
        .create_token(&NewToken {
            name: name.to_owned(),
            hash: secret::hash(&token),
            can_write,
            created_at: now,
            expires_at,
        })
        .await?;
    Ok((token, record))
}

/// `write` or `read`.
pub fn scope(token: &TokenRecord) -> &'static str {
    if token.can_write { "write" } else { "read" }
}

/// `active`, `expired` or `revoked`.
pub fn state(token: &TokenRecord, now: i64) -> &'static str {
    match super::usable(token, now) {
        Ok(()) => "active",
        Err(_) if token.revoked_at.is_some() => "revoked",
        Err(_) => "expired",
    }
}

/// A unix time as RFC 3339, or `never`.
fn when(at: Option<i64>) -> String {
    at.and_then(|at| OffsetDateTime::from_unix_timestamp(at).ok())
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_else(|| "never".to_owned())
}

/// The tokens as a table, one per line under a header.
pub fn table(tokens: &[TokenRecord], now: i64) -> String {
    let rows: Vec<[String; 6]> = tokens
        .iter()
        .map(|token| {
            [
                token.name.clone(),
                scope(token).to_owned(),
                when(Some(token.created_at)),
                when(token.last_used_at),
                when(token.expires_at),
                state(token, now).to_owned(),
            ]
        })
        .collect();
    let header = ["NAME", "SCOPE", "CREATED", "LAST USED", "EXPIRES", "STATE"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: &[String; 6]| {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", cells.join("  ").trim_end())
    };
    std::iter::once(&header).chain(&rows).map(line).collect()
}

/// The tokens as JSON, for scripts.
pub fn json(tokens: &[TokenRecord], now: i64) -> serde_json::Value {
    let iso = |at: Option<i64>| at.map(|at| when(Some(at)));
    tokens
        .iter()
        .map(|token| {
            json!({
                "name": token.name,
                "scope": scope(token),
                "created_at": iso(Some(token.created_at)),
                "last_used_at": iso(token.last_used_at),
                "expires_at": iso(token.expires_at),
                "revoked_at": iso(token.revoked_at),
                "state": state(token, now),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, can_write: bool, revoked_at: Option<i64>, expires_at: Option<i64>) -> TokenRecord {
        TokenRecord {
            id: 1,
            name: name.to_owned(),
            can_write,
            created_at: 1_764_000_000,
            expires_at,
            last_used_at: None,
            revoked_at,
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(token_name("  ci deploy ").unwrap(), "ci deploy");
        assert!(token_name("   ").is_err());
        assert!(token_name(&"n".repeat(65)).is_err());
        assert!(token_name(&"é".repeat(64)).is_ok());
        assert!(token_name("a\tb").is_err());
    }

    #[test]
    fn the_table_shows_scope_times_and_state_but_no_secret() {
        let now = 1_764_100_000;
        let tokens = [
            token("ci", true, None, None),
            token("viewer", false, None, Some(now - 1)),
            token("old", true, Some(now - 10), None),
        ];
        let table = table(&tokens, now);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{table}");
        assert!(lines[1].starts_with("ci ") && lines[1].contains("write") && lines[1].ends_with("active"));
        assert!(lines[1].contains("2025-11-24T16:00:00Z") && lines[1].contains("never"));
        assert!(lines[2].contains("read") && lines[2].ends_with("expired"));
        assert!(lines[3].ends_with("revoked"));
        assert_eq!(json(&tokens, now)[1]["state"], "expired");
    }
}
