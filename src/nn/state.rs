//! Parameters, buffers and state dicts under the official names, and their
//! safetensors files.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// Whether a state-dict entry is trained (a parameter) or only carried along
/// (a buffer: resample filters, `noise_const`, `w_avg`, frozen layers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Param,
    Buffer,
}

/// Joins a module prefix and a name with a dot (`"" + "weight"` = `"weight"`).
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A network part that owns parameters and buffers under official names.
pub trait Module {
    /// Calls `f` for every parameter and buffer, in the order of the official
    /// `state_dict()` (a module's own parameters, its buffers, then its children).
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind));

    /// Every parameter and buffer by name.
    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        self.visit("", &mut |name, t, _| sd.insert(name, t.clone()));
        sd
    }

    /// The trainable parameters by name (buffers excluded).
    fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit("", &mut |name, t, kind| {
            if kind == Kind::Param {
                out.push((name, t.clone()))
            }
        });
        out
    }

    /// The buffers by name.
    fn buffers(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit("", &mut |name, t, kind| {
            if kind == Kind::Buffer {
                out.push((name, t.clone()))
            }
        });
        out
    }

    /// Number of trainable scalars (the official parameter count: buffers excluded).
    fn num_params(&self) -> usize {
        self.parameters().iter().map(|(_, t)| t.numel()).sum()
    }

    /// Copies every entry of `sd` into this module's tensors (the tensors
    /// stay the same leaves, so optimizers holding them see the new values).
    /// Strict: fails, changing nothing, with the full list of missing,
    /// unexpected and mis-shaped names.
    fn load_state_dict(&self, sd: &StateDict) -> Result<()> {
        let mut mine: Vec<(String, Tensor)> = Vec::new();
        self.visit("", &mut |name, t, _| mine.push((name, t.clone())));
        let mut missing = Vec::new();
        let mut mis_shaped = Vec::new();
        for (name, t) in &mine {
            match sd.get(name) {
                None => missing.push(name.clone()),
                Some(src) if src.shape() != t.shape() => mis_shaped.push(format!(
                    "{name}: file {} vs model {}",
                    src.shape(),
                    t.shape()
                )),
                Some(_) => {}
            }
        }
        let known: std::collections::HashSet<&str> = mine.iter().map(|(n, _)| n.as_str()).collect();
        let unexpected: Vec<&str> = sd.names().filter(|n| !known.contains(n)).collect();
        if !(missing.is_empty() && mis_shaped.is_empty() && unexpected.is_empty()) {
            let mut msg = String::from("state dict does not fit the model:");
            if !missing.is_empty() {
                msg += &format!("\n  missing ({}): {}", missing.len(), missing.join(", "));
            }
            if !unexpected.is_empty() {
                msg += &format!(
                    "\n  unexpected ({}): {}",
                    unexpected.len(),
                    unexpected.join(", ")
                );
            }
            if !mis_shaped.is_empty() {
                msg += &format!(
                    "\n  wrong shape ({}): {}",
                    mis_shaped.len(),
                    mis_shaped.join("; ")
                );
            }
            return Err(Error::Invalid {
                op: "load_state_dict",
                msg,
            });
        }
        for (name, t) in &mine {
            let src = sd.get(name).expect("checked above");
            t.assign(src).map_err(|e| Error::Invalid {
                op: "load_state_dict",
                msg: format!("{name}: {e}"),
            })?;
        }
        Ok(())
    }
}

/// An insertion-ordered map from names to tensors.
#[derive(Clone, Default)]
pub struct StateDict {
    entries: Vec<(String, Tensor)>,
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for StateDict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (n, t) in &self.entries {
            m.entry(n, t.shape());
        }
        m.finish()
    }
}

impl StateDict {
    pub fn new() -> StateDict {
        StateDict::default()
    }

    /// Inserts or replaces (keeping the first position).
    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) {
        let name = name.into();
        match self.index.get(&name) {
            Some(&i) => self.entries[i].1 = t,
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, t));
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.entries[i].1)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// The entries whose name starts with `prefix` followed by a dot, with
    /// that prefix removed (`"G"` selects `G.mapping.fc0.weight` as
    /// `mapping.fc0.weight`).
    pub fn sub(&self, prefix: &str) -> StateDict {
        let p = format!("{prefix}.");
        let mut out = StateDict::new();
        for (n, t) in &self.entries {
            if let Some(rest) = n.strip_prefix(&p) {
                out.insert(rest, t.clone());
            }
        }
        out
    }

    /// Adds every entry of `other` under `prefix.`.
    pub fn extend_prefixed(&mut self, prefix: &str, other: &StateDict) {
        for (n, t) in &other.entries {
            self.insert(join(prefix, n), t.clone());
        }
    }

    /// Writes all entries as F32 safetensors with `metadata` in the header.
    pub fn save_safetensors(
        &self,
        path: impl AsRef<Path>,
        metadata: Option<HashMap<String, String>>,
    ) -> Result<()> {
        let path = path.as_ref();
        let datas: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .entries
            .iter()
            .map(|(n, t)| {
                let bytes = t.to_vec().iter().flat_map(|v| v.to_le_bytes()).collect();
                (n.clone(), t.dims().to_vec(), bytes)
            })
            .collect();
        let views = datas
            .iter()
            .map(|(n, shape, bytes)| {
                safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::Internal(format!("safetensors view of {n}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        // Through the checked writer: a failed write leaves no partial file.
        crate::fsio::write_via_path(path, |tmp| {
            safetensors::serialize_to_file(views, metadata, tmp)
        })
    }

    /// Reads a safetensors file (F32, F16, BF16 or F64 tensors, converted to
    /// f32) onto `device`, with its header metadata.
    pub fn load_safetensors(
        path: impl AsRef<Path>,
        device: Device,
    ) -> Result<(StateDict, HashMap<String, String>)> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Io(format!("reading {}: {e}", path.display())))?;
        StateDict::from_safetensors_bytes(&bytes, device)
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))
    }

    /// Parses safetensors bytes (see `load_safetensors`).
    pub fn from_safetensors_bytes(
        bytes: &[u8],
        device: Device,
    ) -> Result<(StateDict, HashMap<String, String>)> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::Io(format!("not a valid safetensors file: {e}")))?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::Io(format!("not a valid safetensors file: {e}")))?;
        let mut tensors = st.tensors();
        // Header order is not preserved by the format; sort for determinism.
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let mut sd = StateDict::new();
        for (name, view) in tensors {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::F16 => data
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => data
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                    .collect(),
                other => {
                    return Err(Error::Io(format!(
                        "tensor {name} has dtype {other:?}; expected F32, F16, BF16 or F64"
                    )))
                }
            };
            let t = Tensor::from_vec(values, view.shape().to_vec(), device)
                .map_err(|e| Error::Io(format!("tensor {name}: {e}")))?;
            sd.insert(name, t);
        }
        Ok((sd, metadata))
    }
}
