//! Options maps read into typed values: the one reader behind every `from_options`
//! constructor of the library's config types, which Rhai scripts (through their `#{ … }` maps),
//! notebooks and Rust programs (through `serde_json::json!`) share. Unknown keys are errors that
//! list the valid ones, so a typo like `schedual` never passes silently; a value of the wrong
//! type names the key, what it must be and what it was.
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// How a value that JSON cannot hold (a script's data set handle given as an option, say) is
/// carried into an options map: an object with this one key, naming the value's type.
pub const FOREIGN_TYPE_KEY: &str = "$type";

/// The type of an option value as scripts name types (`i64`, `f64`, `string`, `bool`,
/// `array`, `map`, `()`), so messages read the same from every front end.
pub fn type_name(value: &Value) -> String {
    match value {
        Value::Null => "()".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) if n.is_f64() => "f64".into(),
        Value::Number(_) => "i64".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(m) => match (m.len(), m.get(FOREIGN_TYPE_KEY)) {
            (1, Some(Value::String(t))) => t.clone(),
            _ => "map".into(),
        },
    }
}

fn is_foreign(value: &Value) -> bool {
    matches!(value, Value::Object(m) if m.len() == 1 && m.contains_key(FOREIGN_TYPE_KEY))
}

/// One key of an options map: what `Options` accepts and what `huelab api` prints. A config
/// type's table of these is the only list of its keys, so a key cannot be read without being
/// documented.
#[derive(Debug, Clone, Copy)]
pub struct OptionDoc {
    pub key: &'static str,
    /// As scripts write the value: `int`, `float`, `bool`, `string`, `map`, `array`, …
    pub kind: &'static str,
    /// The default as a script writes it (`"Flat"`, `30`, `false`); a phrase in parentheses
    /// where it depends on other options or means "none".
    pub default: &'static str,
    pub about: &'static str,
    /// The names a string option takes, read from their registry when `huelab api` prints.
    pub allowed: Option<fn() -> Vec<&'static str>>,
    /// The keys of a map option.
    pub fields: &'static [OptionDoc],
}

impl OptionDoc {
    pub const fn new(key: &'static str, kind: &'static str, default: &'static str, about: &'static str) -> Self {
        OptionDoc { key, kind, default, about, allowed: None, fields: &[] }
    }

    pub const fn with_fields(self, fields: &'static [OptionDoc]) -> Self {
        OptionDoc { fields, ..self }
    }

    pub const fn one_of(self, allowed: fn() -> Vec<&'static str>) -> Self {
        OptionDoc { allowed: Some(allowed), ..self }
    }

    /// `key: kind = default — about (one of: …)`, then a map option's own keys indented, as
    /// `huelab api` prints them.
    pub fn lines(&self) -> Vec<String> {
        let default = if self.default.is_empty() { String::new() } else { format!(" = {}", self.default) };
        let allowed = self.allowed.map_or(String::new(), |names| format!(" (one of: {})", names().join(", ")));
        let mut lines = vec![format!("{}: {}{default} — {}{allowed}", self.key, self.kind, self.about)];
        lines.extend(self.fields.iter().flat_map(OptionDoc::lines).map(|l| format!("    {l}")));
        lines
    }
}

/// `device`, as every config that places work on a device takes it.
pub const DEVICE: OptionDoc = OptionDoc::new("device", "string", "\"auto\"", "\"auto\" (a GPU when there is one), \"cpu\", \"cuda\" or \"cuda:N\"");

/// The keys of a table of [`OptionDoc`]s.
pub fn keys(docs: &[OptionDoc]) -> Vec<&'static str> {
    docs.iter().map(|d| d.key).collect()
}

pub struct Options {
    map: Map<String, Value>,
}

impl Options {
    /// Fails on the first key of `map` that `docs` does not document.
    pub fn new(map: Map<String, Value>, context: &str, docs: &[OptionDoc]) -> Result<Self> {
        if let Some(key) = map.keys().find(|k| !docs.iter().any(|d| d.key == k.as_str())) {
            return Err(Error::UnknownOption { name: key.clone(), context: context.to_owned(), valid: keys(docs).join(", ") });
        }
        Ok(Options { map })
    }

    /// An options map from a JSON value: an object, or `null` for none.
    pub fn from_value(value: Value, context: &str, allowed: &[OptionDoc]) -> Result<Self> {
        match value {
            Value::Object(map) => Self::new(map, context, allowed),
            Value::Null => Self::new(Map::new(), context, allowed),
            other => Err(Error::msg(format!("{context} must be a map #{{ ... }}, got {}", type_name(&other)))),
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    pub fn int(&mut self, key: &str) -> Result<Option<i64>> {
        self.take(key).map(|v| v.as_i64().filter(|_| !v.is_f64()).ok_or_else(|| wrong_type(key, "an integer", &v))).transpose()
    }

    /// A non-negative integer, as a count or a seed.
    pub fn count(&mut self, key: &str) -> Result<Option<u64>> {
        self.int(key)?
            .map(|v| u64::try_from(v).map_err(|_| Error::invalid_option(key, format!("must be >= 0, got {v}"))))
            .transpose()
    }

    /// A number; integers are accepted too.
    pub fn float(&mut self, key: &str) -> Result<Option<f64>> {
        self.take(key).map(|v| v.as_f64().filter(|_| !is_foreign(&v)).ok_or_else(|| wrong_type(key, "a number", &v))).transpose()
    }

    pub fn bool(&mut self, key: &str) -> Result<Option<bool>> {
        self.take(key).map(|v| v.as_bool().ok_or_else(|| wrong_type(key, "true or false", &v))).transpose()
    }

    pub fn string(&mut self, key: &str) -> Result<Option<String>> {
        self.take(key)
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(wrong_type(key, "a string", &other)),
            })
            .transpose()
    }

    /// The string under `key`, without taking it: `Ok(None)` when absent or not a string.
    pub fn clone_string(&self, key: &str) -> Result<Option<String>> {
        Ok(self.map.get(key).and_then(|v| v.as_str()).map(str::to_owned))
    }

    /// `device`: "auto", "cpu", "cuda" or "cuda:N".
    pub fn device(&mut self) -> Result<Option<crate::device::DeviceChoice>> {
        self.string("device")?.map(|s| s.parse()).transpose()
    }

    pub fn ints(&mut self, key: &str) -> Result<Option<Vec<i64>>> {
        self.array(key)?
            .map(|items| items.into_iter().map(|v| v.as_i64().filter(|_| !v.is_f64()).ok_or_else(|| wrong_type(key, "an array of integers", &v))).collect())
            .transpose()
    }

    pub fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>> {
        self.array(key)?
            .map(|items| {
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        other => Err(wrong_type(key, "an array of strings", &other)),
                    })
                    .collect()
            })
            .transpose()
    }

    /// An array of integer arrays, e.g. `[[3, 3], [0, 3]]`.
    pub fn array_of_arrays(&mut self, key: &str) -> Result<Option<Vec<Vec<i64>>>> {
        self.array(key)?
            .map(|items| {
                items
                    .into_iter()
                    .map(|item| match item {
                        Value::Array(inner) => inner
                            .into_iter()
                            .map(|v| v.as_i64().filter(|_| !v.is_f64()).ok_or_else(|| wrong_type(key, "an array of integer arrays", &v)))
                            .collect(),
                        other => Err(wrong_type(key, "an array of [x, y] arrays", &other)),
                    })
                    .collect()
            })
            .transpose()
    }

    /// `(height, width)` from `[h, w]`, or from one integer for a square; each side at most
    /// `max_side` pixels.
    pub fn size(&mut self, key: &str, max_side: u32) -> Result<Option<(u32, u32)>> {
        let Some(value) = self.take(key) else { return Ok(None) };
        let side = |v: &Value| v.as_i64().filter(|_| !v.is_f64()).and_then(|i| u32::try_from(i).ok()).filter(|&i| i > 0 && i <= max_side);
        let bad = || Error::invalid_option(key, format!("must be a positive integer up to {max_side} or [height, width] of such, got {}", display(&value)));
        if let Some(s) = side(&value) {
            return Ok(Some((s, s)));
        }
        match &value {
            Value::Array(pair) if pair.len() == 2 => Ok(Some((side(&pair[0]).ok_or_else(bad)?, side(&pair[1]).ok_or_else(bad)?))),
            _ => Err(bad()),
        }
    }

    fn array(&mut self, key: &str) -> Result<Option<Vec<Value>>> {
        self.take(key)
            .map(|v| match v {
                Value::Array(items) => Ok(items),
                other => Err(wrong_type(key, "an array", &other)),
            })
            .transpose()
    }

    pub fn map(&mut self, key: &str) -> Result<Option<Map<String, Value>>> {
        self.take(key)
            .map(|v| match v {
                Value::Object(m) if !is_foreign(&Value::Object(m.clone())) => Ok(m),
                other => Err(wrong_type(key, "a map #{ ... }", &other)),
            })
            .transpose()
    }
}

/// A value as a script would print it.
fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "()".into(),
        other if is_foreign(other) => type_name(other),
        other => other.to_string(),
    }
}

fn wrong_type(key: &str, expected: &str, got: &Value) -> Error {
    Error::invalid_option(key, format!("must be {expected}, got {}", type_name(got)))
}
