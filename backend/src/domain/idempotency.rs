//! An `Idempotency-Key`: the client's name for one intended creation, so that a retry of it
//! is recognised instead of creating the book again. Keys are scoped to the credential that
//! sent them: two clients choosing the same key never see each other's books.

/// Longest key, as the contract allows.
pub const MAX_KEY_CHARS: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    scope: String,
    key: String,
}

impl IdempotencyKey {
    /// A key of 1 to 255 printable ASCII characters (what a header value can carry without
    /// ambiguity), surrounding spaces removed, in the given scope.
    pub fn parse(scope: impl Into<String>, raw: &[u8]) -> Result<Self, &'static str> {
        const RULE: &str = "must be 1 to 255 printable ASCII characters";
        let text = std::str::from_utf8(raw).map_err(|_| RULE)?.trim();
        let printable = text.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if text.is_empty() || text.len() > MAX_KEY_CHARS || !printable {
            return Err(RULE);
        }
        Ok(Self {
            scope: scope.into(),
            key: text.to_owned(),
        })
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_up_to_255_characters() {
        assert_eq!(IdempotencyKey::parse("s", b" abc-123 ").unwrap().key(), "abc-123");
        assert!(IdempotencyKey::parse("s", &[b'k'; 255]).is_ok());
        assert!(IdempotencyKey::parse("s", &[b'k'; 256]).is_err());
        assert!(IdempotencyKey::parse("s", b"").is_err());
        assert!(IdempotencyKey::parse("s", b"   ").is_err());
        assert!(IdempotencyKey::parse("s", "caf\u{e9}".as_bytes()).is_err());
        assert!(IdempotencyKey::parse("s", b"a\x01b").is_err());
    }
}
