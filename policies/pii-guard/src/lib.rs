//! Blocks steps whose input carries personal data.
//!
//! Every string value of the step input and of the tool input
//! (`tool_context.tool_input`), however deeply nested in objects and arrays,
//! is scanned for:
//!
//! - a US social security number, `ddd-dd-dddd`, not inside a longer run of
//!   digits, with a valid area (not `000`, `666` or `900`–`999`), group (not
//!   `00`) and serial (not `0000`);
//! - a payment card number: 13 to 19 digits, optionally split by single spaces
//!   or dashes, not inside a longer run of digits, starting with 2 to 6 (the
//!   card networks' ranges: Mastercard, Amex, Visa, Discover, UnionPay, ...),
//!   passing the Luhn check. The leading-digit rule keeps millisecond
//!   timestamps and other long ids, one in ten of which passes Luhn, from
//!   being taken for cards;
//! - with `block_emails`, an email address (`local@domain.tld`, approximately).
//!
//! A match blocks the step. The reason names the kind of data and where it was
//! found, never the value itself. Object keys and non-string values (numbers,
//! booleans) are not scanned. The scanners are hand-written loops over bytes;
//! [`scan_text`] exposes them for native use.
//!
//! # Settings
//!
//! | key            | type | default |
//! |----------------|------|---------|
//! | `block_emails` | bool | `false` |
use serde::Deserialize;
use wcp_policy_sdk::{Decision, Request, SettingsError, Value, export_policy};

/// The policy's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    /// Treat email addresses as personal data too.
    block_emails: bool,
}

/// A kind of personal data the policy detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiiKind {
    /// A US social security number.
    Ssn,
    /// A Luhn-valid payment card number.
    PaymentCard,
    /// An email address.
    Email,
}

impl PiiKind {
    /// The kind, as a reason phrases it: `a payment card number`.
    pub fn description(self) -> &'static str {
        match self {
            PiiKind::Ssn => "a US social security number",
            PiiKind::PaymentCard => "a payment card number",
            PiiKind::Email => "an email address",
        }
    }
}

/// Blocks a step whose step input or tool input contains personal data.
pub fn evaluate(request: &Request) -> Result<Decision, SettingsError> {
    let settings: Settings = request.settings()?;
    let tool_input = request.step().tool().map(|tool| tool.input());
    let sources = [
        ("step input", Some(request.input())),
        ("tool input", tool_input),
    ];
    for (source, value) in sources {
        if let Some(kind) = value.and_then(|value| scan_value(value, settings.block_emails)) {
            return Ok(Decision::block(format!(
                "{source} contains {}",
                kind.description()
            )));
        }
    }
    Ok(Decision::allow())
}

export_policy!(evaluate);

/// The first personal data found in any string inside `value`.
pub fn scan_value(value: &Value, block_emails: bool) -> Option<PiiKind> {
    match value {
        Value::String(text) => scan_text(text, block_emails),
        Value::Array(items) => items.iter().find_map(|item| scan_value(item, block_emails)),
        Value::Object(fields) => fields
            .values()
            .find_map(|item| scan_value(item, block_emails)),
        _ => None,
    }
}

/// The personal data in `text`, if any: an SSN first, then a card number,
/// then (when `block_emails`) an email address.
pub fn scan_text(text: &str, block_emails: bool) -> Option<PiiKind> {
    let bytes = text.as_bytes();
    let run_starts = || (0..bytes.len()).filter(|&i| starts_digit_run(bytes, i));
    if run_starts().any(|i| ssn_at(bytes, i)) {
        Some(PiiKind::Ssn)
    } else if run_starts().any(|i| card_at(bytes, i)) {
        Some(PiiKind::PaymentCard)
    } else if block_emails && has_email(bytes) {
        Some(PiiKind::Email)
    } else {
        None
    }
}

fn is_digit(byte: &u8) -> bool {
    byte.is_ascii_digit()
}

/// `bytes[i]` is a digit that does not follow another digit.
fn starts_digit_run(bytes: &[u8], i: usize) -> bool {
    is_digit(&bytes[i]) && (i == 0 || !is_digit(&bytes[i - 1]))
}

/// A valid `ddd-dd-dddd` starts at `i` and no digit follows it.
fn ssn_at(bytes: &[u8], i: usize) -> bool {
    let Some(w) = bytes.get(i..i + 11) else {
        return false;
    };
    let shaped = w.iter().enumerate().all(|(k, byte)| match k {
        3 | 6 => *byte == b'-',
        _ => is_digit(byte),
    });
    let (area, group, serial) = (&w[..3], &w[4..6], &w[7..]);
    shaped
        && !bytes.get(i + 11).is_some_and(is_digit)
        && area != b"000"
        && area != b"666"
        && area[0] != b'9'
        && group != b"00"
        && serial != b"0000"
}

/// A Luhn-valid number of 13 to 19 digits, in groups split by single spaces or
/// dashes, with a card network's leading digit (2-6), starts at `i` and ends
/// where a run of digits ends.
fn card_at(bytes: &[u8], mut i: usize) -> bool {
    let mut digits = [0u8; 19];
    let mut count = 0;
    loop {
        match bytes.get(i) {
            Some(byte) if is_digit(byte) => {
                if count == digits.len() {
                    return false;
                }
                digits[count] = byte - b'0';
                count += 1;
            }
            next => {
                if count >= 13 && (2..=6).contains(&digits[0]) && luhn(&digits[..count]) {
                    return true;
                }
                let separator = matches!(next, Some(b' ' | b'-'));
                if !separator || !bytes.get(i + 1).is_some_and(is_digit) {
                    return false;
                }
            }
        }
        i += 1;
    }
}

/// The Luhn checksum of `digits` (values 0-9) is valid.
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &digit)| {
            let digit = u32::from(digit);
            match k % 2 {
                0 => digit,
                _ if digit > 4 => digit * 2 - 9,
                _ => digit * 2,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Some `@` follows a local-part character and precedes a domain of dotted,
/// non-empty labels whose last label is at least two letters.
fn has_email(bytes: &[u8]) -> bool {
    let local = |b: &u8| b.is_ascii_alphanumeric() || b"._%+-".contains(b);
    let domain = |b: &u8| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-';
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'@')
        .any(|(at, _)| {
            let rest = &bytes[at + 1..];
            let end = rest.iter().position(|b| !domain(b)).unwrap_or(rest.len());
            let host = rest[..end].strip_suffix(b".").unwrap_or(&rest[..end]);
            let Some(dot) = host.iter().rposition(|b| *b == b'.') else {
                return false;
            };
            let tld = &host[dot + 1..];
            at > 0
                && local(&bytes[at - 1])
                && !host.split(|b| *b == b'.').any(<[u8]>::is_empty)
                && tld.len() >= 2
                && tld.iter().all(u8::is_ascii_alphabetic)
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wcp_policy_sdk::{json, testing::RequestBuilder};

    const SSN: Option<PiiKind> = Some(PiiKind::Ssn);
    const CARD: Option<PiiKind> = Some(PiiKind::PaymentCard);
    const EMAIL: Option<PiiKind> = Some(PiiKind::Email);

    #[test]
    fn finds_ssns_and_card_numbers() {
        let cases = [
            ("ssn 123-45-6789 on file", SSN),
            ("078-05-1120", SSN),
            ("000-12-3456", None), // area 000
            ("666-12-3456", None), // area 666
            ("912-34-5678", None), // area 900-999
            ("123-00-4567", None), // group 00
            ("123-45-0000", None), // serial 0000
            ("9123-45-6789", None),
            ("123-45-67890", None),
            ("123456789", None),
            ("123 45 6789", None),
            ("card: 4111 1111 1111 1111.", CARD),
            ("4111-1111-1111-1111", CARD),
            ("4111111111111111", CARD),
            ("3782 822463 10005", CARD), // 15-digit Amex
            ("4111 1111 1111 1111 2030", CARD),
            ("4111 1111 1111 1112", None),  // fails Luhn
            ("94111111111111111", None),    // inside a longer run
            ("4111  1111 1111 1111", None), // double separator
            ("411111111116", None),         // 12 digits
            ("41111111111111111111111", None),
            ("at 1763900000003 ms", None), // Luhn-valid timestamp, no card network
            ("5555 5555 5555 4444", CARD), // Mastercard
            ("6011 1111 1111 1117", CARD), // Discover
            ("jane.doe@example.com", None), // emails are off
            ("summary ☃ 2025-01-31, +1 555 0100", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(scan_text(text, false), expected, "{text:?}");
        }
    }

    #[test]
    fn finds_emails_when_asked() {
        let cases = [
            ("write to jane.doe@example.com", EMAIL),
            ("mail a+tag@mail.example.co.uk.", EMAIL),
            ("ping @jane", None),
            ("user@localhost", None),
            ("user@10.0.0.1", None),
            ("a@b..com", None),
            ("trailing@", None),
            ("card 4111 1111 1111 1111 or a@b.io", CARD),
        ];
        for (text, expected) in cases {
            assert_eq!(scan_text(text, true), expected, "{text:?}");
        }
    }

    #[test]
    fn blocks_by_input_and_names_the_kind_only() {
        let ssn = "123-45-6789";
        let card = "4111 1111 1111 1111";
        let email = "a@example.com";
        let on = json!({"block_emails": true});
        let cases = [
            (
                "nested step input",
                json!({"a": {"b": [1, {"c": ssn}]}}),
                json!({}),
                json!({}),
                Some("step input contains a US social security number"),
            ),
            (
                "string in an array",
                json!({"notes": ["ok", format!("pay with {card}")]}),
                json!({}),
                json!({}),
                Some("step input contains a payment card number"),
            ),
            (
                "tool input",
                json!({}),
                json!({"body": {"to": [card]}}),
                json!({}),
                Some("tool input contains a payment card number"),
            ),
            (
                "emails off",
                json!({ "to": email }),
                json!({}),
                json!({}),
                None,
            ),
            (
                "emails on",
                json!({}),
                json!({ "to": email }),
                on,
                Some("tool input contains an email address"),
            ),
            (
                "numbers are not scanned",
                json!({"n": 4111111111111111_u64}),
                json!({}),
                json!({}),
                None,
            ),
            (
                "keys are not scanned",
                json!({ ssn: 1 }),
                json!({}),
                json!({}),
                None,
            ),
            (
                "clean",
                json!({"q": "hi"}),
                json!({"x": "y"}),
                json!({}),
                None,
            ),
        ];
        for (name, input, tool_input, settings, expected) in cases {
            let request = RequestBuilder::new("tool_call")
                .input(input)
                .tool("send")
                .tool_input(tool_input)
                .settings(settings)
                .build();
            let decision = evaluate(&request).unwrap();
            assert_eq!(decision.reason(), expected, "{name}");
            assert_eq!(decision.is_block(), expected.is_some(), "{name}");
            let reason = decision.reason().unwrap_or_default();
            for value in [ssn, card, "4111", "6789", email] {
                assert!(!reason.contains(value), "{name}: reason echoes {value}");
            }
        }
    }

    #[test]
    fn malformed_settings_are_an_error() {
        let request = RequestBuilder::new("llm_call").settings(json!({"block_emails": "yes"}));
        assert!(evaluate(&request.build()).is_err());
    }
}
