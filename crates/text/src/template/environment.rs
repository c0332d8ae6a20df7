//! The minijinja environment configured to behave like transformers' Jinja2 one:
//! `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)` with
//! loop controls, HF's `tojson`, `raise_exception`, and Python value semantics.

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};

use super::error::RaisedByTemplate;
use super::pystr::{py_str, write_str};
use super::{filters, json, methods};

/// Instructions one render may execute. Real templates use a few thousand per
/// handful of messages; this leaves room for conversations of many thousands of
/// messages while stopping a template from GGUF metadata that loops for minutes.
const FUEL_PER_RENDER: u64 = 20_000_000;

pub(crate) fn build() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // Jinja2 drops one trailing newline of the template source by default.
    env.set_keep_trailing_newline(false);
    // Jinja2's default Undefined: prints empty, iterates empty, is false, fails on
    // attribute access.
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_formatter(python_formatter);
    env.set_fuel(Some(FUEL_PER_RENDER));
    env.set_unknown_method_callback(methods::call_method);

    env.add_filter("tojson", json::tojson_filter);
    env.add_filter("string", filters::string);
    env.add_filter("trim", filters::trim);
    env.add_filter("join", filters::join);
    env.add_filter("indent", filters::indent);
    env.add_filter("title", filters::title);
    env.add_filter("dictsort", filters::dictsort);
    env.add_filter("items", filters::items);
    env.add_filter("length", filters::length);
    env.add_filter("count", filters::length);
    env.add_filter("map", filters::map);
    env.add_filter("select", filters::select);
    env.add_filter("reject", filters::reject);
    env.add_filter("selectattr", filters::selectattr);
    env.add_filter("rejectattr", filters::rejectattr);
    env.add_test("none", filters::is_none);
    env.add_test("sequence", filters::is_sequence);
    env.add_test("number", filters::is_number);
    env.add_test("iterable", filters::is_iterable);

    env.add_function("raise_exception", raise_exception);
    env
}

/// `{{ value }}` prints Python's `str(value)`.
fn python_formatter(out: &mut Output, _state: &State, value: &Value) -> Result<(), Error> {
    let mut text = String::new();
    write_str(value, &mut text);
    out.write_str(&text).map_err(Error::from)
}

/// `raise_exception(message)`: aborts rendering with the template's own message.
fn raise_exception(message: Option<Value>) -> Result<Value, Error> {
    let message = message.map(|m| py_str(&m)).unwrap_or_default();
    Err(Error::new(ErrorKind::InvalidOperation, message.clone())
        .with_source(RaisedByTemplate(message)))
}
