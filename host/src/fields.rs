//! The rules a request's fields must meet, declared once. The validators
//! check values with them, and the OpenAPI document states them: the body
//! types name these schema functions in `#[schema(schema_with = …)]`, and
//! the query parameters in `#[param(schema_with = …)]`.
//!
//! `null` means absent in every body, so an optional field's schema also
//! admits `null`; a required one does not.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type};

/// Longest `workflow_name`, `trace_id`, `step_name`, `tool_name`,
/// `idempotency_key` and step id, in characters.
pub const LONG_TEXT: usize = 255;
/// Longest `source`, `step_type`, `model`, `provider` and `tool_type`, in
/// characters.
pub const SHORT_TEXT: usize = 100;
/// Fewest characters in an approval's `comment` or a rejection's `reason`,
/// counted after trimming white space.
pub const MIN_COMMENT_CHARS: usize = 10;

/// A gate's `retry_policy` that answers a repeated gate from the stored
/// decision (the default).
pub const IDEMPOTENT: &str = "idempotent";
/// A gate's `retry_policy` that runs the policies again.
pub const REEVALUATE: &str = "reevaluate";
/// The audit chain of global-policy events, named by `scope`.
pub const GLOBAL_CHAIN: &str = "global";

/// Policy names: lowercase ASCII letters, digits, `_` and `-`, starting
/// with a letter or digit, at most 64 bytes.
pub const POLICY_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

static POLICY_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(POLICY_NAME_PATTERN).ok());

/// Whether `name` is a valid policy name ([`POLICY_NAME_PATTERN`]).
pub fn is_policy_name(name: &str) -> bool {
    POLICY_NAME
        .as_ref()
        .is_some_and(|pattern| pattern.is_match(name))
}

/// Policy file names: `^[a-z0-9][a-z0-9_-]{0,63}$`.
pub fn valid_policy_name(name: &str) -> bool {
    is_policy_name(name)
}

/// Tenant ids: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`, never `global`.
pub fn valid_tenant_id(tenant: &str) -> bool {
    tenant != "global" && valid_identifier(tenant, 64)
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]*$`, at most `max_len` bytes: tenant ids and
/// orgs.
pub fn valid_identifier(text: &str, max_len: usize) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max_len
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// White space as Rust's `char::is_whitespace` and `str::trim` see it (the
/// Unicode `White_Space` property), spelt out: `\s` means something a
/// little different in ECMAScript, Python and Rust regular expressions, and
/// the pattern is read by all three.
const WHITE_SPACE: &str =
    r"\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A comment with at least [`MIN_COMMENT_CHARS`] characters from its first
/// to its last non-white-space character.
pub static COMMENT_PATTERN: LazyLock<String> = LazyLock::new(|| {
    let inner = MIN_COMMENT_CHARS.saturating_sub(2);
    format!(
        "^[{WHITE_SPACE}]*[^{WHITE_SPACE}][\\s\\S]{{{inner},}}[^{WHITE_SPACE}][{WHITE_SPACE}]*$"
    )
});

static COMMENT_REGEX: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(&COMMENT_PATTERN).ok());

/// Whether `text` is a long enough comment (see [`COMMENT_PATTERN`]).
pub fn is_comment(text: &str) -> bool {
    match COMMENT_REGEX.as_ref() {
        Some(regex) => regex.is_match(text),
        None => text.trim().chars().count() >= MIN_COMMENT_CHARS,
    }
}

/// `"{field} must be at most {max} characters"` when `value` is longer.
pub fn too_long(field: &str, value: Option<&str>, max: usize) -> Option<String> {
    value
        .filter(|value| value.chars().count() > max)
        .map(|_| format!("{field} must be at most {max} characters"))
}

/// Declares `$name`, a type with no values whose OpenAPI schema is the
/// rule `$rule()`, for a path parameter or body the handler reads as text
/// or bytes.
macro_rules! schema_type {
    ($(#[$doc:meta])* $name:ident => $rule:path) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $rule().into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use schema_type;

fn types(main: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([main, Type::Null])
    } else {
        SchemaType::new(main)
    }
}

fn bounded_text(min: usize, max: usize, nullable: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(types(Type::String, nullable))
        .min_length((min > 0).then_some(min))
        .max_length(Some(max))
        .build()
}

/// An optional text of at most [`LONG_TEXT`] characters.
pub fn long_text() -> Object {
    bounded_text(0, LONG_TEXT, true)
}

/// A required, non-empty text of at most [`LONG_TEXT`] characters.
pub fn required_long_text() -> Object {
    bounded_text(1, LONG_TEXT, false)
}

/// An optional text of at most [`SHORT_TEXT`] characters.
pub fn short_text() -> Object {
    bounded_text(0, SHORT_TEXT, true)
}

/// A required, non-empty text of at most [`SHORT_TEXT`] characters.
pub fn required_short_text() -> Object {
    bounded_text(1, SHORT_TEXT, false)
}

/// An optional text of any length.
pub fn optional_text() -> Object {
    ObjectBuilder::new()
        .schema_type(types(Type::String, true))
        .build()
}

/// A text of any length (not `null`).
pub fn plain_text() -> Object {
    ObjectBuilder::new().schema_type(Type::String).build()
}

/// A policy name in a path ([`POLICY_NAME_PATTERN`]).
pub fn policy_name() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(POLICY_NAME_PATTERN))
        .build()
}

/// The checkpoint id `text` names, when it is a whole number from 1 to
/// `i64::MAX` (the rule [`checkpoint_id`] states).
pub fn checkpoint_id_of(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|id| *id > 0)
}

/// A checkpoint id in a path: a whole number from 1 to `i64::MAX`.
pub fn checkpoint_id() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(isize::try_from(i64::MAX).unwrap_or(isize::MAX)))
        .build()
}

/// Bytes, as the body of an upload.
pub fn binary() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
        .build()
}

/// `number` as a whole number, as JSON Schema's `integer` means it: an
/// integer, or a number with no fraction (`25.0`, `1e3`); `None` for one
/// with a fraction or past 128 bits.
fn whole_of(number: &serde_json::Number) -> Option<i128> {
    if let Some(whole) = number.as_i64() {
        return Some(whole.into());
    }
    if let Some(whole) = number.as_u64() {
        return Some(whole.into());
    }
    // 2^127 as a double.
    const PAST_I128: f64 = 1.7014118346046923e38;
    let float = number.as_f64()?;
    // Exact: whole and within range.
    (float.fract() == 0.0 && float.abs() < PAST_I128).then_some(float as i128)
}

/// `number` as a whole number within `min..=max`, as `T`; the error names
/// the number and what was expected.
fn fit<T, E>(number: &serde_json::Number, min: i128, max: i128) -> Result<T, E>
where
    T: TryFrom<i128>,
    E: serde::de::Error,
{
    use serde::de::Unexpected;
    let unexpected = match number.as_f64() {
        Some(float) => Unexpected::Float(float),
        None => Unexpected::Other("a number"),
    };
    let Some(value) = whole_of(number) else {
        return Err(E::invalid_value(unexpected, &"a whole number"));
    };
    (min..=max)
        .contains(&value)
        .then(|| T::try_from(value).ok())
        .flatten()
        .ok_or_else(|| {
            let fitting = format!("a whole number from {min} to {max}");
            E::invalid_value(unexpected, &fitting.as_str())
        })
}

/// An optional token count as a body sends it (an integer, or a number
/// with no fraction); a negative one is read, for the validator to refuse
/// by name.
pub fn whole_number<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(|number| fit(&number, i64::MIN.into(), i64::MAX.into()))
        .transpose()
}

/// A `u64` as a body sends it (an integer, or a number with no fraction).
pub fn whole_u64_value<'de, D>(deserializer: D) -> Result<u64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    fit(
        &serde_json::Number::deserialize(deserializer)?,
        0,
        u64::MAX.into(),
    )
}

/// A `u32` as a body sends it (an integer, or a number with no fraction).
pub fn whole_u32_value<'de, D>(deserializer: D) -> Result<u32, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    fit(
        &serde_json::Number::deserialize(deserializer)?,
        0,
        u32::MAX.into(),
    )
}

/// A required comment or reason (see [`COMMENT_PATTERN`]).
pub fn comment() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(COMMENT_PATTERN.as_str()))
        .build()
}

/// An optional count of tokens: a whole number from 0 to `i64::MAX`, the
/// largest the store keeps.
pub fn token_count() -> Object {
    ObjectBuilder::new()
        .schema_type(types(Type::Integer, true))
        .minimum(Some(0))
        .maximum(Some(isize::try_from(i64::MAX).unwrap_or(isize::MAX)))
        .build()
}

/// A whole number from 0 to `u32::MAX`.
pub fn whole_u32() -> Object {
    whole(u64::from(u32::MAX))
}

/// A whole number from 0 to `u64::MAX`.
pub fn whole_u64() -> Object {
    whole(u64::MAX)
}

fn whole(max: u64) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(usize::try_from(max).unwrap_or(usize::MAX)))
        .build()
}

/// Any number.
pub fn any_number() -> Object {
    ObjectBuilder::new().schema_type(Type::Number).build()
}

/// An optional cost in US dollars: a number from 0.
pub fn cost() -> Object {
    ObjectBuilder::new()
        .schema_type(types(Type::Number, true))
        .minimum(Some(0))
        .build()
}

/// An optional JSON object of any members.
pub fn any_object() -> Object {
    ObjectBuilder::new()
        .schema_type(types(Type::Object, true))
        .build()
}

/// One of `values`; in a body, where `null` and `""` mean absent, also
/// those.
fn choice(values: &[&str], in_body: bool) -> Object {
    let mut allowed: Vec<Value> = values.iter().map(|value| json!(value)).collect();
    if in_body {
        allowed.extend([json!(""), Value::Null]);
    }
    ObjectBuilder::new()
        .schema_type(types(Type::String, in_body))
        .enum_values(Some(allowed))
        .build()
}

/// A gate's optional `retry_policy`.
pub fn retry_policy() -> Object {
    choice(&[IDEMPOTENT, REEVALUATE], true)
}

/// The audit routes' optional `scope` query parameter.
pub fn audit_scope() -> Object {
    choice(&[GLOBAL_CHAIN], false)
}

/// A page size query parameter: a whole number from 1; larger than a
/// list's maximum means the maximum.
pub fn page_limit() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .build()
}

/// A page offset query parameter: a whole number from 0 to `u64::MAX`.
pub fn page_offset() -> Object {
    whole_u64()
}

/// An RFC 3339 timestamp query parameter.
pub fn timestamp() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .build()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_comment_pattern_is_the_trimmed_character_count() {
        let cases = [
            ("", false),
            ("123456789", false),
            ("1234567890", true),
            ("  123456789  ", false),
            ("\u{3000}1234567890\u{2029}", true),
            ("承認しました、どうぞ", true),
            ("承認しました", false),
            ("a        b", true),
            ("a\n\n\n\n\n\n\n\nb", true),
            ("\u{feff}12345678\u{feff}", true),
            ("\u{1c}12345678\u{1f}", true),
        ];
        for (text, long_enough) in cases {
            assert_eq!(is_comment(text), long_enough, "{text:?}");
            assert_eq!(
                text.trim().chars().count() >= MIN_COMMENT_CHARS,
                long_enough,
                "{text:?}"
            );
        }
        assert!(COMMENT_REGEX.is_some(), "{}", *COMMENT_PATTERN);
    }

    #[test]
    fn whole_numbers_are_read_however_they_are_written() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            #[serde(default, deserialize_with = "whole_number")]
            signed: Option<i64>,
            #[serde(default, deserialize_with = "whole_u64_value")]
            unsigned: u64,
            #[serde(default, deserialize_with = "whole_u32_value")]
            small: u32,
        }
        let read = |text: &str| serde_json::from_str::<Body>(text);
        let body = read(r#"{"signed": 25.0, "unsigned": 1e3, "small": 4294967295}"#).unwrap();
        assert_eq!(
            (body.signed, body.unsigned, body.small),
            (Some(25), 1000, u32::MAX)
        );
        let body = read(r#"{"signed": null, "unsigned": 18446744073709551615}"#).unwrap();
        assert_eq!((body.signed, body.unsigned), (None, u64::MAX));
        assert_eq!(read(r#"{"signed": -9.0}"#).unwrap().signed, Some(-9));
        for (text, message) in [
            (r#"{"signed": 2.5}"#, "expected a whole number"),
            (
                r#"{"signed": 9223372036854775808}"#,
                "from -9223372036854775808 to 9223372036854775807",
            ),
            (
                r#"{"signed": 1e19}"#,
                "from -9223372036854775808 to 9223372036854775807",
            ),
            (r#"{"unsigned": -1}"#, "from 0 to 18446744073709551615"),
            (r#"{"small": 4294967296}"#, "from 0 to 4294967295"),
            (r#"{"signed": "7"}"#, "expected"),
            (r#"{"unsigned": null}"#, "expected"),
        ] {
            let error = read(text).unwrap_err().to_string();
            assert!(error.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn the_white_space_class_is_rusts_white_space() {
        let class = Regex::new(&format!("^[{WHITE_SPACE}]$")).unwrap();
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(
                class.is_match(c.encode_utf8(&mut [0; 4])),
                c.is_whitespace(),
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn policy_names_follow_the_contract() {
        for name in ["a", "tool-approval", "pii_guard2", "0x", &"a".repeat(64)] {
            assert!(valid_policy_name(name), "{name}");
        }
        for name in ["", "Tool", "-x", "_x", "a.b", "a b", &"a".repeat(65)] {
            assert!(!valid_policy_name(name), "{name}");
        }
    }

    #[test]
    fn tenant_ids_follow_the_contract() {
        for tenant in ["acme", "Acme.Corp_1-2", "7"] {
            assert!(valid_tenant_id(tenant), "{tenant}");
        }
        for tenant in ["global", "", ".x", "a/b", "a b", &"t".repeat(65)] {
            assert!(!valid_tenant_id(tenant), "{tenant}");
        }
    }
}
