//! The `tojson` filter as Hugging Face transformers defines it:
//! `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`,
//! reproducing Python's `json.dumps` output byte for byte (separators, indentation,
//! escapes, float formatting) and its refusal of values JSON cannot hold.

use minijinja::value::{from_args, Kwargs, Rest, Value, ValueKind};
use minijinja::{Error, ErrorKind};

use super::pystr::py_float_repr;
use super::pyvalue::{is_generator, is_none};

/// Deeper nesting than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 256;

struct DumpOptions {
    ensure_ascii: bool,
    /// `None`: everything on one line; `Some(unit)`: one item per line, nested
    /// levels indented by `unit` repeated.
    indent: Option<String>,
    item_separator: String,
    key_separator: String,
    sort_keys: bool,
}

/// `value|tojson(ensure_ascii=False, indent=None, separators=None, sort_keys=False)`;
/// arguments may be given by position in that order or by keyword.
pub(crate) fn tojson_filter(value: &Value, args: Rest<Value>) -> Result<Value, Error> {
    // Four optional positionals plus keywords: more than a filter signature can hold.
    type Args = (
        Option<Value>,
        Option<Value>,
        Option<Value>,
        Option<Value>,
        Kwargs,
    );
    let (ensure_ascii, indent, separators, sort_keys, kwargs): Args = from_args(&args)?;
    let arg = |positional: Option<Value>, name: &str| -> Result<Value, Error> {
        let keyword: Option<Value> = kwargs.get(name)?;
        match (positional, keyword) {
            (Some(_), Some(_)) => Err(Error::new(
                ErrorKind::TooManyArguments,
                format!("tojson() got multiple values for argument '{name}'"),
            )),
            (Some(v), None) | (None, Some(v)) => Ok(v),
            (None, None) => Ok(Value::from(())),
        }
    };
    let ensure_ascii = arg(ensure_ascii, "ensure_ascii")?.is_true();
    let indent = indent_unit(&arg(indent, "indent")?)?;
    let separators = arg(separators, "separators")?;
    let sort_keys = arg(sort_keys, "sort_keys")?.is_true();
    kwargs.assert_all_used()?;

    let (item_separator, key_separator) = if separators.is_none() {
        // Python drops the space after ',' when indenting, so lines carry no trailing blanks.
        let item = if indent.is_some() { "," } else { ", " };
        (item.to_string(), ": ".to_string())
    } else {
        let parts: Vec<Value> = separators.try_iter()?.collect();
        match parts.as_slice() {
            [item, key] if item.as_str().is_some() && key.as_str().is_some() => (
                item.as_str().unwrap_or_default().to_string(),
                key.as_str().unwrap_or_default().to_string(),
            ),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: separators must be a pair of strings",
                ))
            }
        }
    };
    let options = DumpOptions {
        ensure_ascii,
        indent,
        item_separator,
        key_separator,
        sort_keys,
    };
    let mut out = String::new();
    dump(value, &options, 0, &mut out)?;
    Ok(Value::from(out))
}

/// Python: `None` → no indentation; a string is used as is; an integer n → n spaces
/// (zero or negative → newlines without indentation).
fn indent_unit(indent: &Value) -> Result<Option<String>, Error> {
    match indent.kind() {
        ValueKind::None | ValueKind::Undefined => Ok(None),
        ValueKind::String => Ok(Some(indent.as_str().unwrap_or_default().to_string())),
        ValueKind::Bool => Ok(Some(if indent.is_true() { " " } else { "" }.to_string())),
        ValueKind::Number if indent.is_integer() => {
            let n = indent.as_i64().unwrap_or(0).clamp(0, 1024);
            Ok(Some(" ".repeat(n as usize)))
        }
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "tojson: indent must be an integer or a string, not {}",
                indent.kind()
            ),
        )),
    }
}

fn not_serializable(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("Object of type {what} is not JSON serializable"),
    )
}

fn dump(value: &Value, opts: &DumpOptions, depth: usize, out: &mut String) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nested too deeply",
        ));
    }
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => dump_number(value, out),
        ValueKind::String => dump_string(value.as_str().unwrap_or_default(), opts, out),
        _ if is_none(value) => out.push_str("null"),
        // minijinja's `list + list` is a lazy iterable; Python's is a list.
        ValueKind::Seq | ValueKind::Iterable if !is_generator(value) => {
            let items: Vec<Value> = value.try_iter()?.collect();
            dump_container(out, opts, depth, '[', ']', &items, |item, out| {
                dump(item, opts, depth + 1, out)
            })?;
        }
        ValueKind::Map => {
            let mut entries = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                entries.push((json_key(&key)?, item));
            }
            if opts.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            dump_container(out, opts, depth, '{', '}', &entries, |(key, item), out| {
                dump_string(key, opts, out);
                out.push_str(&opts.key_separator);
                dump(item, opts, depth + 1, out)
            })?;
        }
        ValueKind::Undefined => return Err(not_serializable("Undefined")),
        // jinja2's map/select/items produce generators, which json refuses.
        ValueKind::Iterable => return Err(not_serializable("generator")),
        ValueKind::Bytes => return Err(not_serializable("bytes")),
        kind => return Err(not_serializable(&kind.to_string())),
    }
    Ok(())
}

fn dump_container<T>(
    out: &mut String,
    opts: &DumpOptions,
    depth: usize,
    open: char,
    close: char,
    items: &[T],
    mut dump_item: impl FnMut(&T, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return Ok(());
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(unit) = &opts.indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(unit);
            }
        }
    };
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(&opts.item_separator);
        }
        newline(out, depth + 1);
        dump_item(item, out)?;
    }
    newline(out, depth);
    out.push(close);
    Ok(())
}

/// Python turns non-string keys into strings: numbers by repr, True → "true", None → "null".
fn json_key(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_string()),
        ValueKind::Number => {
            let mut s = String::new();
            dump_number(key, &mut s);
            Ok(s)
        }
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.to_string()),
        ValueKind::None => Ok("null".to_string()),
        kind => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: keys must be str, int, float, bool or None, not {kind}"),
        )),
    }
}

fn dump_number(value: &Value, out: &mut String) {
    if value.is_integer() {
        out.push_str(&value.to_string());
        return;
    }
    match f64::try_from(value.clone()) {
        Ok(f) if f.is_nan() => out.push_str("NaN"),
        Ok(f) if f.is_infinite() => out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" }),
        Ok(f) => out.push_str(&py_float_repr(f)),
        Err(_) => out.push_str(&value.to_string()),
    }
}

fn dump_string(s: &str, opts: &DumpOptions, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            // With ensure_ascii Python escapes everything outside ' '..='~', DEL included.
            c if opts.ensure_ascii && (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
