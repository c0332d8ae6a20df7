//! Python's `str()` and `repr()` of template values.
//!
//! Jinja2 prints values with `str()`: `None`, `True`, `1.0`, `['a', 1]`, `{'k': 'v'}`.
//! minijinja's own display differs (`none`, `true`, `["a", 1]`), so output, `|string`
//! and `|join` go through these functions instead.

use minijinja::value::{Value, ValueKind};

use super::pyvalue::{is_generator, is_tuple};

/// Python `str(value)`; strings are written as they are, everything else as `repr`.
pub(crate) fn py_str(value: &Value) -> String {
    let mut out = String::new();
    write_str(value, &mut out);
    out
}

/// Python `repr(value)`.
#[cfg(test)]
pub(crate) fn py_repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(value, &mut out);
    out
}

pub(crate) fn write_str(value: &Value, out: &mut String) {
    match value.kind() {
        // jinja2's Undefined prints as the empty string.
        ValueKind::Undefined => {}
        ValueKind::String => out.push_str(value.as_str().unwrap_or_default()),
        _ => write_repr(value, out),
    }
}

pub(crate) fn write_repr(value: &Value, out: &mut String) {
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => write_number(value, out),
        ValueKind::String => write_str_repr(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq if is_tuple(value) => {
            out.push('(');
            let items: Vec<Value> = value.try_iter().map(Iterator::collect).unwrap_or_default();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(item, out);
            }
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        ValueKind::Seq => {
            out.push('[');
            if let Ok(items) = value.try_iter() {
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(&item, out);
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            if let Ok(keys) = value.try_iter() {
                for (i, key) in keys.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(&key, out);
                    out.push_str(": ");
                    let item = value.get_item(&key).unwrap_or(Value::UNDEFINED);
                    write_repr(&item, out);
                }
            }
            out.push('}');
        }
        // Lazy lists (minijinja's `list + list`) print as lists; generators do not.
        ValueKind::Iterable if !is_generator(value) => {
            out.push('[');
            if let Ok(items) = value.try_iter() {
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_repr(&item, out);
                }
            }
            out.push(']');
        }
        // PyNone prints `None` through its own rendering. Generators, namespaces, macros: Python prints `<... object at 0x...>`, which no
        // template can depend on; minijinja's rendering is as good as any.
        _ => out.push_str(&value.to_string()),
    }
}

fn write_number(value: &Value, out: &mut String) {
    if value.is_integer() {
        out.push_str(&value.to_string());
    } else if let Ok(f) = f64::try_from(value.clone()) {
        out.push_str(&py_float_repr(f));
    } else {
        out.push_str(&value.to_string());
    }
}

/// Python `repr(float)`: shortest round-trip digits, scientific notation when the
/// decimal exponent is below -4 or at least 16, and always a `.0` on integral values.
pub(crate) fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    // `{:e}` gives the shortest round-trip digits, e.g. "-1.25e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // Position of the decimal point relative to the digit string.
    let point = exp + 1;
    let mut out = String::from(sign);
    if -4 < point && point <= 16 {
        let n = digits.len() as i32;
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        } else if point >= n {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (point - n) as usize));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = point - 1;
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", e.unsigned_abs()));
    }
    out
}

/// Python `repr(str)`: single quotes unless the text holds a single quote and no
/// double quote; backslash escapes for quotes, backslashes and unprintable characters.
fn write_str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
}

/// Approximates Python's `str.isprintable()` for one character: false for control,
/// separator (except the ASCII space), common format and private-use characters.
/// Unassigned code points count as printable here (Python escapes them); templates
/// never print those.
fn is_printable(c: char) -> bool {
    let u = c as u32;
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(u,
            0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
            | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
            | 0xD800..=0xDFFF | 0xE000..=0xF8FF | 0xE0001 | 0xE0020..=0xE007F
            | 0xF0000..=0x10FFFF))
}

/// Python's `str.isspace()` per character: Rust's White_Space plus the ASCII
/// information separators U+001C..U+001F.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (123456.789, "123456.789"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.25e-7, "1.25e-07"),
            (-2.5e-300, "-2.5e-300"),
            (1e100, "1e+100"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (f, want) in cases {
            assert_eq!(py_float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn repr_of_containers_matches_python() {
        let v = Value::from_serialize(serde_json::json!(
            {"a": [1, 2.5, true, null], "it's": "say \"hi\"\n", "b": "x'y"}
        ));
        assert_eq!(
            py_repr(&v),
            r#"{'a': [1, 2.5, True, None], "it's": 'say "hi"\n', 'b': "x'y"}"#
        );
        assert_eq!(py_str(&Value::from("plain")), "plain");
        assert_eq!(
            py_repr(&Value::from("tab\there\u{7f}é\u{a0}")),
            r"'tab\there\x7fé\xa0'"
        );
    }
}
