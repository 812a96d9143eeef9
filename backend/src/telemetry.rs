//! Logs: human-readable lines by default, one JSON object per line on request
//! (`--log-format json`), filtered by `RUST_LOG` (default `info`). A JSON line written while
//! a request is handled starts with the request's `trace_id` (W3C Trace Context, see
//! `http::trace`).

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;
use crate::http::trace;

/// Installs the global subscriber. Calling it again (as tests that start several apps do)
/// keeps the first one.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _already_set = match format {
        LogFormat::Pretty => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(true)
            .try_init(),
        LogFormat::Json => {
            let json = tracing_subscriber::fmt::format()
                .json()
                .with_target(true)
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false);
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .fmt_fields(JsonFields::new())
                .event_format(WithTraceId(json))
                .try_init()
        }
    };
}

/// A JSON event format that puts `"trace_id"` first in the lines of a request.
struct WithTraceId<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    F: FormatEvent<S, N>,
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(trace) = trace::current() else {
            return self.0.format_event(context, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(context, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"trace_id\":\"{}\",{rest}", trace.trace_id),
            None => writer.write_str(&line),
        }
    }
}
