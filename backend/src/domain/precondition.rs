//! Which versions of a book a request may act on: the `If-Match` and `If-None-Match`
//! conditions of RFC 9110 §13, as data the store evaluates against the current row inside
//! the transaction that changes it (so no other write can slip in between).
//!
//! A book's entity tag is `"<id>.<version>"`. Tags are compared as the exact strings they
//! are (never parsed into numbers), so `"013.+1"` is not the tag `"13.1"`.

/// The entity tags of one conditional header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    /// `*`: any current version.
    Any,
    /// The listed tags, as `(weak, opaque)`: `W/"1.2"` is `(true, "1.2")`. Members that are
    /// not entity tags are left out, so a header of only garbage matches nothing.
    List(Vec<(bool, String)>),
}

impl Tags {
    /// Reads the comma-separated members of every instance of a header.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut tags = Vec::new();
        for member in values.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
            if member == "*" {
                return Self::Any;
            }
            let (weak, quoted) = match member.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, member),
            };
            if let Some(opaque) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'))
                && !opaque.contains('"')
            {
                tags.push((weak, opaque.to_owned()));
            }
        }
        Self::List(tags)
    }

    /// Strong comparison (for `If-Match`): only a strong tag equal to `current` matches.
    pub fn match_strong(&self, current: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(tags) => tags.iter().any(|(weak, tag)| !weak && tag == current),
        }
    }

    /// Weak comparison (for `If-None-Match`): a tag equal to `current`, weak or not.
    pub fn match_weak(&self, current: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(tags) => tags.iter().any(|(_, tag)| tag == current),
        }
    }
}

/// The opaque part of a book's entity tag.
pub fn tag_of(id: i64, version: i64) -> String {
    format!("{id}.{version}")
}

/// The conditions a change carries. The default is none: any current version will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precondition {
    pub if_match: Option<Tags>,
    pub if_none_match: Option<Tags>,
}

impl Precondition {
    /// Whether a change may act on version `version` of book `id` (which exists: a missing
    /// book is a 404 whatever the conditions say). Both headers are evaluated, as RFC 9110
    /// §13.2.2 orders them; for a change, a matching `If-None-Match` fails.
    pub fn admits(&self, id: i64, version: i64) -> bool {
        let current = tag_of(id, version);
        self.if_match
            .as_ref()
            .is_none_or(|tags| tags.match_strong(&current))
            && self
                .if_none_match
                .as_ref()
                .is_none_or(|tags| !tags.match_weak(&current))
    }

    pub fn is_none(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn if_match(value: &str) -> Precondition {
        Precondition {
            if_match: Some(Tags::parse([value])),
            if_none_match: None,
        }
    }

    fn if_none_match(value: &str) -> Precondition {
        Precondition {
            if_match: None,
            if_none_match: Some(Tags::parse([value])),
        }
    }

    #[test]
    fn if_match_needs_the_exact_strong_tag_of_this_version() {
        assert!(if_match("\"13.1\"").admits(13, 1));
        assert!(if_match("\"12.4\", \"13.1\"").admits(13, 1));
        assert!(!if_match("\"13.2\"").admits(13, 1));
        assert!(!if_match("\"12.1\"").admits(13, 1), "another book's tag");
        assert!(
            !if_match("W/\"13.1\"").admits(13, 1),
            "weak tags never match If-Match"
        );
        for spelled_otherwise in ["\"013.1\"", "\"13.+1\"", "\"013.+1\"", "\"13.01\"", "\" 13.1\""] {
            assert!(!if_match(spelled_otherwise).admits(13, 1), "{spelled_otherwise}");
        }
        assert!(
            !if_match("garbage").admits(13, 1),
            "a header of no tags matches nothing"
        );
        assert!(if_match("*").admits(13, 1));
    }

    #[test]
    fn if_none_match_refuses_a_change_to_a_version_it_names() {
        assert!(
            !if_none_match("*").admits(13, 1),
            "If-None-Match: * on an existing book"
        );
        assert!(!if_none_match("W/\"13.1\"").admits(13, 1), "weak comparison");
        assert!(if_none_match("\"13.0\"").admits(13, 1));
        assert!(Precondition::default().admits(13, 1));
    }

    #[test]
    fn both_headers_are_evaluated() {
        let both = Precondition {
            if_match: Some(Tags::parse(["\"13.1\""])),
            if_none_match: Some(Tags::parse(["*"])),
        };
        assert!(!both.admits(13, 1));
    }
}
