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

/// The URL of a PostgreSQL database. Its `Debug` form hides the password,
/// so a logged configuration never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// `url` if it is a `postgres://` or `postgresql://` URL.
    pub(super) fn parse(url: &str) -> Option<DatabaseUrl> {
        ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| {
                url.strip_prefix(scheme)
                    .is_some_and(|rest| !rest.is_empty())
            })
            .then(|| DatabaseUrl(url.to_owned()))
    }

    /// The URL as given, password included: for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", &self.0));
        let shown = match rest.split_once('@') {
            Some((user, host)) => {
                let user = user.split_once(':').map_or(user, |(name, _)| name);
                format!("{scheme}://{user}:***@{host}")
            }
            None => self.0.clone(),
        };
        f.debug_tuple("DatabaseUrl").field(&shown).finish()
    }
}

pub(super) fn is_http_url(url: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        url.strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty())
    })
}
