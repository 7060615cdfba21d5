//! Log lines for people, as a local server's terminal shows them: the time, the level, the
//! message and its fields, one short line each; none of the spans' fields, which the JSON
//! lines and the spans file keep.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `23:33:11.604  INFO task classified task.id=… task_type=BugFix`
pub struct Readable;

impl<S, N> FormatEvent<S, N> for Readable
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let time = chrono::Utc::now().format("%H:%M:%S%.3f");
        write!(writer, "{time} {:>5} ", event.metadata().level())?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
