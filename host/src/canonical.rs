//! RFC 8785 (JCS) text of JSON values, written in one pass.
//!
//! The audit chain hashes JCS text (contract §7), and gates compare and
//! hash step inputs by it. serde_json_canonicalizer produces the same text
//! through serde's generic serializer, buffering every object member and
//! parsing every key back to sort it; on a gate's audit entry that was a
//! seventh of the store writer's time. A `serde_json::Value` already holds
//! parsed keys and numbers, so this writes it directly:
//!
//! - object members sorted by the UTF-16 code units of their keys;
//! - numbers as the ECMAScript double they denote (ryu-js, as the crate);
//! - strings with JSON's minimal escapes (serde_json's, which JCS shares).
//!
//! The tests hold it to serde_json_canonicalizer byte for byte.

use serde_json::{Map, Value};

/// The JCS text of `value`.
pub fn to_string(value: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, value);
    // Only UTF-8 was written: JSON punctuation, ASCII numbers and the
    // escaped text of `str`s.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the JCS text of `value` to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Without serde_json's `arbitrary_precision`, every number has an
        // f64 view: integers convert as JCS says (`as f64`).
        Value::Number(number) => write_f64(out, number.as_f64().unwrap_or(0.0)),
        Value::String(text) => write_str(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(members) => write_object(out, members),
    }
}

/// Appends the JCS text of the object `members` to `out`.
pub fn write_object(out: &mut Vec<u8>, members: &Map<String, Value>) {
    out.push(b'{');
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, key: &str, value: &Value| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, value);
    };
    // serde_json's map is ordered by code point. UTF-16 order differs only
    // between a character from U+E000 to U+FFFF and one above U+FFFF (a
    // surrogate pair sorts first): UTF-8 lead bytes 0xEE and up.
    if members
        .keys()
        .any(|key| key.bytes().any(|byte| byte >= 0xEE))
    {
        let mut sorted: Vec<(Vec<u16>, &String, &Value)> = members
            .iter()
            .map(|(key, value)| (key.encode_utf16().collect(), key, value))
            .collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, key, value) in sorted {
            member(out, key, value);
        }
    } else {
        for (key, value) in members {
            member(out, key, value);
        }
    }
    out.push(b'}');
}

/// Appends `text` as a JSON string: `"` and `\` escaped, control
/// characters as `\b \t \n \f \r` or `\u00xx`, everything else as is.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    // Writing to a Vec cannot fail, nor can serialising a str.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Appends `number` as ECMAScript's `Number.prototype.toString` writes it.
/// JSON values are always finite.
pub fn write_f64(out: &mut Vec<u8>, number: f64) {
    let mut buffer = ryu_js::Buffer::new();
    out.extend_from_slice(buffer.format(number).as_bytes());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::{Value, json};

    use super::to_string;

    fn reference(value: &Value) -> String {
        serde_json_canonicalizer::to_string(value).unwrap()
    }

    #[test]
    // The RFC's example numbers, as the RFC writes them.
    #[allow(clippy::excessive_precision)]
    fn matches_serde_json_canonicalizer_on_the_rfc_examples_and_edge_cases() {
        let cases = [
            // RFC 8785 §3.2.3's example object.
            json!({
                "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
                "string": "\u{20ac}$\u{000F}\u{000a}A'\u{0042}\u{0022}\u{005c}\\\"/",
                "literals": [null, true, false]
            }),
            // RFC 8785 §3.2.3's sorting example: UTF-16 order, not code points.
            json!({"\u{20ac}": "Euro Sign", "\r": "Carriage Return",
                   "\u{fb33}": "Hebrew Letter Dalet With Dagesh", "1": "One",
                   "\u{1f600}": "Emoji: Grinning Face", "\u{0080}": "Control",
                   "\u{00f6}": "Latin Small Letter O With Diaeresis"}),
            json!({"\u{ffff}": 1, "\u{10000}": 2, "\u{e000}": 3, "\u{d7ff}": 4, "z": 5}),
            json!([
                0,
                -0.0,
                1.0,
                -1,
                100,
                1e21,
                1e-7,
                123456789012345678_u64,
                -9007199254740993_i64,
                u64::MAX,
                i64::MIN,
                0.1,
                5e-324,
                1.7976931348623157e308
            ]),
            json!({"nested": {"b": [1, {"d": 2, "c": 3}], "a": {}}, "empty": [], "s": ""}),
            json!("tab\there, bell \u{7}, del \u{7f}, nul \u{0}, unit sep \u{1f}"),
            json!(null),
        ];
        for case in &cases {
            assert_eq!(to_string(case), reference(case), "{case}");
        }
    }

    #[test]
    // The audit chain is verified by parsing stored text and hashing its
    // canonical text again, so parsing canonical text must give back the
    // same number. serde_json's default float parser can land one ulp off
    // on long mantissas (an integer past u64, or the exponent form of it);
    // the workspace enables its `float_roundtrip` parser.
    fn canonical_text_parses_back_to_the_same_canonical_text() {
        let texts = [
            "1111115155515551555155",
            "1.111115155515551555155e21",
            "123456789012345678901234567890",
            "0.30000000000000004441",
            "2.2250738585072011e-308",
            "9007199254740993.0000001",
            "[1e400000, -1e-400000]",
        ];
        for text in texts {
            let Ok(value) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            let canonical = to_string(&value);
            let again: Value = serde_json::from_str(&canonical).unwrap();
            assert_eq!(to_string(&again), canonical, "{text}");
            assert_eq!(canonical, reference(&value), "{text}");
        }
    }

    #[test]
    fn matches_serde_json_canonicalizer_on_generated_values() {
        // A small deterministic generator: nested objects and arrays with
        // keys and strings drawn from tricky characters, integers of every
        // size and fractional numbers.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = [
            "a",
            "B",
            "_",
            "\"",
            "\\",
            "/",
            "\n",
            "\u{1}",
            "\u{7f}",
            "é",
            "\u{20ac}",
            "\u{e000}",
            "\u{ffff}",
            "\u{1f600}",
            "\u{10000}",
            " ",
        ];
        fn text(next: &mut impl FnMut() -> u64, alphabet: &[&str]) -> String {
            let len = next() % 5;
            (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        }
        fn value(next: &mut impl FnMut() -> u64, alphabet: &[&str], depth: u32) -> Value {
            match next() % if depth > 3 { 5 } else { 7 } {
                0 => Value::Null,
                1 => Value::Bool(next().is_multiple_of(2)),
                2 => json!(next() as i64 >> (next() % 64)),
                3 => json!((next() % 2_000_000) as f64 / 1000.0 - 1000.0),
                4 => Value::String(text(next, alphabet)),
                5 => Value::Array(
                    (0..next() % 4)
                        .map(|_| value(next, alphabet, depth + 1))
                        .collect(),
                ),
                _ => Value::Object(
                    (0..next() % 5)
                        .map(|_| (text(next, alphabet), value(next, alphabet, depth + 1)))
                        .collect(),
                ),
            }
        }
        for _ in 0..5000 {
            let case = value(&mut next, &alphabet, 0);
            assert_eq!(to_string(&case), reference(&case), "{case}");
        }
    }
}
