//! W3C trace context for events, taken from the request that caused them.
//! Lambda behind API Gateway carries an X-Ray header; it maps onto `traceparent` losslessly.

/// The `traceparent` to stamp on events: the caller's own when valid, else one derived from
/// an X-Ray trace header (`Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>`).
pub fn traceparent(w3c: Option<&str>, xray: Option<&str>) -> Option<String> {
    if let Some(value) = w3c.map(str::trim).filter(|v| is_valid_traceparent(v)) {
        return Some(value.to_ascii_lowercase());
    }
    xray.and_then(from_xray)
}

fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    matches!(parts.as_slice(), [version, trace, parent, flags]
        if version.len() == 2 && *version != "ff" && is_hex(version)
            && trace.len() == 32 && is_hex(trace) && !is_zero(trace)
            && parent.len() == 16 && is_hex(parent) && !is_zero(parent)
            && flags.len() == 2 && is_hex(flags))
}

fn from_xray(header: &str) -> Option<String> {
    let mut root = None;
    let mut parent = None;
    let mut sampled = "00";
    for field in header.split(';') {
        match field.trim().split_once('=') {
            Some(("Root", value)) => root = Some(value),
            Some(("Parent", value)) => parent = Some(value),
            Some(("Sampled", "1")) => sampled = "01",
            _ => {}
        }
    }
    let mut root_parts = root?.split('-');
    let (Some("1"), Some(epoch), Some(unique), None) = (
        root_parts.next(),
        root_parts.next(),
        root_parts.next(),
        root_parts.next(),
    ) else {
        return None;
    };
    let trace_id = format!("{epoch}{unique}").to_ascii_lowercase();
    let parent = parent?.to_ascii_lowercase();
    let candidate = format!("00-{trace_id}-{parent}-{sampled}");
    is_valid_traceparent(&candidate).then_some(candidate)
}

fn is_hex(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_zero(value: &str) -> bool {
    value.bytes().all(|b| b == b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_caller_sends_valid_traceparent_should_keep_it() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(traceparent(Some(header), None).as_deref(), Some(header));
    }

    #[test]
    fn when_only_xray_header_is_present_should_derive_traceparent() {
        let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        assert_eq!(
            traceparent(None, Some(xray)).as_deref(),
            Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01")
        );
    }

    #[test]
    fn when_headers_are_malformed_should_give_none() {
        assert_eq!(traceparent(Some("00-zz-11-01"), None), None);
        assert_eq!(
            traceparent(
                Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
                None
            ),
            None
        );
        assert_eq!(traceparent(None, Some("Root=1-abc;Parent=1")), None);
        assert_eq!(
            traceparent(None, Some("Root=1-5759e988-bd862e3fe1be46a994272793")),
            None
        );
    }
}
