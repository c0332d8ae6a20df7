//! Template values that behave like the Python objects transformers hands Jinja2.
//!
//! - [`PyNone`] stands for absent `tools`/`documents`: like Python's None it
//!   cannot be iterated, so `{% for t in tools %}` with no tools fails as in Python.
//! - [`Generator`] is what Jinja2's `map`/`select`/... return: one pass, always
//!   true, no length, not JSON serializable.

use std::fmt;
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};

/// Python's `None` for the top-level `tools` and `documents` when absent.
///
/// minijinja's none iterates as empty where Python raises, so `{% for t in tools %}`
/// without tools would render instead of failing. This object refuses iteration;
/// it is false, passes `is none`, prints `None` (also through `~`), dumps as
/// `null`, and has no length. Its one difference from Python: `x in tools` is
/// false instead of an error (minijinja lets no object refuse `in`).
///
/// JSON nulls inside messages stay minijinja's none, which does refuse `in`:
/// templates test `'</think>' in content` unguarded far more often than they
/// iterate a content that may be null.
#[derive(Debug)]
pub(crate) struct PyNone;

impl Object for PyNone {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::NonEnumerable
    }

    fn is_true(self: &Arc<Self>) -> bool {
        false
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("None")
    }
}

pub(crate) fn py_none() -> Value {
    Value::from_object(PyNone)
}

/// True for minijinja's none and for [`PyNone`].
pub(crate) fn is_none(value: &Value) -> bool {
    value.is_none() || value.downcast_object_ref::<PyNone>().is_some()
}

/// A JSON value as the template sees it (objects keep their key order).
pub(crate) fn from_json(value: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match value {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::from(s.as_str()),
        J::Array(items) => Value::from(items.iter().map(from_json).collect::<Vec<_>>()),
        J::Object(map) => map
            .iter()
            .map(|(k, v)| (Value::from(k.as_str()), from_json(v)))
            .collect(),
    }
}

/// A one-pass iterator, like a Python generator.
#[derive(Debug)]
pub(crate) struct Generator(Mutex<Option<std::vec::IntoIter<Value>>>);

impl Generator {
    pub(crate) fn value(items: Vec<Value>) -> Value {
        Value::from_object(Generator(Mutex::new(Some(items.into_iter()))))
    }
}

impl Object for Generator {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Iterable
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let items = self.0.lock().ok().and_then(|mut slot| slot.take());
        match items {
            Some(items) => Enumerator::Iter(Box::new(items)),
            None => Enumerator::Empty,
        }
    }

    // Asking for the length must not consume the items (the default would).
    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        None
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<generator object>")
    }
}

/// True for values Python would hold as a generator.
pub(crate) fn is_generator(value: &Value) -> bool {
    value.downcast_object_ref::<Generator>().is_some()
}

/// A Python tuple: a sequence that prints as `(a, b)` (pairs from `items()` and
/// `dictsort`, `partition` results).
#[derive(Debug)]
pub(crate) struct PyTuple(pub(crate) Vec<Value>);

impl PyTuple {
    pub(crate) fn value(items: Vec<Value>) -> Value {
        Value::from_object(PyTuple(items))
    }
}

impl Object for PyTuple {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key.as_usize()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.len())
    }
}

pub(crate) fn is_tuple(value: &Value) -> bool {
    value.downcast_object_ref::<PyTuple>().is_some()
}
