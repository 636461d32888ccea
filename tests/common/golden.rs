//! Reads the golden outputs of the official implementation
//! (`tests/data/golden/<name>.safetensors`, all F32, committed with the
//! crate; the README there says what each key is). A missing or malformed
//! file fails the test with a message saying where it was looked for.
//! `STYLEGAN2_GOLDEN_DIR` points elsewhere (a GPU machine that runs test
//! binaries built on another machine, where `CARGO_MANIFEST_DIR` differs).

use std::collections::HashMap;
use stylegan2::{Device, Tensor};

/// The directory of the golden files in the repository.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden");

/// `$STYLEGAN2_GOLDEN_DIR` when set, else `DIR`.
pub fn dir() -> String {
    std::env::var("STYLEGAN2_GOLDEN_DIR").unwrap_or_else(|_| DIR.to_string())
}

/// All tensors of one golden file, by key.
pub struct Golden {
    pub path: String,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// Loads `<DIR>/<name>.safetensors` (`name` with or without the extension);
/// panics with a clear message when the file is missing or not all F32.
pub fn load(name: &str) -> Golden {
    let file = if name.ends_with(".safetensors") {
        name.to_string()
    } else {
        format!("{name}.safetensors")
    };
    load_path(&format!("{}/{file}", dir()))
}

/// Loads the safetensors file at `path` (all F32), as `load` does.
pub fn load_path(path: &str) -> Golden {
    let path = path.to_string();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {path} could not be read ({e}); the golden data of the official \
             implementation is committed under tests/data/golden \
             ($STYLEGAN2_GOLDEN_DIR overrides the directory)"
        )
    });
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("golden file {path} is not valid safetensors: {e}"));
    let mut tensors = HashMap::new();
    for (key, view) in st.tensors() {
        assert_eq!(
            view.dtype(),
            safetensors::Dtype::F32,
            "golden file {path}: {key} is {:?}, expected F32",
            view.dtype()
        );
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.insert(key, (view.shape().to_vec(), data));
    }
    Golden { path, tensors }
}

impl Golden {
    /// Shape and data of `key`; panics naming the file and key when absent.
    pub fn raw(&self, key: &str) -> (&[usize], &[f32]) {
        let (shape, data) = self
            .tensors
            .get(key)
            .unwrap_or_else(|| panic!("golden file {}: no key '{key}'", self.path));
        (shape, data)
    }

    /// The data of `key`.
    pub fn data(&self, key: &str) -> &[f32] {
        self.raw(key).1
    }

    /// The shape of `key`.
    pub fn shape(&self, key: &str) -> &[usize] {
        self.raw(key).0
    }

    /// `key` as a CPU tensor (no grad).
    pub fn tensor(&self, key: &str) -> Tensor {
        let (shape, data) = self.raw(key);
        Tensor::from_vec(data.to_vec(), shape.to_vec(), Device::Cpu).unwrap()
    }

    /// `key` as a CPU leaf that requires grad.
    pub fn input(&self, key: &str) -> Tensor {
        let t = self.tensor(key);
        t.set_requires_grad(true).unwrap();
        t
    }

    /// All keys, sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut k: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }
}
