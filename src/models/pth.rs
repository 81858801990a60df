//! Reads PyTorch state dicts saved with `torch.save`, without Python, in both formats:
//! - the **zip** format (the default since torch 1.6, e.g. torchvision's published weights): a
//!   zip archive holding `<name>/data.pkl` (the object) and `<name>/data/<key>` (each storage's
//!   raw little-endian data);
//! - the **legacy** format (before 1.6, or `_use_new_zipfile_serialization=False`): four
//!   pickles (magic number, protocol version, system info, the object) and a fifth one listing
//!   the storage keys, followed by each storage's data preceded by its element count.
//!
//! In both, tensors in the object pickle are `torch._utils._rebuild_tensor_v2(storage, offset,
//! size, stride, …)` calls whose storage is a persistent id `('storage', torch.FloatStorage,
//! key, location, numel)`. `.safetensors` files are read too.
//!
//! The pickle machine below implements the opcodes of protocols 0–4 that such files use; any
//! other opcode is an error naming it and its byte offset. It is bounded: values nest at most
//! [`MAX_DEPTH`] deep and the values it builds (memo copies included) hold at most
//! [`MAX_NODES`] nodes, so no file can overflow the stack or exhaust memory.
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// The magic number the legacy format starts with (`torch.serialization.MAGIC_NUMBER`,
/// 0x1950a86a20f9469cfc6c), as the little-endian bytes of a pickled long.
const MAGIC_NUMBER: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

/// How deep pickled values may nest (a state dict nests 3 or 4 deep).
const MAX_DEPTH: u32 = 100;
/// How many value nodes (a string counting one per 64 bytes) a pickle may build in all. A node
/// costs up to about 80 bytes, so this bounds the values at about 800 MB (50 million let a pickle
/// that doubles through its memo exhaust a 3 GB limit first); the largest torchvision state
/// dicts build a few tens of thousands.
const MAX_NODES: u64 = 10_000_000;
/// How many memo entries a pickle may make. Each costs a hash-table slot beside its value, so
/// the node bound alone let a pickle of ten million tiny memoised values grow the table past a
/// gigabyte (an allocation abort under a memory limit, not an error); the largest torchvision
/// state dicts make a few thousand.
const MAX_MEMO_ENTRIES: usize = 1_000_000;
/// How many MARKs may be open at once: each container opened with one nests inside the
/// previous, so more than the depth bound cannot end in a value anyway.
const MAX_OPEN_MARKS: usize = MAX_DEPTH as usize * 4;

/// The size of a value on the machine's stack: its nesting depth and node count.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    depth: u32,
    nodes: u64,
}

impl Meta {
    fn leaf(bytes: usize) -> Self {
        Meta { depth: 0, nodes: 1 + bytes as u64 / 64 }
    }

    fn container<'a>(items: impl Iterator<Item = &'a Meta>) -> Self {
        let mut m = Meta { depth: 1, nodes: 1 };
        for i in items {
            m.depth = m.depth.max(i.depth + 1);
            m.nodes = m.nodes.saturating_add(i.nodes);
        }
        m
    }

    fn with_item(self, item: Meta) -> Self {
        Meta { depth: self.depth.max(item.depth + 1), nodes: self.nodes.saturating_add(item.nodes) }
    }
}

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
    /// The [`Meta`] of each stack entry.
    metas: Vec<Meta>,
    marks: Vec<usize>,
    memo: HashMap<u64, (Value, Meta)>,
    /// Nodes built so far.
    built: u64,
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
        Unpickler { bytes, pos: 0, stack: vec![], metas: vec![], marks: vec![], memo: HashMap::new(), built: 0 }
    }

    /// Pushes a value whose size is `meta`, within the bounds.
    fn push_meta(&mut self, value: Value, meta: Meta) -> std::result::Result<(), String> {
        if meta.depth > MAX_DEPTH {
            return Err(format!("the pickle nests values deeper than {MAX_DEPTH} levels at byte {}", self.pos));
        }
        self.built = self.built.saturating_add(meta.nodes);
        if self.built > MAX_NODES {
            return Err(format!("the pickle builds more than {MAX_NODES} values (at byte {}); not a state dict", self.pos));
        }
        self.stack.push(value);
        self.metas.push(meta);
        Ok(())
    }

    fn push(&mut self, value: Value) -> std::result::Result<(), String> {
        let bytes = match &value {
            Value::Str(s) => s.len(),
            Value::Bytes(b) | Value::BigInt(b) => b.len(),
            _ => 0,
        };
        self.push_meta(value, Meta::leaf(bytes))
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

    fn pop_with_meta(&mut self) -> std::result::Result<(Value, Meta), String> {
        let value = self.stack.pop().ok_or_else(|| "pickle stack underflow".to_owned())?;
        Ok((value, self.metas.pop().unwrap_or_default()))
    }

    fn pop(&mut self) -> std::result::Result<Value, String> {
        Ok(self.pop_with_meta()?.0)
    }

    fn pop_mark(&mut self) -> std::result::Result<(Vec<Value>, Meta), String> {
        let mark = self.marks.pop().ok_or("pickle MARK missing")?;
        if mark > self.stack.len() {
            return Err("pickle MARK beyond the stack".into());
        }
        let metas = self.metas.split_off(mark.min(self.metas.len()));
        Ok((self.stack.split_off(mark), Meta::container(metas.iter())))
    }

    /// The top value, to modify in place, after growing its size by `added`.
    fn top_adding(&mut self, added: Meta) -> std::result::Result<&mut Value, String> {
        let meta = self.metas.last_mut().ok_or_else(|| "pickle stack underflow".to_owned())?;
        *meta = meta.with_item(added);
        if meta.depth > MAX_DEPTH {
            return Err(format!("the pickle nests values deeper than {MAX_DEPTH} levels at byte {}", self.pos));
        }
        self.stack.last_mut().ok_or_else(|| "pickle stack underflow".to_owned())
    }

    fn top_with_meta(&self) -> std::result::Result<(Value, Meta), String> {
        let value = self.stack.last().ok_or_else(|| "pickle stack underflow".to_owned())?;
        Ok((value.clone(), self.metas.last().copied().unwrap_or_default()))
    }

    fn string(&mut self, n: usize) -> std::result::Result<Value, String> {
        let bytes = self.take(n)?;
        Ok(Value::Str(String::from_utf8_lossy(bytes).into_owned()))
    }

    /// Runs one pickle to its STOP and returns its value.
    fn load(&mut self) -> std::result::Result<Value, String> {
        self.stack.clear();
        self.metas.clear();
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
                b'(' => {
                    if self.marks.len() >= MAX_OPEN_MARKS {
                        return Err(format!("more than {MAX_OPEN_MARKS} MARKs open at byte {at}; not a state dict"));
                    }
                    self.marks.push(self.stack.len());
                }
                b')' => self.push(Value::Tuple(vec![]))?,
                b'}' => self.push(Value::Dict(vec![]))?,
                b']' => self.push(Value::List(vec![]))?,
                b't' => {
                    let (items, meta) = self.pop_mark()?;
                    self.push_meta(Value::Tuple(items), meta)?;
                }
                b'l' => {
                    let (items, meta) = self.pop_mark()?;
                    self.push_meta(Value::List(items), meta)?;
                }
                b'd' => {
                    let (items, meta) = self.pop_mark()?;
                    let pairs = items.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].clone(), c[1].clone())).collect();
                    self.push_meta(Value::Dict(pairs), meta)?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("pickle stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let metas = self.metas.split_off(self.metas.len() - n);
                    self.push_meta(Value::Tuple(items), Meta::container(metas.iter()))?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.push(Value::Int(v as i64))?;
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.push(Value::Int(v as i64))?;
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let bytes = self.take(n)?;
                    if n > 8 {
                        self.push(Value::BigInt(bytes.to_vec()))?;
                        continue;
                    }
                    let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
                    buf[..n].copy_from_slice(bytes);
                    self.push(Value::Int(i64::from_le_bytes(buf)))?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.push(Value::Float(v))?;
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let v = self.string(n)?;
                    self.push(v)?;
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.push(v)?;
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.le()?);
                    let v = self.string(usize::try_from(n).unwrap_or(usize::MAX))?;
                    self.push(v)?;
                }
                b'T' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let v = self.string(n)?;
                    self.push(v)?;
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.push(v)?;
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let v = self.take(n)?.to_vec();
                    self.push(Value::Bytes(v))?;
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let v = self.take(n)?.to_vec();
                    self.push(Value::Bytes(v))?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(module, name))?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.push(Value::Global(m, n))?,
                        _ => return Err(format!("STACK_GLOBAL at byte {at} without module and name strings")),
                    }
                }
                b'q' | b'r' | 0x94 => {
                    let k = match op {
                        b'q' => self.u8()? as u64,
                        b'r' => u32::from_le_bytes(self.le()?) as u64,
                        _ => self.memo.len() as u64,
                    };
                    let (v, meta) = self.top_with_meta()?;
                    // A memo entry is a copy: it costs its size, and its slot one node more.
                    self.built = self.built.saturating_add(meta.nodes).saturating_add(1);
                    if self.built > MAX_NODES {
                        return Err(format!("the pickle builds more than {MAX_NODES} values (at byte {at}); not a state dict"));
                    }
                    if self.memo.len() >= MAX_MEMO_ENTRIES && !self.memo.contains_key(&k) {
                        return Err(format!("the pickle memoises more than {MAX_MEMO_ENTRIES} values (at byte {at}); not a state dict"));
                    }
                    self.memo.insert(k, (v, meta));
                }
                b'h' | b'j' => {
                    let k = if op == b'h' { self.u8()? as u64 } else { u32::from_le_bytes(self.le()?) as u64 };
                    let (v, meta) = self.memo.get(&k).cloned().ok_or_else(|| format!("memo key {k} unset at byte {at}"))?;
                    self.push_meta(v, meta)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(persistent_load(pid)?)?;
                }
                b'R' | 0x81 => {
                    let (args, args_meta) = self.pop_with_meta()?;
                    let (func, func_meta) = self.pop_with_meta()?;
                    let meta = Meta::container([func_meta, args_meta].iter());
                    self.push_meta(reduce(func, args)?, meta)?;
                }
                b'b' => {
                    // BUILD sets an object's state; an OrderedDict's `_metadata` and other
                    // attributes do not matter for a state dict.
                    self.pop()?;
                }
                b's' => {
                    let (value, value_meta) = self.pop_with_meta()?;
                    let (key, key_meta) = self.pop_with_meta()?;
                    match self.top_adding(Meta::container([key_meta, value_meta].iter()))? {
                        Value::Dict(pairs) => pairs.push((key, value)),
                        _ => return Err(format!("SETITEM at byte {at} on a non-dict")),
                    }
                }
                b'u' => {
                    let (items, meta) = self.pop_mark()?;
                    match self.top_adding(meta)? {
                        Value::Dict(pairs) => pairs.extend(items.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].clone(), c[1].clone()))),
                        _ => return Err(format!("SETITEMS at byte {at} on a non-dict")),
                    }
                }
                b'a' => {
                    let (value, meta) = self.pop_with_meta()?;
                    match self.top_adding(meta)? {
                        Value::List(items) => items.push(value),
                        _ => return Err(format!("APPEND at byte {at} on a non-list")),
                    }
                }
                b'e' => {
                    let (values, meta) = self.pop_mark()?;
                    match self.top_adding(meta)? {
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

/// The largest state dict file huelab reads (torchvision's largest ImageNet checkpoints are
/// about 0.6 GB).
const MAX_FILE_BYTES: u64 = 8 << 30;

/// Reads every tensor of the state dict saved at `path` (zip or legacy `torch.save` format, or
/// `.safetensors`), in file order, on the CPU.
pub fn load_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let tensors = read_state_dict(path)?;
    super::weights::check_state(&tensors).map_err(|message| Error::Data { path: path.to_owned(), message })?;
    Ok(tensors)
}

fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let data_error = |message: String| Error::Data { path: path.to_owned(), message };
    // The format from the first bytes, so that a safetensors file is checked before it is read.
    let (file, _) = crate::input::open(path, MAX_FILE_BYTES)?;
    let mut head = Vec::with_capacity(16);
    file.take(16).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
    if is_safetensors_head(&head) {
        crate::input::safetensors(path, MAX_FILE_BYTES)?;
        let tensors = Tensor::read_safetensors(path).map_err(|e| data_error(format!("unreadable safetensors file: {}", crate::error::torch_message(&e))))?;
        return Ok(tensors);
    }
    let bytes = crate::input::read(path, MAX_FILE_BYTES)?;
    if bytes.starts_with(b"PK\x03\x04") {
        return load_zip(path, &bytes);
    }
    load_legacy(path, &bytes)
}

/// A safetensors file starts with the little-endian length of its JSON header, then `{`.
fn is_safetensors_head(head: &[u8]) -> bool {
    head.len() > 9 && {
        let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        n > 1 && n < (100 << 20) && head[8] == b'{'
    }
}

fn load_legacy(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let data_error = |message: String| Error::Data { path: path.to_owned(), message };
    let mut reader = Unpickler::new(bytes);
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
        let end = (pos + 8).checked_add(len).ok_or_else(truncated)?;
        let data = bytes.get(pos + 8..end).ok_or_else(truncated)?;
        storages.insert(key.clone(), Tensor::f_from_data_size(data, &[count as i64], kind)?);
        pos = end;
    }
    tensors_of(path, entries, &storages)
}

/// The zip format: `<archive>/data.pkl` and one `<archive>/data/<key>` entry per storage.
/// Reads every entry of the zip archive at `path` through (the zip reader checks each entry's
/// CRC-32 at its end), so a damaged TorchScript file is an error here instead of reaching
/// libtorch's loader, which reports (and, fuzzing showed, reads past) corrupt records.
pub fn verify_zip(path: &Path) -> Result<()> {
    let data_error = |message: String| Error::Data { path: path.to_owned(), message };
    let (mut file, len) = crate::input::open(path, MAX_FILE_BYTES)?;
    let mut tail = vec![0u8; len.min(ZIP_TAIL) as usize];
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::End(-(tail.len() as i64))).and_then(|_| file.read_exact(&mut tail)).map_err(|e| Error::io(path, e))?;
    check_zip_tail(&tail).map_err(data_error)?;
    let declared = {
        let mut read_at = |offset: u64, n: usize| -> Option<Vec<u8>> {
            let mut buf = vec![0u8; n];
            file.seek(SeekFrom::Start(offset)).ok()?;
            file.read_exact(&mut buf).ok()?;
            Some(buf)
        };
        declared_entries(&tail, len - tail.len() as u64, &mut read_at).map_err(data_error)?
    };
    file.rewind().map_err(|e| Error::io(path, e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| data_error(format!("not a readable zip archive: {e}")))?;
    check_unique_names(&archive, declared).map_err(data_error)?;
    // libtorch's reader allocates each entry's declared size before it reads it.
    check_declared_sizes(&mut archive, len.saturating_mul(64)).map_err(data_error)?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| data_error(format!("zip entry {i}: {e}")))?;
        let name = entry.name().to_owned();
        // An entry that unpacks to more than 64 times the whole file is a zip bomb, not a module.
        let limit = len.saturating_mul(64);
        let copied = std::io::copy(&mut entry.by_ref().take(limit + 1), &mut std::io::sink()).map_err(|e| data_error(format!("entry '{name}': {e}")))?;
        if copied > limit {
            return Err(data_error(format!("entry '{name}' unpacks to more than {limit} bytes")));
        }
    }
    Ok(())
}

/// The end-of-central-directory record lies in a zip file's last 22 bytes plus its comment
/// (at most 65 535 bytes); a file without it there is not a zip archive, however long (a
/// reader that looked further would scan gigabytes of a sparse file).
const ZIP_TAIL: u64 = 22 + 65_535;

/// How many times its own size a zip state dict may unpack to, all entries together.
const UNPACK_RATIO: u64 = 16;

/// How many times its storages' bytes a state dict's tensors may take once materialised: tied
/// weights share a storage, but a view that repeats its storage (stride 0, overlapping
/// strides) thousands of times is not a state dict, and would ask libtorch for gigabytes.
const VIEW_RATIO: u64 = 4;

fn check_zip_tail(tail: &[u8]) -> std::result::Result<(), String> {
    if tail.windows(4).any(|w| w == b"PK\x05\x06") {
        Ok(())
    } else {
        Err("not a zip archive: no end-of-central-directory record in its last 64 KiB (truncated, padded or sparse)".into())
    }
}

/// Two entries of one name would let the one read differ from the one checked (which one
/// wins is up to the reader). The zip crate keeps one entry per name, silently, so the count
/// its central directory declares (`declared`, from the end record) is compared with the
/// names it kept.
fn check_unique_names<R: std::io::Read + std::io::Seek>(archive: &zip::ZipArchive<R>, declared: u64) -> std::result::Result<(), String> {
    let kept = archive.len() as u64;
    if kept != declared {
        return Err(format!("the zip archive's directory declares {declared} entries but names only {kept} distinct ones: two entries share a name"));
    }
    Ok(())
}

/// The sizes the zip's directory declares, checked before any entry is read: all entries
/// together unpack to at most `budget` bytes, and a stored (uncompressed) entry, as torch.save
/// and TorchScript write every entry, declares as many bytes unpacked as it holds. A declared
/// size is what a reader allocates; the bytes read are checked against it only at the end.
fn check_declared_sizes<R: std::io::Read + std::io::Seek>(archive: &mut zip::ZipArchive<R>, budget: u64) -> std::result::Result<(), String> {
    let mut total = 0u64;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|e| format!("zip entry {i}: {e}"))?;
        if entry.compression() == zip::CompressionMethod::Stored && entry.size() != entry.compressed_size() {
            return Err(format!("entry '{}' is stored as {} bytes but declares {} unpacked", entry.name(), entry.compressed_size(), entry.size()));
        }
        total = total.saturating_add(entry.size());
        if total > budget {
            return Err(format!("the entries declare more than {budget} bytes unpacked (entry '{}' declares {}): more than such a file holds", entry.name(), entry.size()));
        }
    }
    Ok(())
}

/// The number of entries the zip's end record declares (its zip64 record's, when the classic
/// field says 0xFFFF). `tail` holds the file's last bytes, from offset `tail_offset`;
/// `read_at` reads elsewhere in the file (the zip64 record).
fn declared_entries(tail: &[u8], tail_offset: u64, read_at: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>) -> std::result::Result<u64, String> {
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    // The record whose comment runs exactly to the end of the file: a comment may itself
    // contain the signature.
    let end = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&p| tail[p..p + 4] == *b"PK\x05\x06" && p + 22 + u16_at(tail, p + 20) as usize == tail.len())
        .ok_or("not a zip archive: no end-of-central-directory record that ends the file")?;
    let count = u16_at(tail, end + 10);
    if count != u16::MAX {
        return Ok(u64::from(count));
    }
    let locator = end.checked_sub(20).filter(|&l| tail[l..l + 4] == *b"PK\x06\x07").ok_or("a zip64 archive without its end-record locator")?;
    let record_at = u64_at(tail, locator + 8);
    let record = if record_at >= tail_offset && ((record_at - tail_offset) as usize) + 40 <= tail.len() {
        tail[(record_at - tail_offset) as usize..][..40].to_vec()
    } else {
        read_at(record_at, 40).ok_or("the zip64 end record lies outside the file")?
    };
    if record[..4] != *b"PK\x06\x06" {
        return Err("the zip64 end-record locator points at no zip64 end record".into());
    }
    Ok(u64_at(&record, 32))
}

fn load_zip(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let data_error = |message: String| Error::Data { path: path.to_owned(), message };
    check_zip_tail(&bytes[bytes.len().saturating_sub(ZIP_TAIL as usize)..]).map_err(data_error)?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| data_error(format!("not a readable zip archive: {e}")))?;
    let tail_offset = bytes.len().saturating_sub(ZIP_TAIL as usize);
    let mut read_at = |offset: u64, n: usize| bytes.get(usize::try_from(offset).ok()?..).and_then(|rest| rest.get(..n)).map(<[u8]>::to_vec);
    let declared = declared_entries(&bytes[tail_offset..], tail_offset as u64, &mut read_at).map_err(data_error)?;
    check_unique_names(&archive, declared).map_err(data_error)?;
    check_declared_sizes(&mut archive, (bytes.len() as u64).saturating_mul(UNPACK_RATIO).saturating_add(1 << 20)).map_err(data_error)?;
    let pickle_name = archive
        .file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| n.len())
        .map(str::to_owned)
        .ok_or_else(|| data_error("a zip archive without data.pkl: not a torch.save file".into()))?;
    let prefix = pickle_name.trim_end_matches("data.pkl").to_owned();
    // An entry, at most `limit` bytes once unpacked, and all entries together at most
    // UNPACK_RATIO times the file: torch.save stores entries uncompressed, so more is a zip
    // bomb (or declared sizes that lie), refused before anything is allocated for it.
    let mut unpack_budget = (bytes.len() as u64).saturating_mul(UNPACK_RATIO).saturating_add(1 << 20);
    let mut read_entry = |name: &str, limit: u64| -> Result<Option<Vec<u8>>> {
        let limit = limit.min(unpack_budget);
        let mut entry = match archive.by_name(name) {
            Ok(e) => e,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(data_error(format!("entry '{name}': {e}"))),
        };
        if entry.size() > limit {
            return Err(data_error(format!("entry '{name}' unpacks to {} bytes, more than {limit} expected", entry.size())));
        }
        let mut out = Vec::new();
        entry.by_ref().take(limit + 1).read_to_end(&mut out).map_err(|e| data_error(format!("entry '{name}': {e}")))?;
        if out.len() as u64 > limit {
            return Err(data_error(format!("entry '{name}' unpacks to more than {limit} bytes")));
        }
        unpack_budget -= out.len() as u64;
        Ok(Some(out))
    };
    if let Some(order) = read_entry(&format!("{prefix}byteorder"), 16)? {
        if order.trim_ascii() != b"little" {
            return Err(data_error(format!("storages are {}-endian; huelab reads little-endian files", String::from_utf8_lossy(&order).trim())));
        }
    }
    let pickle = read_entry(&pickle_name, 1 << 30)?.ok_or_else(|| data_error("data.pkl vanished".into()))?;
    let object = Unpickler::new(&pickle).load().map_err(|e| data_error(format!("cannot read the saved object ({pickle_name}): {e}")))?;
    let entries = state_dict_of(object).map_err(data_error)?;
    let mut storages: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in &entries {
        if storages.contains_key(&t.key) {
            continue;
        }
        if !t.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(data_error(format!("tensor '{name}': storage key '{}' is not a plain name", t.key)));
        }
        let entry = format!("{prefix}data/{}", t.key);
        let data = read_entry(&entry, MAX_FILE_BYTES)?.ok_or_else(|| data_error(format!("tensor '{name}': storage entry '{entry}' missing")))?;
        let size = element_size(t.kind);
        if data.len() % size != 0 {
            return Err(data_error(format!("storage '{entry}' holds {} bytes, not a whole number of {:?} elements", data.len(), t.kind)));
        }
        storages.insert(t.key.clone(), Tensor::f_from_data_size(&data, &[(data.len() / size) as i64], t.kind)?);
    }
    tensors_of(path, entries, &storages)
}

/// The tensors of a state dict from their storages, each checked to fit its storage.
fn tensors_of(path: &Path, entries: Vec<(String, TensorRef)>, storages: &HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>> {
    let data_error = |message: String| Error::Data { path: path.to_owned(), message };
    let storage_bytes: u64 = storages.values().map(|s| s.size()[0] as u64 * element_size(s.kind()) as u64).sum();
    let mut view_budget = storage_bytes.saturating_mul(VIEW_RATIO).saturating_add(64 << 20);
    entries
        .into_iter()
        .map(|(name, t)| {
            let bytes = t.size.iter().try_fold(element_size(t.kind) as u64, |n, &s| n.checked_mul(u64::try_from(s).ok()?));
            match bytes {
                Some(b) if b <= view_budget => view_budget -= b,
                _ => {
                    return Err(data_error(format!(
                        "tensor '{name}' of size {:?} (stride {:?}) would take more than the {VIEW_RATIO} times its file's {storage_bytes} storage bytes that its views may repeat",
                        t.size, t.stride
                    )))
                }
            }
            let storage = storages.get(&t.key).ok_or_else(|| data_error(format!("tensor '{name}': storage '{}' missing", t.key)))?;
            let numel = storage.size()[0];
            let fits = t.size.len() == t.stride.len()
                && t.offset >= 0
                && t.size.iter().all(|&s| s >= 0)
                && t.stride.iter().all(|&s| s >= 0)
                && t.size.iter().zip(&t.stride).try_fold(t.offset, |last, (&s, &st)| last.checked_add((s - 1).max(0).checked_mul(st)?)).is_some_and(|last| t.size.contains(&0) || last < numel);
            if !fits {
                return Err(data_error(format!("tensor '{name}' of size {:?} (stride {:?}, offset {}) does not fit its storage of {numel} elements", t.size, t.stride, t.offset)));
            }
            let tensor = storage.f_as_strided(&t.size, &t.stride, Some(t.offset))?.f_contiguous()?;
            Ok((name, tensor))
        })
        .collect()
}
