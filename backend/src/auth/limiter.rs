//! The brute-force limit: each client may present an unknown credential a few times a
//! minute, and all clients together [`GLOBAL_FACTOR`] times that; past either, an unknown
//! credential is answered 429 (with `Retry-After`) instead of 401. A valid credential is never
//! refused: one guesser behind a shared address (a NAT, a proxy) cannot lock its neighbours
//! out, nor can a crowd of guessers lock everyone out. What that gives a guesser is nothing:
//! tokens and session ids are 256 random bits.
//!
//! The counts are token buckets kept in the database (`failed_credentials`), so every replica
//! on it shares them: one per client and one for everyone (`*`), each holding `per_minute`
//! failures and regaining one every `60 / per_minute` seconds, in thousandths of a failure.
//! A failure is spent by one statement, so replicas spending at once each see the other's
//! spend; an unknown credential costs a read, and a write only while its client may still
//! fail (a flood past the limit is answered from the read). Buckets that have refilled are
//! deleted every ten minutes with the expired sessions.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::store::credentials::CredentialStore;

/// All clients together may fail this many times what one client may.
pub const GLOBAL_FACTOR: u32 = 50;
/// One failure, in the buckets' thousandths.
const ONE: i64 = 1000;
/// The key of the bucket every client shares.
const EVERYONE: &str = "*";

pub struct FailureLimiter {
    store: CredentialStore,
    per_minute: i64,
    global_per_minute: i64,
}

impl FailureLimiter {
    pub fn new(store: CredentialStore, per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        Self {
            store,
            per_minute: i64::from(per_minute),
            global_per_minute: i64::from(per_minute.saturating_mul(GLOBAL_FACTOR)),
        }
    }

    /// `Err(wait)` if an unknown credential from `client` is to be answered 429: the client,
    /// or everyone, has failed too often.
    pub async fn check(&self, client: IpAddr) -> Result<Result<(), Duration>, sqlx::Error> {
        let key = client.to_string();
        let now = now_ms();
        let rows = self.store.failure_buckets([&key, EVERYONE]).await?;
        let wait = self
            .buckets(&key)
            .into_iter()
            .filter_map(|(name, per_minute)| {
                let (_, allowance, updated_ms) = rows.iter().find(|(k, ..)| k == name)?;
                Some(wait_for_one(
                    refill(*allowance, now - updated_ms, per_minute),
                    per_minute,
                ))
            })
            .max()
            .unwrap_or_default();
        Ok(if wait.is_zero() { Ok(()) } else { Err(wait) })
    }

    /// Counts one unknown credential from `client`; `Err(wait)` if another replica spent
    /// the last of a bucket first.
    pub async fn spend(&self, client: IpAddr) -> Result<Result<(), Duration>, sqlx::Error> {
        let key = client.to_string();
        let now = now_ms();
        let mut wait = Duration::ZERO;
        for (name, per_minute) in self.buckets(&key) {
            let left = self.store.spend_failure(name, per_minute, now).await?;
            if left < 0 {
                wait = wait.max(wait_for_one(left, per_minute));
            }
        }
        Ok(if wait.is_zero() { Ok(()) } else { Err(wait) })
    }

    /// Forgets the buckets untouched for ten minutes: a full one refills in a minute, and one
    /// overdrawn by parallel guesses (a few failures past empty) soon after.
    pub async fn purge(&self) -> Result<(), sqlx::Error> {
        self.store.purge_failures(now_ms() - 600_000).await
    }

    fn buckets<'a>(&self, key: &'a str) -> [(&'a str, i64); 2] {
        [(key, self.per_minute), (EVERYONE, self.global_per_minute)]
    }
}

/// A bucket's allowance `elapsed_ms` after it held `allowance`: what the database computes
/// when it spends from it.
fn refill(allowance: i64, elapsed_ms: i64, per_minute: i64) -> i64 {
    (allowance + elapsed_ms * per_minute / 60).min(per_minute * ONE)
}

/// How long until a bucket holding `allowance` allows one more failure.
fn wait_for_one(allowance: i64, per_minute: i64) -> Duration {
    let missing = u64::try_from(ONE - allowance).unwrap_or(0);
    Duration::from_millis(missing * 60 / u64::try_from(per_minute).unwrap_or(1))
}

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_a_minute_refill_one_every_six_seconds_up_to_ten() {
        assert_eq!(refill(0, 6_000, 10), ONE);
        assert_eq!(refill(0, 3_000, 10), ONE / 2);
        assert_eq!(refill(9 * ONE, 60_000, 10), 10 * ONE, "never more than the limit");
        assert_eq!(wait_for_one(0, 10), Duration::from_secs(6));
        assert_eq!(wait_for_one(ONE / 2, 10), Duration::from_secs(3));
        assert_eq!(wait_for_one(ONE, 10), Duration::ZERO);
        assert_eq!(
            wait_for_one(-ONE, 10),
            Duration::from_secs(12),
            "an overdrawn bucket waits longer"
        );
    }
}
