//! The brute-force limit: each client may present an unknown credential a few times a
//! minute, and all clients together [`GLOBAL_FACTOR`] times that; past either, an unknown
//! credential is answered 429 (with `Retry-After`) instead of 401. A valid credential is never
//! refused: one guesser behind a shared address (a NAT, a proxy) cannot lock its neighbours
//! out, nor can a crowd of guessers lock everyone out. What that gives a guesser is nothing:
//! tokens and session ids are 256 random bits.
//!
//! A token bucket per client and one for everyone: `per_minute` failures at once, then one
//! more every `60 / per_minute` seconds. Memory is bounded: past [`MAX_CLIENTS`] clients,
//! those whose bucket has refilled are forgotten first (they have nothing left to count),
//! then the fullest: a client that is limited is the last to be forgotten.
//!
//! The count is per process: with several replicas, each keeps its own, and nginx's limit on
//! changes per client bounds the total (docs/scaling.md).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most clients remembered at once.
pub const MAX_CLIENTS: usize = 65_536;
/// All clients together may fail this many times what one client may.
pub const GLOBAL_FACTOR: u32 = 50;

pub struct FailureLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    global_per_minute: f64,
    global: Mutex<Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures the client may still make.
    allowance: f64,
    at: Instant,
}

impl FailureLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self::with_global(per_minute, per_minute.saturating_mul(GLOBAL_FACTOR))
    }

    fn with_global(per_minute: u32, global_per_minute: u32) -> Self {
        let global_per_minute = f64::from(global_per_minute.max(1));
        Self {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::default(),
            global_per_minute,
            global: Mutex::new(Bucket {
                allowance: global_per_minute,
                at: Instant::now(),
            }),
        }
    }

    fn refill(&self, bucket: Bucket, now: Instant) -> f64 {
        refill(bucket, now, self.per_minute)
    }

    /// `Err(wait)` while an unknown credential from `client` is answered with 429: the
    /// client, or everyone, has failed too often.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let global = *self.global.lock().unwrap_or_else(|e| e.into_inner());
        waiting(
            refill(global, now, self.global_per_minute),
            self.global_per_minute,
        )?;
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match buckets.get(&client) {
            Some(bucket) => waiting(self.refill(*bucket, now), self.per_minute),
            None => Ok(()),
        }
    }

    /// Counts one failed credential from `client`.
    pub fn fail(&self, client: IpAddr, now: Instant) {
        {
            let mut global = self.global.lock().unwrap_or_else(|e| e.into_inner());
            *global = Bucket {
                allowance: (refill(*global, now, self.global_per_minute) - 1.0).max(0.0),
                at: now,
            };
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            self.make_room(&mut buckets, now);
        }
        let full = Bucket {
            allowance: self.per_minute,
            at: now,
        };
        let bucket = buckets.entry(client).or_insert(full);
        *bucket = Bucket {
            allowance: (self.refill(*bucket, now) - 1.0).max(0.0),
            at: now,
        };
    }

    /// Forgets the clients whose bucket has refilled; if that is not enough, the fullest
    /// sixteenth (once per that many new clients, rather than a scan for each).
    fn make_room(&self, buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        buckets.retain(|_, bucket| self.refill(*bucket, now) < self.per_minute);
        if buckets.len() >= MAX_CLIENTS {
            let mut fullest: Vec<(f64, IpAddr)> = buckets
                .iter()
                .map(|(client, bucket)| (self.refill(*bucket, now), *client))
                .collect();
            let evict = MAX_CLIENTS / 16;
            fullest.select_nth_unstable_by(evict, |a, b| b.0.total_cmp(&a.0));
            for (_, client) in &fullest[..evict] {
                buckets.remove(client);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

/// A bucket's allowance at `now`, refilled at `per_minute` up to `per_minute`.
fn refill(bucket: Bucket, now: Instant, per_minute: f64) -> f64 {
    let regained = now.saturating_duration_since(bucket.at).as_secs_f64() * per_minute / 60.0;
    (bucket.allowance + regained).min(per_minute)
}

/// `Err(how long until one more failure is allowed)` if `allowance` is spent.
fn waiting(allowance: f64, per_minute: f64) -> Result<(), Duration> {
    if allowance >= 1.0 {
        Ok(())
    } else {
        Err(Duration::from_secs_f64((1.0 - allowance) * 60.0 / per_minute))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn ten_failures_a_minute_then_one_every_six_seconds() {
        let limiter = FailureLimiter::new(10);
        let start = Instant::now();
        for _ in 0..10 {
            assert!(limiter.check(ip(1), start).is_ok());
            limiter.fail(ip(1), start);
        }
        let wait = limiter.check(ip(1), start).unwrap_err();
        assert_eq!(wait.as_secs_f64().round(), 6.0);
        assert!(
            limiter.check(ip(2), start).is_ok(),
            "other clients are not affected"
        );
        assert!(limiter.check(ip(1), start + Duration::from_secs(5)).is_err());
        let later = start + Duration::from_secs(6);
        assert!(limiter.check(ip(1), later).is_ok());
        limiter.fail(ip(1), later);
        assert!(limiter.check(ip(1), later).is_err(), "one regained, one spent");
        assert!(limiter.check(ip(1), start + Duration::from_secs(70)).is_ok());
    }

    #[test]
    fn all_clients_together_have_a_budget_too() {
        let limiter = FailureLimiter::with_global(10, 25);
        let start = Instant::now();
        for n in 0..25 {
            assert!(limiter.check(ip(n), start).is_ok());
            limiter.fail(ip(n), start);
        }
        let wait = limiter.check(ip(1000), start).unwrap_err();
        assert_eq!(wait.as_secs_f64().round(), 2.0, "60 s / 25");
        assert!(limiter.check(ip(1000), start + Duration::from_secs(3)).is_ok());
        assert_eq!(FailureLimiter::new(10).global_per_minute, 500.0);
    }

    #[test]
    fn memory_stays_bounded_under_many_clients() {
        let limiter = FailureLimiter::with_global(10, u32::MAX);
        let now = Instant::now();
        for n in 0..(MAX_CLIENTS as u32 + 100) {
            limiter.fail(ip(n), now);
        }
        assert!(limiter.len() <= MAX_CLIENTS);
        // A client that is locked out stays locked out while others come and go.
        for _ in 0..10 {
            limiter.fail(ip(u32::MAX), now);
        }
        for n in 0..1000 {
            limiter.fail(ip(1_000_000 + n), now);
        }
        assert!(limiter.check(ip(u32::MAX), now).is_err());
    }
}
