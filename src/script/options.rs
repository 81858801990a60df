//! A script's options map (`#{ … }`) as the JSON map the library's `from_options`
//! constructors read. Values JSON cannot hold (a data set handle given as an option) are
//! carried as their type name, so the library's error names the key and the type.
use rhai::{Dynamic, Map};
use serde_json::{Number, Value};

use crate::error::{Error, Result};
use crate::options::FOREIGN_TYPE_KEY;

/// How deep maps and arrays may nest in an options map (a self-referencing array would
/// otherwise never end).
const MAX_DEPTH: usize = 32;

pub fn to_json(map: Map) -> Result<serde_json::Map<String, Value>> {
    map.into_iter().map(|(k, v)| Ok((k.to_string(), value(v, 0)?))).collect()
}

fn value(v: Dynamic, depth: usize) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(Error::msg(format!("an options map nests deeper than {MAX_DEPTH} levels")));
    }
    if v.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = v.as_int() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(f) = v.as_float() {
        // NaN and inf are not JSON numbers. Carried as a foreign value (not as the text "NaN",
        // which a name or path option would take), every reader refuses them naming the key.
        return Ok(Number::from_f64(f).map_or_else(|| foreign(&format!("f64 {f}")), Value::Number));
    }
    if v.is_string() {
        return Ok(Value::String(v.into_string().unwrap_or_default()));
    }
    if v.is_array() {
        let items = v.cast::<rhai::Array>();
        return Ok(Value::Array(items.into_iter().map(|i| value(i, depth + 1)).collect::<Result<_>>()?));
    }
    if v.is_map() {
        let m = v.cast::<Map>();
        return Ok(Value::Object(m.into_iter().map(|(k, v)| Ok((k.to_string(), value(v, depth + 1)?))).collect::<Result<_>>()?));
    }
    Ok(foreign(v.type_name()))
}

/// A value JSON cannot hold, as the marker the options reader names by its type.
fn foreign(type_name: &str) -> Value {
    let mut marker = serde_json::Map::new();
    marker.insert(FOREIGN_TYPE_KEY.into(), Value::String(type_name.to_owned()));
    Value::Object(marker)
}
