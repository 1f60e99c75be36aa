//! Timestamps in the one format the API uses: RFC 3339 UTC with six
//! fractional digits and a `Z` (`2026-03-01T12:00:00.123456Z`).

use time::OffsetDateTime;
use time::macros::format_description;

/// Formats a time in the API's timestamp format.
pub fn rfc3339(at: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000000Z"))
}

/// The current time in the API's timestamp format.
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    #[test]
    fn six_fraction_digits_and_z() {
        let at = datetime!(2026-03-01 12:00:00.123456789 UTC);
        assert_eq!(super::rfc3339(at), "2026-03-01T12:00:00.123456Z");
    }
}
