//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>), level 1: a request joins the
//! trace its caller names in `traceparent`, or starts a new one; the answer carries a
//! `traceparent` back (the trace, and this server's span in it), and every JSON log line
//! written while the request is handled has its trace id (see `crate::telemetry`).
//!
//! The context travels with the request as an extension, and as a task-local for the log
//! lines: a log line costs the lookup, a request that logs nothing costs nothing more.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderName, HeaderValue};

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// A 16-byte trace id, never all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceId(u128);

/// An 8-byte span id, never all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanId(u64);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Where this request stands in its trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// This server's span: the request as this process handled it.
    pub span_id: SpanId,
    /// The caller's span, when the caller sent a valid `traceparent`.
    pub parent: Option<SpanId>,
    /// The caller's sampling decision (a trace this server starts is sampled).
    pub sampled: bool,
}

impl TraceContext {
    /// Joins the trace of a `traceparent` header if it is valid, or starts a new trace (as
    /// the specification asks of a header that does not parse).
    pub fn from_header(header: Option<&[u8]>) -> Self {
        match header.and_then(parse) {
            Some((trace_id, parent, flags)) => Self {
                trace_id,
                span_id: SpanId(nonzero(next_random)),
                parent: Some(parent),
                sampled: flags & 1 == 1,
            },
            None => Self {
                trace_id: TraceId(u128::from(nonzero(next_random)) << 64 | u128::from(next_random())),
                span_id: SpanId(nonzero(next_random)),
                parent: None,
                sampled: true,
            },
        }
    }

    /// The `traceparent` naming this server's span (version 00).
    pub fn traceparent(&self) -> String {
        String::from_utf8(self.traceparent_bytes().to_vec()).expect("hex digits and dashes")
    }

    /// [`Self::traceparent`] as a header value, written without formatting machinery (it is
    /// on every answer).
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.traceparent_bytes()).expect("hex digits and dashes")
    }

    fn traceparent_bytes(&self) -> [u8; 55] {
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
        put_hex(&mut text[3..35], self.trace_id.0);
        put_hex(&mut text[36..52], u128::from(self.span_id.0));
        put_hex(&mut text[53..55], u128::from(self.sampled));
        text
    }
}

/// Writes `value` into `out` as lowercase hex digits, right-aligned.
pub(super) fn put_hex(out: &mut [u8], mut value: u128) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// Reads a `traceparent`: `VERSION-TRACEID-PARENTID-FLAGS`, lowercase hex. Version `ff` is
/// invalid; a later version than 00 may append fields after a dash, which are ignored.
fn parse(header: &[u8]) -> Option<(TraceId, SpanId, u8)> {
    let version = hex(header.get(0..2)?)?;
    let fits = match version {
        0 => header.len() == 55,
        0xff => false,
        _ => header.len() == 55 || header.get(55) == Some(&b'-'),
    };
    if !fits || header[2] != b'-' || header[35] != b'-' || header[52] != b'-' {
        return None;
    }
    let trace_id = hex(&header[3..35])?;
    let parent = hex(&header[36..52])?;
    let flags = hex(&header[53..55])?;
    if trace_id == 0 || parent == 0 {
        return None;
    }
    Some((TraceId(trace_id), SpanId(parent as u64), flags as u8))
}

/// Lowercase hex digits only (the specification forbids uppercase), up to 32 of them.
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |value, digit| {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        Some(value << 4 | u128::from(nibble))
    })
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The trace of the request being handled by this task, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|context| *context).ok()
}

/// Runs `answer` (a request's handling) with `context` as its task's trace, for the log
/// lines it writes.
pub async fn in_scope<F: Future>(context: TraceContext, answer: F) -> F::Output {
    CURRENT.scope(context, answer).await
}

fn nonzero(draw: fn() -> u64) -> u64 {
    loop {
        let value = draw();
        if value != 0 {
            return value;
        }
    }
}

/// Random-looking ids without asking the kernel for every request: SplitMix64 over a
/// counter that starts at a random point. SplitMix64's mixing is a bijection, so no id
/// repeats within a process before 2^64 draws; the random start keeps processes apart.
fn next_random() -> u64 {
    static STATE: std::sync::OnceLock<AtomicU64> = std::sync::OnceLock::new();
    let state = STATE.get_or_init(|| {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("the operating system provides randomness");
        AtomicU64::new(u64::from_ne_bytes(seed))
    });
    let mut z = state
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_joined_with_a_new_span_of_this_server() {
        let context = TraceContext::from_header(Some(VALID.as_bytes()));
        assert_eq!(context.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            context.parent.map(|p| p.to_string()).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert!(context.sampled);
        assert_ne!(context.span_id, context.parent.unwrap());
        let back = context.traceparent();
        assert!(back.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{back}");
        assert!(back.ends_with("-01"));
        assert_eq!(back.len(), 55);
    }

    #[test]
    fn the_callers_decision_not_to_sample_is_kept() {
        let header = VALID.replace("-01", "-00");
        let context = TraceContext::from_header(Some(header.as_bytes()));
        assert!(!context.sampled);
        assert!(context.traceparent().ends_with("-00"));
    }

    #[test]
    fn a_later_version_is_read_as_version_00_and_its_extra_fields_ignored() {
        let header = format!("cc{}-what-comes-next", &VALID[2..]);
        let context = TraceContext::from_header(Some(header.as_bytes()));
        assert_eq!(context.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        let invalid = [
            String::new(),
            "garbage".to_owned(),
            VALID.to_uppercase(),
            VALID.replace("4bf92f3577b34da6a3ce929d0e0e4736", &"0".repeat(32)),
            VALID.replace("00f067aa0ba902b7", &"0".repeat(16)),
            format!("ff{}", &VALID[2..]),
            format!("{VALID}-extra"),
            VALID[..54].to_owned(),
            VALID.replace('-', "_"),
            VALID.replacen("4b", "4g", 1),
        ];
        for header in invalid {
            let context = TraceContext::from_header(Some(header.as_bytes()));
            assert_ne!(
                context.trace_id.to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{header}"
            );
            assert_eq!(context.parent, None, "{header}");
            assert!(context.sampled);
        }
    }

    #[test]
    fn new_traces_and_spans_differ_and_are_never_zero() {
        let a = TraceContext::from_header(None);
        let b = TraceContext::from_header(None);
        assert_ne!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, b.span_id);
        assert_ne!(a.trace_id.0, 0);
        assert_ne!(a.span_id.0, 0);
        assert_eq!(TraceContext::from_header(None).traceparent().len(), 55);
    }
}
