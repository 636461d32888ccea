//! Tensors as PyTorch pickles them inside a `pickle.dump`.
//!
//! `Tensor.__reduce_ex__` gives `torch._utils._rebuild_tensor_v2(storage,
//! storage_offset, size, stride, requires_grad, backward_hooks)` (a
//! `Parameter` wraps that in `_rebuild_parameter(data, requires_grad,
//! hooks)`), and a storage's `__reduce__` gives
//! `torch.storage._load_from_bytes(b)` where `b` is a legacy-format
//! `torch.save` of the storage alone: five pickles in a row — the magic
//! number, the protocol version (1001), a `sys_info` dict, the storage as a
//! persistent id `('storage', torch.FloatStorage, key, location, numel,
//! view_metadata)`, the list of storage keys — then per key its element
//! count (u64 little-endian) and its raw little-endian bytes. torch 1.6
//! through 2.x (`torch/storage.py`, `torch/serialization.py:_legacy_save`)
//! all write this form, so NVIDIA's published pickles (torch 1.7–1.9) and a
//! snapshot written today read the same way.

use super::vm::{self, Id, Node, Val};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::rc::Rc;

/// The globals tensors bring into the outer pickle.
pub const GLOBALS: &[(&str, &str)] = &[
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "Tensor"),
    ("torch.nn.parameter", "Parameter"),
    ("torch.storage", "_load_from_bytes"),
    ("collections", "OrderedDict"),
];

/// `torch.serialization.MAGIC_NUMBER` (0x1950a86a20f9469cfc6c) as pickled.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL: i64 = 1001;

/// Element types of storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    F64,
}

impl Dtype {
    fn of_storage(name: &str) -> std::result::Result<Dtype, String> {
        Ok(match name {
            "FloatStorage" => Dtype::F32,
            "HalfStorage" => Dtype::F16,
            "BFloat16Storage" => Dtype::BF16,
            "DoubleStorage" => Dtype::F64,
            other => {
                return Err(format!(
                    "storage type torch.{other} is not a floating-point type (network tensors are float32, float16, bfloat16 or float64)"
                ))
            }
        })
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::F64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F16 => "float16",
            Dtype::BF16 => "bfloat16",
            Dtype::F64 => "float64",
        }
    }

    fn read(self, b: &[u8]) -> f32 {
        match self {
            Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Dtype::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dtype::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dtype::F64 => {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
        }
    }
}

/// A decoded storage: its element type and raw little-endian bytes.
#[derive(Debug)]
pub struct Storage {
    pub dtype: Dtype,
    pub bytes: Vec<u8>,
}

impl Storage {
    pub fn numel(&self) -> usize {
        self.bytes.len() / self.dtype.size()
    }
}

/// A tensor read from a pickle, converted to f32 (row-major, contiguous).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorData {
    /// The element type in the file.
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads tensors of one pickle, decoding each storage once (tensors may
/// share one).
#[derive(Default)]
pub struct Reader {
    storages: HashMap<Id, Rc<Storage>>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Io(msg.into())
}

fn usizes(v: Val, what: &str) -> Result<Vec<usize>> {
    let items = v
        .seq()
        .ok_or_else(|| bad(format!("{what} is a {}, not a tuple", v.kind())))?;
    items
        .iter()
        .map(|x| {
            x.as_int()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| bad(format!("{what} holds a {} that is not a size", x.kind())))
        })
        .collect()
}

impl Reader {
    /// Whether `v` is a pickled tensor or parameter.
    pub fn is_tensor(v: Val) -> bool {
        matches!(
            v.call(),
            Some((
                ("torch._utils", _) | ("torch._tensor", "_rebuild_from_type_v2"),
                _
            ))
        )
    }

    /// The tensor `v` (a `_rebuild_*` record); errors say what is wrong
    /// without the tensor's name, which the caller adds.
    pub fn tensor(&mut self, v: Val) -> Result<TensorData> {
        let Some((func, args)) = v.call() else {
            return Err(bad(format!("a {} where a tensor was expected", v.kind())));
        };
        match func {
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                let data = args
                    .first()
                    .ok_or_else(|| bad("_rebuild_parameter without data"))?;
                self.tensor(*data)
            }
            ("torch._tensor", "_rebuild_from_type_v2") => {
                // (func, type, args, state): a Tensor subclass; rebuild the data.
                let [f, _ty, inner, ..] = args.as_slice() else {
                    return Err(bad("_rebuild_from_type_v2 with too few arguments"));
                };
                match f.global() {
                    Some(("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor")) => {}
                    _ => {
                        return Err(bad(
                            "_rebuild_from_type_v2 of something other than a tensor",
                        ))
                    }
                }
                let inner = inner
                    .seq()
                    .ok_or_else(|| bad("_rebuild_from_type_v2 arguments are not a tuple"))?;
                self.rebuild(&inner)
            }
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => self.rebuild(&args),
            (m, n) => Err(bad(format!("{m}.{n}(...) where a tensor was expected"))),
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, ...)`.
    fn rebuild(&mut self, args: &[Val]) -> Result<TensorData> {
        let [storage, offset, size, stride, ..] = args else {
            return Err(bad("_rebuild_tensor_v2 with fewer than 4 arguments"));
        };
        let storage = self.storage(*storage)?;
        let offset = offset
            .as_int()
            .and_then(|o| usize::try_from(o).ok())
            .ok_or_else(|| bad("tensor storage offset is not a size"))?;
        let shape = usizes(*size, "tensor size")?;
        let stride = usizes(*stride, "tensor stride")?;
        if stride.len() != shape.len() {
            return Err(bad(format!(
                "tensor size {shape:?} and stride {stride:?} differ in length"
            )));
        }
        let numel = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad(format!("tensor size {shape:?} overflows")))?;
        // The last element's index must lie inside the storage.
        if numel > 0 {
            let last = shape
                .iter()
                .zip(&stride)
                .try_fold(offset, |a, (&d, &s)| a.checked_add((d - 1).checked_mul(s)?))
                .filter(|&l| l < storage.numel());
            if last.is_none() {
                return Err(bad(format!(
                    "tensor of size {shape:?}, stride {stride:?}, offset {offset} reaches past its storage of {} elements",
                    storage.numel()
                )));
            }
        }
        let es = storage.dtype.size();
        let mut data = Vec::with_capacity(numel);
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..numel {
            let at: usize = offset + idx.iter().zip(&stride).map(|(i, s)| i * s).sum::<usize>();
            data.push(storage.dtype.read(&storage.bytes[at * es..(at + 1) * es]));
            for d in (0..shape.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(TensorData {
            dtype: storage.dtype,
            shape,
            data,
        })
    }

    fn storage(&mut self, v: Val) -> Result<Rc<Storage>> {
        if let Some(s) = self.storages.get(&v.id) {
            return Ok(s.clone());
        }
        let s = match v.call() {
            Some((("torch.storage", "_load_from_bytes"), args)) => {
                let b = args
                    .first()
                    .and_then(|b| b.as_bytes())
                    .ok_or_else(|| bad("_load_from_bytes without bytes"))?;
                Rc::new(load_legacy_storage(b)?)
            }
            _ => {
                return Err(bad(format!(
                    "tensor storage is a {}, not torch.storage._load_from_bytes(...)",
                    v.kind()
                )))
            }
        };
        self.storages.insert(v.id, s.clone());
        Ok(s)
    }
}

/// One storage from the bytes of a legacy-format `torch.save(storage)`.
pub fn load_legacy_storage(b: &[u8]) -> Result<Storage> {
    const WHAT: &str = "torch.save data of a storage";
    let none = |_: &str, _: &str| false;
    let storages = |m: &str, n: &str| m == "torch" && n.ends_with("Storage");
    let mut pos = 0;
    let mut next = |allowed: &dyn Fn(&str, &str) -> bool| -> Result<vm::Pickle> {
        let p = vm::read(&b[pos..], WHAT, allowed)?;
        pos += p.len;
        Ok(p)
    };
    let magic = next(&none)?;
    if *magic.root().node() != Node::BigInt(MAGIC.to_vec()) {
        if b.starts_with(b"PK") {
            return Err(bad(format!(
                "{WHAT}: a zip-format torch.save; torch writes storages inside pickles in the legacy format, and only that is read"
            )));
        }
        return Err(bad(format!("{WHAT}: no torch.save magic number")));
    }
    let proto = next(&none)?;
    if proto.root().as_int() != Some(LEGACY_PROTOCOL) {
        return Err(bad(format!(
            "{WHAT}: protocol version {:?}, expected {LEGACY_PROTOCOL}",
            proto.root().node()
        )));
    }
    let sys_info = next(&none)?;
    if sys_info
        .root()
        .get("little_endian")
        .and_then(|v| v.as_bool())
        == Some(false)
    {
        return Err(bad(format!("{WHAT}: written on a big-endian machine")));
    }
    let obj = next(&storages)?;
    let Node::PersId(pid) = obj.root().node() else {
        return Err(bad(format!(
            "{WHAT}: holds a {}, not a storage",
            obj.root().kind()
        )));
    };
    let rec = obj.val(*pid).seq().unwrap_or_default();
    let (ty, key, numel, view) = match rec.as_slice() {
        [tag, ty, key, _location, numel, view] if tag.as_str() == Some("storage") => {
            (*ty, *key, *numel, *view)
        }
        _ => {
            return Err(bad(format!(
                "{WHAT}: a persistent id that is not a storage record"
            )))
        }
    };
    let dtype = Dtype::of_storage(ty.global().map(|g| g.1).unwrap_or("?"))
        .map_err(|e| bad(format!("{WHAT}: {e}")))?;
    let key = key
        .as_str()
        .ok_or_else(|| bad(format!("{WHAT}: storage key is not a string")))?
        .to_string();
    let numel = numel
        .as_int()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| bad(format!("{WHAT}: storage size is not a size")))?;
    let keys = next(&none)?;
    let keys: Vec<String> = keys
        .root()
        .seq()
        .unwrap_or_default()
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    // The data of each key in order; ours is the one whose key matches.
    let mut root = None;
    for k in &keys {
        let n = b
            .get(pos..pos + 8)
            .ok_or_else(|| bad(format!("{WHAT}: truncated before the data of storage {k}")))?;
        let n = u64::from_le_bytes(n.try_into().expect("8 bytes")) as usize;
        pos += 8;
        let len = n
            .checked_mul(dtype.size())
            .filter(|&l| l <= b.len() - pos)
            .ok_or_else(|| {
                bad(format!(
                    "{WHAT}: truncated: storage {k} needs {n} elements, {} bytes are left",
                    b.len() - pos
                ))
            })?;
        if *k == key {
            root = Some(b[pos..pos + len].to_vec());
        }
        pos += len;
    }
    let bytes = root.ok_or_else(|| bad(format!("{WHAT}: no data for storage {key}")))?;
    // A view (older torch): (view_key, offset, size) into the root storage.
    let bytes = match view.seq() {
        Some(v) if v.len() == 3 => {
            let off = v[1].as_int().unwrap_or(-1);
            let len = v[2].as_int().unwrap_or(-1);
            let es = dtype.size() as i64;
            if off < 0 || len < 0 || (off + len) * es > bytes.len() as i64 {
                return Err(bad(format!("{WHAT}: storage view out of range")));
            }
            bytes[(off * es) as usize..((off + len) * es) as usize].to_vec()
        }
        _ => bytes,
    };
    if bytes.len() < numel * dtype.size() {
        return Err(bad(format!(
            "{WHAT}: storage {key} holds {} elements, its record says {numel}",
            bytes.len() / dtype.size()
        )));
    }
    Ok(Storage { dtype, bytes })
}
