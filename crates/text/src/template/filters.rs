//! Filters and tests whose minijinja built-ins differ from Jinja2's in ways chat
//! templates can observe.

use std::borrow::Cow;

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

use super::methods::{py_strip, splitlines};
use super::pystr::{is_py_space, py_str};
use super::pyvalue::{self, Generator, PyTuple};

/// `|string`: Python `str()` (`None`, `True`, `{'a': 1}`).
pub(crate) fn string(value: &Value) -> Value {
    Value::from(py_str(value))
}

/// `|trim(chars=None)`: Python `str.strip`.
pub(crate) fn trim(value: &Value, chars: Option<&str>) -> Value {
    Value::from(py_strip(&py_str(value), chars, true, true))
}

/// `|join(d='', attribute=None)`: items converted with Python `str()`.
pub(crate) fn join(
    state: &State,
    value: &Value,
    separator: Option<&str>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let separator = match separator {
        Some(s) => s.to_string(),
        None => kwargs.get::<Option<String>>("d")?.unwrap_or_default(),
    };
    let attribute: Option<Value> = kwargs.get("attribute")?;
    kwargs.assert_all_used()?;
    if value.is_undefined() {
        return Ok(Value::from(""));
    }
    if pyvalue::is_none(value) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "join: 'NoneType' object is not iterable",
        ));
    }
    if let Some(s) = value.as_str() {
        // Joining a string joins its characters.
        let chars: Vec<String> = s.chars().map(String::from).collect();
        return Ok(Value::from(chars.join(&separator)));
    }
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(&separator);
        }
        let item = match &attribute {
            Some(attr) => lookup_path(state, &item, attr)?,
            None => item,
        };
        out.push_str(&py_str(&item));
    }
    Ok(Value::from(out))
}

/// Jinja2's attribute getter: `"a.b.0"` walks attributes, digits index sequences.
fn lookup_path(_state: &State, item: &Value, path: &Value) -> Result<Value, Error> {
    if path.is_integer() {
        return item.get_item(path);
    }
    let Some(path) = path.as_str() else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "attribute must be a string or an integer",
        ));
    };
    let mut current = item.clone();
    for part in path.split('.') {
        current = match part.parse::<i64>() {
            Ok(i) => current.get_item(&Value::from(i))?,
            Err(_) => current.get_attr(part)?,
        };
    }
    Ok(current)
}

/// `|title`: Jinja2's own rule (not `str.title`): words start after runs of
/// whitespace, `-`, `(`, `{`, `[` or `<`; each word's first character is
/// upper-cased and the rest lower-cased.
pub(crate) fn title(value: &Value) -> Value {
    let text = py_str(value);
    let is_break = |c: char| is_py_space(c) || matches!(c, '-' | '(' | '{' | '[' | '<');
    let mut out = String::with_capacity(text.len());
    let mut word_start = true;
    for c in text.chars() {
        if is_break(c) {
            out.push(c);
            word_start = true;
        } else if word_start {
            out.extend(c.to_uppercase());
            word_start = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    Value::from(out)
}

/// `|dictsort(...)`: minijinja's sorting, pairs as tuples.
pub(crate) fn dictsort(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let sorted = minijinja::filters::dictsort(value, kwargs)?;
    Ok(Value::from(
        sorted
            .try_iter()?
            .map(|pair| PyTuple::value(pair.try_iter().map(Iterator::collect).unwrap_or_default()))
            .collect::<Vec<_>>(),
    ))
}

/// `|items`: a generator of `(key, value)` tuples; undefined gives nothing.
pub(crate) fn items(value: &Value) -> Result<Value, Error> {
    if value.is_undefined() {
        return Ok(Generator::value(Vec::new()));
    }
    if value.kind() != ValueKind::Map {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "Can only get item pairs from a mapping.",
        ));
    }
    Ok(Generator::value(map_items(value)?))
}

/// The `(key, value)` tuples of a map, in its order.
pub(crate) fn map_items(value: &Value) -> Result<Vec<Value>, Error> {
    value
        .try_iter()?
        .map(|key| {
            let item = value.get_item(&key)?;
            Ok(PyTuple::value(vec![key, item]))
        })
        .collect()
}

/// `|indent(width=4, first=False, blank=False)` as Jinja2 writes it: lines come from
/// Python's `splitlines()` on the text plus a newline, so a trailing newline is
/// dropped; `width` may also be the indentation string itself.
pub(crate) fn indent(
    value: &Value,
    width: Option<Value>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let width = match width {
        Some(w) => w,
        None => kwargs
            .get::<Option<Value>>("width")?
            .unwrap_or(Value::from(4)),
    };
    let first = match first {
        Some(f) => f,
        None => kwargs.get::<Option<bool>>("first")?.unwrap_or(false),
    };
    let blank = match blank {
        Some(b) => b,
        None => kwargs.get::<Option<bool>>("blank")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let indention = match width.as_str() {
        Some(s) => s.to_string(),
        None => " ".repeat(width.as_usize().unwrap_or(0).min(1024)),
    };
    let text = py_str(value) + "\n";
    let lines = splitlines(&text, false);
    let mut out = String::new();
    if blank {
        out = lines.join(&format!("\n{indention}"));
    } else {
        let mut lines = lines.into_iter();
        out.push_str(lines.next().unwrap_or_default());
        for line in lines {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&indention);
            }
            out.push_str(line);
        }
    }
    if first {
        out.insert_str(0, &indention);
    }
    Ok(Value::from(out))
}

/// Jinja2's `map`, `select`, `reject`, `selectattr` and `rejectattr` return
/// generators: always true, no length, consumed by one pass, refused by `tojson`.
/// This wraps minijinja's list result the same way. Like Jinja2 (`if value:`), a
/// false input — none, undefined, empty — gives an empty generator.
fn as_generator(items: Vec<Value>) -> Value {
    Generator::value(items)
}

pub(crate) fn map(state: &State, value: Value, args: Rest<Value>) -> Result<Value, Error> {
    if !value.is_true() {
        return Ok(Generator::value(Vec::new()));
    }
    minijinja::filters::map(state, value, args).map(as_generator)
}

pub(crate) fn select(
    state: &State,
    value: Value,
    test: Option<Cow<'_, str>>,
    args: Rest<Value>,
) -> Result<Value, Error> {
    if !value.is_true() {
        return Ok(Generator::value(Vec::new()));
    }
    minijinja::filters::select(state, value, test, args).map(as_generator)
}

pub(crate) fn reject(
    state: &State,
    value: Value,
    test: Option<Cow<'_, str>>,
    args: Rest<Value>,
) -> Result<Value, Error> {
    if !value.is_true() {
        return Ok(Generator::value(Vec::new()));
    }
    minijinja::filters::reject(state, value, test, args).map(as_generator)
}

pub(crate) fn selectattr(
    state: &State,
    value: Value,
    attr: Cow<'_, str>,
    test: Option<Cow<'_, str>>,
    args: Rest<Value>,
) -> Result<Value, Error> {
    if !value.is_true() {
        return Ok(Generator::value(Vec::new()));
    }
    minijinja::filters::selectattr(state, value, attr, test, args).map(as_generator)
}

pub(crate) fn rejectattr(
    state: &State,
    value: Value,
    attr: Cow<'_, str>,
    test: Option<Cow<'_, str>>,
    args: Rest<Value>,
) -> Result<Value, Error> {
    if !value.is_true() {
        return Ok(Generator::value(Vec::new()));
    }
    minijinja::filters::rejectattr(state, value, attr, test, args).map(as_generator)
}

/// `|length` / `|count`: Python's `len()`, which None refuses.
pub(crate) fn length(value: &Value) -> Result<Value, Error> {
    let len = if pyvalue::is_none(value) {
        None
    } else {
        value.len()
    };
    len.map(Value::from).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("object of type {} has no len()", type_name(value)),
        )
    })
}

/// The Python type name of a value, for error messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value.kind() {
        _ if pyvalue::is_none(value) => "NoneType",
        ValueKind::Undefined => "Undefined",
        ValueKind::Bool => "bool",
        ValueKind::Number if value.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Seq => "list",
        ValueKind::Map => "dict",
        ValueKind::Iterable => "generator",
        _ => "object",
    }
}

/// `is sequence`: Jinja2 asks for `len()` and `[]`, which strings and dicts have too.
pub(crate) fn is_sequence(value: &Value) -> bool {
    matches!(
        value.kind(),
        ValueKind::String | ValueKind::Seq | ValueKind::Map
    )
}

/// `is none`: minijinja's none and JSON null ([`pyvalue::PyNone`]).
pub(crate) fn is_none(value: &Value) -> bool {
    pyvalue::is_none(value)
}

/// `is number`: Python's `Number` includes `bool`.
pub(crate) fn is_number(value: &Value) -> bool {
    matches!(value.kind(), ValueKind::Number | ValueKind::Bool)
}

/// `is iterable`: anything `iter()` accepts, Jinja2's Undefined included.
pub(crate) fn is_iterable(value: &Value) -> bool {
    matches!(
        value.kind(),
        ValueKind::String
            | ValueKind::Seq
            | ValueKind::Map
            | ValueKind::Iterable
            | ValueKind::Undefined
    )
}
