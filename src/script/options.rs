//! Reading a Rhai options map into typed values. Unknown keys are errors listing the valid
//! ones, so a typo like `schedual` never passes silently.
use rhai::{Array, Dynamic, Map};

use crate::error::{Error, Result};

pub struct Options {
    map: Map,
}

impl Options {
    /// Fails on the first key of `map` that is not in `allowed`.
    pub fn new(map: Map, context: &str, allowed: &[&str]) -> Result<Self> {
        if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Error::UnknownOption { name: key.to_string(), context: context.to_owned(), valid: allowed.join(", ") });
        }
        Ok(Options { map })
    }

    fn take(&mut self, key: &str) -> Option<Dynamic> {
        self.map.remove(key)
    }

    pub fn int(&mut self, key: &str) -> Result<Option<i64>> {
        self.take(key).map(|v| v.as_int().map_err(|t| wrong_type(key, "an integer", t))).transpose()
    }

    /// A non-negative integer, as a count or a seed.
    pub fn count(&mut self, key: &str) -> Result<Option<u64>> {
        self.int(key)?
            .map(|v| u64::try_from(v).map_err(|_| Error::invalid_option(key, format!("must be >= 0, got {v}"))))
            .transpose()
    }

    /// A number; integers are accepted too.
    pub fn float(&mut self, key: &str) -> Result<Option<f64>> {
        self.take(key)
            .map(|v| v.as_float().or_else(|_| v.as_int().map(|i| i as f64)).map_err(|_| wrong_type(key, "a number", v.type_name())))
            .transpose()
    }

    pub fn bool(&mut self, key: &str) -> Result<Option<bool>> {
        self.take(key).map(|v| v.as_bool().map_err(|t| wrong_type(key, "true or false", t))).transpose()
    }

    pub fn string(&mut self, key: &str) -> Result<Option<String>> {
        self.take(key).map(|v| v.into_string().map_err(|t| wrong_type(key, "a string", t))).transpose()
    }

    /// `device`: "auto", "cpu", "cuda" or "cuda:N".
    pub fn device(&mut self) -> Result<Option<crate::device::DeviceChoice>> {
        self.string("device")?.map(|s| s.parse()).transpose()
    }

    pub fn ints(&mut self, key: &str) -> Result<Option<Vec<i64>>> {
        self.array(key)?
            .map(|items| items.into_iter().map(|v| v.as_int().map_err(|t| wrong_type(key, "an array of integers", t))).collect())
            .transpose()
    }

    pub fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>> {
        self.array(key)?
            .map(|items| items.into_iter().map(|v| v.into_string().map_err(|t| wrong_type(key, "an array of strings", t))).collect())
            .transpose()
    }

    /// An array of integer arrays, e.g. `[[3, 3], [0, 3]]`.
    pub fn array_of_arrays(&mut self, key: &str) -> Result<Option<Vec<Vec<i64>>>> {
        self.array(key)?
            .map(|items| {
                items
                    .into_iter()
                    .map(|item| {
                        let type_name = item.type_name();
                        item.try_cast::<Array>()
                            .ok_or_else(|| wrong_type(key, "an array of [x, y] arrays", type_name))?
                            .into_iter()
                            .map(|v| v.as_int().map_err(|t| wrong_type(key, "an array of integer arrays", t)))
                            .collect()
                    })
                    .collect()
            })
            .transpose()
    }

    /// `(height, width)` from `[h, w]`, or from one integer for a square.
    pub fn size(&mut self, key: &str) -> Result<Option<(u32, u32)>> {
        let Some(value) = self.take(key) else { return Ok(None) };
        let side = |v: &Dynamic| v.as_int().ok().and_then(|i| u32::try_from(i).ok()).filter(|&i| i > 0);
        let bad = || Error::invalid_option(key, format!("must be a positive integer or [height, width], got {value}"));
        if let Some(s) = side(&value) {
            return Ok(Some((s, s)));
        }
        match value.clone().try_cast::<Array>().as_deref() {
            Some([h, w]) => Ok(Some((side(h).ok_or_else(bad)?, side(w).ok_or_else(bad)?))),
            _ => Err(bad()),
        }
    }

    fn array(&mut self, key: &str) -> Result<Option<Array>> {
        self.take(key)
            .map(|v| {
                let type_name = v.type_name();
                v.try_cast::<Array>().ok_or_else(|| wrong_type(key, "an array", type_name))
            })
            .transpose()
    }

    pub fn map(&mut self, key: &str) -> Result<Option<Map>> {
        self.take(key)
            .map(|v| {
                let type_name = v.type_name();
                v.try_cast::<Map>().ok_or_else(|| wrong_type(key, "a map #{ ... }", type_name))
            })
            .transpose()
    }
}

fn wrong_type(key: &str, expected: &str, got: &str) -> Error {
    Error::invalid_option(key, format!("must be {expected}, got {got}"))
}
