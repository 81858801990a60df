//! Reads PyTorch state dicts saved with `torch.save` in the legacy (pre-zip, before torch 1.6 or
//! `_use_new_zipfile_serialization=False`) format, without Python. That format is four pickles
//! (magic number, protocol version, system info, the object) and a fifth one listing the
//! storage keys, followed by each storage's raw little-endian data preceded by its element
//! count. Tensors in the object pickle are `torch._utils._rebuild_tensor_v2(storage, offset,
//! size, stride, …)` calls whose storage is a persistent id `('storage', torch.FloatStorage,
//! key, location, numel, view)`.
//!
//! The pickle machine below implements the opcodes of protocols 0–4 that such files use; any
//! other opcode is an error naming it and its byte offset.
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// The magic number the legacy format starts with (`torch.serialization.MAGIC_NUMBER`,
/// 0x1950a86a20f9469cfc6c), as the little-endian bytes of a pickled long.
const MAGIC_NUMBER: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64, as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    /// A call the reader does not interpret (an arbitrary object); kept so that a state dict
    /// nested in it is still an error with a message, not a crash.
    Object(Box<Value>, Box<Value>),
    Storage { key: String, kind: Kind },
    Tensor(TensorRef),
}

#[derive(Debug, Clone, PartialEq)]
struct TensorRef {
    key: String,
    kind: Kind,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

struct Unpickler<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
}

fn storage_kind(name: &str) -> Option<(Kind, usize)> {
    Some(match name {
        "FloatStorage" => (Kind::Float, 4),
        "DoubleStorage" => (Kind::Double, 8),
        "HalfStorage" => (Kind::Half, 2),
        "BFloat16Storage" => (Kind::BFloat16, 2),
        "LongStorage" => (Kind::Int64, 8),
        "IntStorage" => (Kind::Int, 4),
        "ShortStorage" => (Kind::Int16, 2),
        "CharStorage" => (Kind::Int8, 1),
        "ByteStorage" => (Kind::Uint8, 1),
        "BoolStorage" => (Kind::Bool, 1),
        _ => return None,
    })
}

fn element_size(kind: Kind) -> usize {
    match kind {
        Kind::Double | Kind::Int64 => 8,
        Kind::Float | Kind::Int => 4,
        Kind::Half | Kind::BFloat16 | Kind::Int16 => 2,
        _ => 1,
    }
}

impl<'a> Unpickler<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Unpickler { bytes, pos: 0, stack: vec![], marks: vec![], memo: HashMap::new() }
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("the file ends inside a pickle (truncated?)")?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn line(&mut self) -> std::result::Result<String, String> {
        let rest = &self.bytes[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or("unterminated GLOBAL line")?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn pop(&mut self) -> std::result::Result<Value, String> {
        self.stack.pop().ok_or_else(|| "pickle stack underflow".to_owned())
    }

    fn pop_mark(&mut self) -> std::result::Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("pickle MARK missing")?;
        if mark > self.stack.len() {
            return Err("pickle MARK beyond the stack".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn top(&mut self) -> std::result::Result<&mut Value, String> {
        self.stack.last_mut().ok_or_else(|| "pickle stack underflow".to_owned())
    }

    fn string(&mut self, n: usize) -> std::result::Result<Value, String> {
        let bytes = self.take(n)?;
        Ok(Value::Str(String::from_utf8_lossy(bytes).into_owned()))
    }

    /// Runs one pickle to its STOP and returns its value.
    fn load(&mut self) -> std::result::Result<Value, String> {
        self.stack.clear();
        self.marks.clear();
        self.memo.clear();
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                }
                0x95 => {
                    self.le::<8>()?;
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b')' => self.stack.push(Value::Tuple(vec![])),
                b'}' => self.stack.push(Value::Dict(vec![])),
                b']' => self.stack.push(Value::List(vec![])),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = items.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].clone(), c[1].clone())).collect();
                    self.stack.push(Value::Dict(pairs));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("pickle stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v as i64));
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let bytes = self.take(n)?;
                    if n > 8 {
                        self.stack.push(Value::BigInt(bytes.to_vec()));
                        continue;
                    }
                    let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
                    buf[..n].copy_from_slice(bytes);
                    self.stack.push(Value::Int(i64::from_le_bytes(buf)));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.stack.push(Value::Float(v));
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.le()?) as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'T' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let v = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(v));
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let v = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(v));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => return Err(format!("STACK_GLOBAL at byte {at} without module and name strings")),
                    }
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    let v = self.top()?.clone();
                    self.memo.insert(k, v);
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.le()?) as u64;
                    let v = self.top()?.clone();
                    self.memo.insert(k, v);
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    let v = self.top()?.clone();
                    self.memo.insert(k, v);
                }
                b'h' | b'j' => {
                    let k = if op == b'h' { self.u8()? as u64 } else { u32::from_le_bytes(self.le()?) as u64 };
                    let v = self.memo.get(&k).cloned().ok_or_else(|| format!("memo key {k} unset at byte {at}"))?;
                    self.stack.push(v);
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(persistent_load(pid)?);
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    self.stack.push(reduce(func, args)?);
                }
                b'b' => {
                    // BUILD sets an object's state; an OrderedDict's `_metadata` and other
                    // attributes do not matter for a state dict.
                    self.pop()?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    match self.top()? {
                        Value::Dict(pairs) => pairs.push((key, value)),
                        _ => return Err(format!("SETITEM at byte {at} on a non-dict")),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::Dict(pairs) => pairs.extend(items.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].clone(), c[1].clone()))),
                        _ => return Err(format!("SETITEMS at byte {at} on a non-dict")),
                    }
                }
                b'a' => {
                    let value = self.pop()?;
                    match self.top()? {
                        Value::List(items) => items.push(value),
                        _ => return Err(format!("APPEND at byte {at} on a non-list")),
                    }
                }
                b'e' => {
                    let values = self.pop_mark()?;
                    match self.top()? {
                        Value::List(items) => items.extend(values),
                        _ => return Err(format!("APPENDS at byte {at} on a non-list")),
                    }
                }
                other => return Err(format!("unsupported pickle opcode 0x{other:02x} at byte {at}")),
            }
        }
    }
}

fn persistent_load(pid: Value) -> std::result::Result<Value, String> {
    match pid {
        Value::Tuple(items) if items.len() >= 3 && items[0] == Value::Str("storage".into()) => match (&items[1], &items[2]) {
            (Value::Global(_, type_name), Value::Str(key)) => {
                let (kind, _) = storage_kind(type_name).ok_or_else(|| format!("unsupported storage type torch.{type_name}"))?;
                Ok(Value::Storage { key: key.clone(), kind })
            }
            _ => Err("malformed storage persistent id".into()),
        },
        other => Err(format!("unsupported persistent id {other:?}")),
    }
}

fn int_list(v: &Value, what: &str) -> std::result::Result<Vec<i64>, String> {
    match v {
        Value::Tuple(items) | Value::List(items) => items
            .iter()
            .map(|i| match i {
                Value::Int(x) => Ok(*x),
                _ => Err(format!("tensor {what} holds a non-integer")),
            })
            .collect(),
        _ => Err(format!("tensor {what} is not a tuple")),
    }
}

fn reduce(func: Value, args: Value) -> std::result::Result<Value, String> {
    let Value::Global(module, name) = &func else {
        return Ok(Value::Object(Box::new(func), Box::new(args)));
    };
    let items = match &args {
        Value::Tuple(items) => items.as_slice(),
        _ => &[],
    };
    match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") => Ok(Value::Dict(vec![])),
        ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2") if items.len() >= 4 => {
            let Value::Storage { key, kind } = &items[0] else { return Err("tensor without a storage".into()) };
            let Value::Int(offset) = items[1] else { return Err("tensor storage offset is not an integer".into()) };
            Ok(Value::Tensor(TensorRef {
                key: key.clone(),
                kind: *kind,
                offset,
                size: int_list(&items[2], "size")?,
                stride: int_list(&items[3], "stride")?,
            }))
        }
        // nn.Parameter(data, requires_grad, hooks): the data is what a state dict needs.
        ("torch._utils", "_rebuild_parameter") if !items.is_empty() => Ok(items[0].clone()),
        _ => Ok(Value::Object(Box::new(func), Box::new(args))),
    }
}

/// The state dict in `value`: a dict of tensors, or a checkpoint dict holding one under
/// `state_dict` or `model`.
fn state_dict_of(value: Value) -> std::result::Result<Vec<(String, TensorRef)>, String> {
    let Value::Dict(pairs) = value else { return Err("the saved object is not a dict (a state dict was expected)".into()) };
    let is_state_dict = pairs.iter().any(|(_, v)| matches!(v, Value::Tensor(_)));
    if !is_state_dict {
        for wrapper in ["state_dict", "model", "model_state_dict"] {
            if let Some((_, inner)) = pairs.iter().find(|(k, _)| *k == Value::Str(wrapper.into())) {
                return state_dict_of(inner.clone());
            }
        }
        return Err("the saved dict holds no tensors (nor a 'state_dict' or 'model' entry)".into());
    }
    Ok(pairs
        .into_iter()
        .filter_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Tensor(t)) => Some((k, t)),
            _ => None,
        })
        .collect())
}

/// Reads every tensor of the state dict saved at `path`, in file order, on the CPU.
pub fn load_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut bytes = vec![];
    std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| Error::io(path, e))?;
    let data_error = |message: String| Error::Data { path: path.to_owned(), message };
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(data_error(
            "this is the zip format of torch.save (torch ≥ 1.6); huelab reads the legacy format: re-save with \
             torch.save(state_dict, path, _use_new_zipfile_serialization=False)"
                .into(),
        ));
    }
    let mut reader = Unpickler::new(&bytes);
    let header = |reader: &mut Unpickler, what: &str| reader.load().map_err(|e| data_error(format!("not a PyTorch file ({what}: {e})")));
    if header(&mut reader, "magic number")? != Value::BigInt(MAGIC_NUMBER.to_vec()) {
        return Err(data_error("not a PyTorch legacy-format file (wrong magic number)".into()));
    }
    match header(&mut reader, "protocol version")? {
        Value::Int(PROTOCOL_VERSION) => {}
        other => return Err(data_error(format!("unsupported PyTorch protocol version {other:?} (expected {PROTOCOL_VERSION})"))),
    }
    header(&mut reader, "system info")?;
    let object = reader.load().map_err(|e| data_error(format!("cannot read the saved object: {e}")))?;
    let entries = state_dict_of(object).map_err(data_error)?;
    let keys = match reader.load().map_err(|e| data_error(format!("cannot read the storage list: {e}")))? {
        Value::List(keys) => keys,
        _ => return Err(data_error("the storage list is not a list".into())),
    };

    let kinds: HashMap<&str, Kind> = entries.iter().map(|(_, t)| (t.key.as_str(), t.kind)).collect();
    let mut storages: HashMap<String, Tensor> = HashMap::new();
    let mut pos = reader.pos;
    for key in keys {
        let Value::Str(key) = key else { return Err(data_error("a storage key is not a string".into())) };
        let truncated = || data_error(format!("truncated: storage '{key}' ends past the end of the file"));
        let count_bytes: [u8; 8] = bytes.get(pos..pos + 8).ok_or_else(truncated)?.try_into().expect("8 bytes");
        let count = u64::from_le_bytes(count_bytes) as usize;
        // Storages no tensor refers to (rare) still have to be skipped; assume 4-byte floats.
        let kind = kinds.get(key.as_str()).copied().unwrap_or(Kind::Float);
        let len = count.checked_mul(element_size(kind)).ok_or_else(truncated)?;
        let data = bytes.get(pos + 8..pos + 8 + len).ok_or_else(truncated)?;
        storages.insert(key.clone(), Tensor::f_from_data_size(data, &[count as i64], kind)?);
        pos += 8 + len;
    }

    entries
        .into_iter()
        .map(|(name, t)| {
            let storage = storages.get(&t.key).ok_or_else(|| data_error(format!("tensor '{name}': storage '{}' missing", t.key)))?;
            let numel = storage.size()[0];
            let last = t.offset + t.size.iter().zip(&t.stride).map(|(s, st)| (s - 1).max(0) * st).sum::<i64>();
            if t.size.len() != t.stride.len() || (t.size.iter().all(|&s| s > 0) && last >= numel) {
                return Err(data_error(format!("tensor '{name}' of size {:?} does not fit its storage of {numel} elements", t.size)));
            }
            let tensor = storage.f_as_strided(&t.size, &t.stride, Some(t.offset))?.f_contiguous()?;
            Ok((name, tensor))
        })
        .collect()
}
