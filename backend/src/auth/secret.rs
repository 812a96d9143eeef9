//! The secrets credentials are made of: API tokens, the operator token and session ids, and
//! the one-way hashes that are stored in their place.

use sha2::{Digest, Sha256};

/// `bytes` random bytes from the operating system, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system provides randomness");
    hex(&buffer)
}

/// What every API token starts with, so that secret scanners can find a leaked one.
pub const TOKEN_PREFIX: &str = "bks_";
/// Random bytes in a token or a session id: 256 bits.
const RANDOM_BYTES: usize = 32;

/// A new API token: the prefix and 256 random bits in hex.
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_hex(RANDOM_BYTES))
}

/// Whether `text` has the shape of an API token (so that anything else is refused without
/// asking the database).
pub fn looks_like_token(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX).is_some_and(|hex| {
        hex.len() == RANDOM_BYTES * 2 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// A new session id (the cookie's value): 256 random bits in hex.
pub fn new_session_id() -> String {
    random_hex(RANDOM_BYTES)
}

/// What is stored for a token or a session id: its SHA-256, in hex. The secrets are 256
/// random bits, so a plain hash is as strong as a slow one (there is nothing to guess).
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The operator token (`BOOKSTORE_ADMIN_TOKEN`), kept as its hash and compared in constant
/// time: how long a comparison takes says nothing about how much of a guess was right.
#[derive(Clone)]
pub struct OperatorToken {
    digest: [u8; 32],
}

/// Shortest operator token accepted: shorter ones are guessable.
pub const OPERATOR_TOKEN_MIN: usize = 16;
const OPERATOR_TOKEN_MAX: usize = 512;

impl OperatorToken {
    /// 16 to 512 visible ASCII characters (what an `Authorization` header carries as is).
    pub fn new(secret: &str) -> Result<Self, String> {
        let secret = secret.trim();
        if !(OPERATOR_TOKEN_MIN..=OPERATOR_TOKEN_MAX).contains(&secret.len()) {
            return Err(format!(
                "the operator token must be {OPERATOR_TOKEN_MIN} to {OPERATOR_TOKEN_MAX} characters long \
                 (make one with: openssl rand -hex 32)"
            ));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the operator token must be visible ASCII characters, without spaces".to_owned());
        }
        Ok(Self {
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the operator token, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        constant_time_eq(&digest, &self.digest)
    }

    /// Names this operator token without revealing it (a hash of its hash): sessions made
    /// from it end when it changes.
    pub fn fingerprint(&self) -> String {
        hex(&Sha256::digest(self.digest)[..16])
    }
}

/// Compares every byte whatever the earlier ones were.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_the_prefix_and_256_random_bits() {
        let (a, b) = (new_token(), new_token());
        assert!(a.starts_with("bks_") && a.len() == 4 + 64, "{a}");
        assert_ne!(a, b);
        assert!(looks_like_token(&a));
        assert!(!looks_like_token("bks_short"));
        assert!(!looks_like_token(&a.to_uppercase()));
        assert!(!looks_like_token(&a[4..]));
    }

    #[test]
    fn only_the_hash_is_kept_and_it_is_stable() {
        let token = new_token();
        assert_eq!(hash(&token), hash(&token));
        assert_eq!(hash(&token).len(), 64);
        assert!(!hash(&token).contains(&token[4..]));
    }

    #[test]
    fn the_operator_token_matches_itself_only() {
        let operator = OperatorToken::new("  correct-horse-battery-staple\n").unwrap();
        assert!(operator.matches("correct-horse-battery-staple"));
        assert!(!operator.matches("correct-horse-battery-stapl"));
        assert!(!operator.matches(""));
        assert_eq!(operator.fingerprint().len(), 32);
        assert_ne!(
            operator.fingerprint(),
            OperatorToken::new("another-long-operator-token")
                .unwrap()
                .fingerprint()
        );
    }

    #[test]
    fn weak_operator_tokens_are_refused() {
        assert!(OperatorToken::new("short").is_err());
        assert!(OperatorToken::new("has a space in the middle").is_err());
        assert!(OperatorToken::new(&"x".repeat(513)).is_err());
    }
}
