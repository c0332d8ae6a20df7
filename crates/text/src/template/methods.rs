//! Python methods on template values (`content.strip()`, `message.get('x')`, ...).
//!
//! String methods are implemented here with Python's exact semantics (whitespace set,
//! character — not byte — indices, `split()` rules); dict and list methods, `format`
//! and the `is*` predicates come from `minijinja_contrib::pycompat`. Mutating methods
//! (`append`, `pop`, `update`, ...) stay unknown on purpose: transformers renders in
//! an ImmutableSandboxedEnvironment, where they raise a SecurityError too.

use minijinja::value::{from_args, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

use super::filters;
use super::pystr::{is_py_space, py_str};
use super::pyvalue::PyTuple;

pub(crate) fn call_method(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        if let Some(result) = string_method(s, method, args)? {
            return Ok(result);
        }
    } else if value.kind() == ValueKind::Map && method == "items" {
        let () = from_args(args)?;
        return Ok(Value::from(filters::map_items(value)?));
    } else if value.kind() == ValueKind::Seq && method == "index" {
        let (needle,): (&Value,) = from_args(args)?;
        return match value.try_iter()?.position(|item| &item == needle) {
            Some(i) => Ok(Value::from(i)),
            None => Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("list.index(x): {} is not in list", py_str(needle)),
            )),
        };
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args).map_err(
        |err| {
            if err.kind() == ErrorKind::UnknownMethod {
                Error::new(
                    ErrorKind::UnknownMethod,
                    format!("{} object has no method '{method}'", value.kind()),
                )
            } else {
                err
            }
        },
    )
}

/// `Ok(None)`: not a method handled here (the caller falls back to pycompat).
fn string_method(s: &str, method: &str, args: &[Value]) -> Result<Option<Value>, Error> {
    let v = match method {
        "strip" | "lstrip" | "rstrip" => {
            let (chars,): (Option<&str>,) = from_args(args)?;
            let (left, right) = (method != "rstrip", method != "lstrip");
            Value::from(py_strip(s, chars, left, right))
        }
        "split" | "rsplit" => {
            let (sep, maxsplit): (Option<&str>, Option<i64>) = from_args(args)?;
            let maxsplit = maxsplit.filter(|n| *n >= 0).map(|n| n as usize);
            let parts = match sep {
                Some("") => return Err(invalid("empty separator")),
                Some(sep) if method == "split" => split_sep(s, sep, maxsplit),
                Some(sep) => rsplit_sep(s, sep, maxsplit),
                None if method == "split" => split_whitespace(s, maxsplit),
                None => rsplit_whitespace(s, maxsplit),
            };
            Value::from(parts.into_iter().map(Value::from).collect::<Vec<_>>())
        }
        "splitlines" => {
            let (keepends,): (Option<bool>,) = from_args(args)?;
            Value::from(
                splitlines(s, keepends.unwrap_or(false))
                    .into_iter()
                    .map(Value::from)
                    .collect::<Vec<_>>(),
            )
        }
        "startswith" | "endswith" => {
            let (affix, start, end): (&Value, Option<i64>, Option<i64>) = from_args(args)?;
            let hay = char_slice(s, start, end);
            let test = |a: &str| {
                if method == "startswith" {
                    hay.starts_with(a)
                } else {
                    hay.ends_with(a)
                }
            };
            if let Some(a) = affix.as_str() {
                Value::from(test(a))
            } else if matches!(affix.kind(), ValueKind::Seq | ValueKind::Iterable) {
                let mut any = false;
                for a in affix.try_iter()? {
                    let a = a.as_str().ok_or_else(|| {
                        invalid(format!("tuple for {method} must only contain str"))
                    })?;
                    any |= test(a);
                }
                Value::from(any)
            } else {
                return Err(invalid(format!(
                    "{method} first arg must be str or a tuple of str, not {}",
                    affix.kind()
                )));
            }
        }
        "find" | "rfind" | "index" | "rindex" | "count" => {
            let (sub, start, end): (&str, Option<i64>, Option<i64>) = from_args(args)?;
            let (lo, hi) = char_range(s, start, end);
            let hay: String = s.chars().skip(lo).take(hi.saturating_sub(lo)).collect();
            if method == "count" {
                Value::from(count_occurrences(&hay, sub))
            } else {
                let found = if method.starts_with('r') {
                    hay.rfind(sub)
                } else {
                    hay.find(sub)
                };
                match found {
                    Some(byte) => Value::from(lo + hay[..byte].chars().count()),
                    None if method.ends_with("index") => {
                        return Err(invalid("substring not found"))
                    }
                    None => Value::from(-1),
                }
            }
        }
        "replace" => {
            let (old, new, count): (&str, &str, Option<i64>) = from_args(args)?;
            match count {
                Some(n) if n >= 0 => Value::from(s.replacen(old, new, n as usize)),
                _ => Value::from(s.replace(old, new)),
            }
        }
        "upper" => no_args(args, || s.to_uppercase())?,
        "lower" => no_args(args, || s.to_lowercase())?,
        "casefold" => no_args(args, || s.to_lowercase())?,
        "title" => no_args(args, || py_title(s))?,
        "capitalize" => no_args(args, || py_capitalize(s))?,
        "swapcase" => no_args(args, || {
            s.chars()
                .flat_map(|c| -> Vec<char> {
                    if c.is_uppercase() {
                        c.to_lowercase().collect()
                    } else if c.is_lowercase() {
                        c.to_uppercase().collect()
                    } else {
                        vec![c]
                    }
                })
                .collect()
        })?,
        "join" => {
            let (items,): (&Value,) = from_args(args)?;
            let mut out = String::new();
            for (i, item) in items.try_iter()?.enumerate() {
                let Some(text) = item.as_str() else {
                    return Err(invalid(format!(
                        "sequence item {i}: expected str instance, {} found",
                        item.kind()
                    )));
                };
                if i > 0 {
                    out.push_str(s);
                }
                out.push_str(text);
            }
            Value::from(out)
        }
        "removeprefix" => {
            let (prefix,): (&str,) = from_args(args)?;
            Value::from(s.strip_prefix(prefix).unwrap_or(s))
        }
        "removesuffix" => {
            let (suffix,): (&str,) = from_args(args)?;
            Value::from(s.strip_suffix(suffix).unwrap_or(s))
        }
        "partition" | "rpartition" => {
            let (sep,): (&str,) = from_args(args)?;
            if sep.is_empty() {
                return Err(invalid("empty separator"));
            }
            let found = if method == "partition" {
                s.find(sep)
            } else {
                s.rfind(sep)
            };
            let parts = match found {
                Some(i) => [&s[..i], sep, &s[i + sep.len()..]],
                None if method == "partition" => [s, "", ""],
                None => ["", "", s],
            };
            PyTuple::value(parts.iter().map(|p| Value::from(*p)).collect())
        }
        "ljust" | "rjust" | "center" => {
            let (width, fill): (usize, Option<&str>) = from_args(args)?;
            let fill = match fill.map(|f| f.chars().collect::<Vec<_>>()).as_deref() {
                None => ' ',
                Some([c]) => *c,
                Some(_) => {
                    return Err(invalid(
                        "The fill character must be exactly one character long",
                    ))
                }
            };
            let len = s.chars().count();
            let pad = width.saturating_sub(len);
            let (left, right) = match method {
                "ljust" => (0, pad),
                "rjust" => (pad, 0),
                // Python puts the odd extra fill on the left when the width is odd.
                _ => {
                    let left = pad / 2 + (pad & width & 1);
                    (left, pad - left)
                }
            };
            let mut out: String = std::iter::repeat_n(fill, left).collect();
            out.push_str(s);
            out.extend(std::iter::repeat_n(fill, right));
            Value::from(out)
        }
        "zfill" => {
            let (width,): (usize,) = from_args(args)?;
            let len = s.chars().count();
            let pad = width.saturating_sub(len);
            let (sign, rest) = match s.chars().next() {
                Some(c @ ('+' | '-')) => (c.to_string(), &s[1..]),
                _ => (String::new(), s),
            };
            Value::from(format!("{sign}{}{rest}", "0".repeat(pad)))
        }
        _ => return Ok(None),
    };
    Ok(Some(v))
}

fn invalid(msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

fn no_args(args: &[Value], f: impl FnOnce() -> String) -> Result<Value, Error> {
    let () = from_args(args)?;
    Ok(Value::from(f()))
}

pub(crate) fn py_strip<'a>(s: &'a str, chars: Option<&str>, left: bool, right: bool) -> &'a str {
    let strip = |c: char| match chars {
        Some(set) => set.contains(c),
        None => is_py_space(c),
    };
    let mut out = s;
    if left {
        out = out.trim_start_matches(strip);
    }
    if right {
        out = out.trim_end_matches(strip);
    }
    out
}

fn split_sep<'a>(s: &'a str, sep: &str, maxsplit: Option<usize>) -> Vec<&'a str> {
    match maxsplit {
        Some(n) => s.splitn(n + 1, sep).collect(),
        None => s.split(sep).collect(),
    }
}

fn rsplit_sep<'a>(s: &'a str, sep: &str, maxsplit: Option<usize>) -> Vec<&'a str> {
    let mut parts: Vec<&str> = match maxsplit {
        Some(n) => s.rsplitn(n + 1, sep).collect(),
        None => s.rsplit(sep).collect(),
    };
    parts.reverse();
    parts
}

/// Python `str.split()` with no separator: runs of whitespace separate, leading and
/// trailing whitespace yields no empty parts; after `maxsplit` splits the rest is one
/// part (leading whitespace removed, trailing kept).
fn split_whitespace(s: &str, maxsplit: Option<usize>) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = s.trim_start_matches(is_py_space);
    while !rest.is_empty() {
        if maxsplit == Some(parts.len()) {
            parts.push(rest);
            break;
        }
        match rest.find(is_py_space) {
            Some(end) => {
                parts.push(&rest[..end]);
                rest = rest[end..].trim_start_matches(is_py_space);
            }
            None => {
                parts.push(rest);
                break;
            }
        }
    }
    parts
}

fn rsplit_whitespace(s: &str, maxsplit: Option<usize>) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = s.trim_end_matches(is_py_space);
    while !rest.is_empty() {
        if maxsplit == Some(parts.len()) {
            parts.push(rest);
            break;
        }
        match rest.rfind(is_py_space) {
            Some(start) => {
                let ws_len = rest[start..].chars().next().map_or(1, char::len_utf8);
                parts.push(&rest[start + ws_len..]);
                rest = rest[..start].trim_end_matches(is_py_space);
            }
            None => {
                parts.push(rest);
                break;
            }
        }
    }
    parts.reverse();
    parts
}

/// Python `str.splitlines()`: every line boundary Python knows, `\r\n` as one.
pub(crate) fn splitlines(s: &str, keepends: bool) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        let mut end = i + c.len_utf8();
        if c == '\r' {
            if let Some((_, '\n')) = chars.peek() {
                chars.next();
                end += 1;
            }
        }
        lines.push(if keepends {
            &s[start..end]
        } else {
            &s[start..i]
        });
        start = end;
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

/// Python slice bounds in characters: negative values count from the end, clamped.
fn char_range(s: &str, start: Option<i64>, end: Option<i64>) -> (usize, usize) {
    let len = s.chars().count() as i64;
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
    let lo = start.map_or(0, norm);
    let hi = end.map_or(len, norm);
    (lo as usize, hi.max(lo) as usize)
}

fn char_slice(s: &str, start: Option<i64>, end: Option<i64>) -> &str {
    if start.is_none() && end.is_none() {
        return s;
    }
    let (lo, hi) = char_range(s, start, end);
    let byte = |n: usize| s.char_indices().nth(n).map_or(s.len(), |(b, _)| b);
    &s[byte(lo)..byte(hi)]
}

/// Non-overlapping occurrences; Python counts the empty string len+1 times.
fn count_occurrences(hay: &str, sub: &str) -> usize {
    if sub.is_empty() {
        return hay.chars().count() + 1;
    }
    hay.matches(sub).count()
}

/// Python `str.title()`: a cased character following an uncased one is upper-cased,
/// every other cased character lower-cased.
fn py_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_cased = false;
    for c in s.chars() {
        let cased = c.is_uppercase() || c.is_lowercase();
        if cased && !prev_cased {
            out.extend(c.to_uppercase());
        } else if cased {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_cased = cased;
    }
    out
}

/// Python `str.capitalize()`: first character upper-cased, the rest lower-cased.
fn py_capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.as_str().to_lowercase().chars())
            .collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_split_follows_python() {
        assert_eq!(split_whitespace("  a  b\tc \n", None), ["a", "b", "c"]);
        assert_eq!(split_whitespace("  a  b  c  ", Some(1)), ["a", "b  c  "]);
        assert_eq!(rsplit_whitespace("  a  b  c  ", Some(1)), ["  a  b", "c"]);
        assert!(split_whitespace("   ", None).is_empty());
    }

    #[test]
    fn splitlines_follows_python() {
        assert_eq!(
            splitlines("a\r\nb\rc\n\nd", false),
            ["a", "b", "c", "", "d"]
        );
        assert_eq!(splitlines("a\nb\n", true), ["a\n", "b\n"]);
    }

    #[test]
    fn title_and_capitalize_follow_python() {
        assert_eq!(py_title("hello wORLD 3d-x"), "Hello World 3D-X");
        assert_eq!(py_capitalize("hELLO World"), "Hello world");
    }
}
