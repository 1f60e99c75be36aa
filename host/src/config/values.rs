//! The text forms of setting values: durations, CORS origins, URLs.

use std::time::Duration;

/// `500ms`, `30s`, `15m`, `24h`, `7d`; zero is refused.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => return (number > 0).then(|| Duration::from_millis(number)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    (number > 0).then(|| number.checked_mul(seconds).map(Duration::from_secs))?
}

/// An origin as a browser sends it: scheme and host (and port), no path.
pub(super) fn check_origin(origin: &str) -> Result<String, &'static str> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or("an origin looks like http://host:port (never *)")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '*']) {
        return Err("an origin is a scheme and a host, like http://localhost:3000, with no path");
    }
    Ok(origin.to_owned())
}

pub(super) fn is_http_url(url: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        url.strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty())
    })
}
