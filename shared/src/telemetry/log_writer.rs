//! Log lines that name their service: each JSON line the formatter writes gets a
//! `service` field first, so lines from every function can be searched together.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Standard output, each line tagged with `service`.
pub struct ServiceStdout {
    pub service: &'static str,
}

impl<'a> MakeWriter<'a> for ServiceStdout {
    type Writer = Tagged<io::Stdout>;

    fn make_writer(&'a self) -> Self::Writer {
        Tagged::new(self.service, io::stdout())
    }
}

/// Writes one formatted event (the formatter makes one writer an event), opening its
/// JSON object with the service.
pub struct Tagged<W> {
    service: &'static str,
    inner: W,
    started: bool,
}

impl<W: Write> Tagged<W> {
    pub fn new(service: &'static str, inner: W) -> Self {
        Tagged {
            service,
            inner,
            started: false,
        }
    }
}

impl<W: Write> Write for Tagged<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.started {
            self.started = true;
            if let Some(rest) = buf.strip_prefix(b"{") {
                let tagged = [
                    format!("{{\"service\":\"{}\",", self.service).as_bytes(),
                    rest,
                ]
                .concat();
                self.inner.write_all(&tagged)?;
                return Ok(buf.len());
            }
        }
        self.inner.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_json_line_is_written_should_open_with_the_service() {
        let mut out = Vec::new();
        let mut writer = Tagged::new("task-api", &mut out);

        writer.write_all(b"{\"level\":\"INFO\"}\n").unwrap();

        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["service"], "task-api");
        assert_eq!(line["level"], "INFO");
    }
}
