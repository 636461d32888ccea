//! NVIDIA's network pickles, read without Python.
//!
//! Two kinds of file hold StyleGAN2 networks:
//! - stylegan2-ada-pytorch pickles (`network-snapshot-*.pkl`, the published
//!   FFHQ/MetFaces/AFHQ/CIFAR-10 networks, and what the official `legacy.py`
//!   converts to): a dict with `G`, `D`, `G_ema` (and `augment_pipe`,
//!   `training_set_kwargs`), see [`network`];
//! - original TF StyleGAN2 pickles: the tuple `(G, D, Gs)`, see [`tf`].
//!
//! A pickle is a program for Python's unpickler; here it is read as data
//! ([`vm`]): no code runs, and a global outside the short list these files
//! use (`torch._utils._rebuild_tensor_v2`, `torch_utils.persistence.
//! _reconstruct_persistent_obj`, …) is an error naming it. Why not the
//! `serde-pickle` crate: it has no persistent ids (torch storages are
//! persistent ids) and drops `REDUCE`/`BUILD` records of unknown classes,
//! which is all a network record is.

pub mod kwargs;
pub mod network;
pub mod tf;
pub mod torch;
pub mod vm;

use crate::error::{Error, Result};
use crate::model::{ModelConfig, CONFIG_KEY};
use crate::nn::StateDict;
use crate::tensor::Tensor;
use crate::Device;
use std::path::Path;
pub use torch::{Dtype, TensorData};

/// Which kind of pickle a file was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickleKind {
    /// stylegan2-ada-pytorch (`torch_utils.persistence` records).
    PyTorch,
    /// Original TF StyleGAN2 (`dnnlib.tflib.network.Network` states).
    TensorFlow,
}

/// The networks of a pickle in the crate's terms.
#[derive(Debug)]
pub struct NetworkPickle {
    pub kind: PickleKind,
    /// Networks from the pickle's constructor arguments; the training
    /// defaults (which a pickle does not hold) are those of the `auto`
    /// preset for its resolution, as the official `train.py` default.
    pub config: ModelConfig,
    /// `G.*`, `D.*`, `G_ema.*` under the official names, and
    /// `augment_pipe.p` when the pickle has an augmentation pipe.
    pub tensors: Vec<(String, TensorData)>,
    /// The augmentation probability `augment_pipe.p`, if present.
    pub augment_p: Option<f32>,
    /// What the crate does differently from the pickle's networks (e.g.
    /// mixed precision), for the user.
    pub notes: Vec<String>,
}

impl NetworkPickle {
    /// The tensors as a state dict on `device`.
    pub fn state_dict(&self, device: Device) -> Result<StateDict> {
        let mut sd = StateDict::new();
        for (name, t) in &self.tensors {
            sd.insert(
                name.clone(),
                Tensor::from_vec(t.data.clone(), t.shape.clone(), device)?,
            );
        }
        Ok(sd)
    }

    /// The configuration and the tensors as a state dict on `device`,
    /// moving the data (a 1024² pickle holds ~90M values).
    pub fn into_parts(self, device: Device) -> Result<(ModelConfig, StateDict)> {
        let mut sd = StateDict::new();
        for (name, t) in self.tensors {
            sd.insert(name, Tensor::from_vec(t.data, t.shape, device)?);
        }
        Ok((self.config, sd))
    }
}

/// Whether `head` (the first bytes of a file) starts a pickle of protocol
/// 2 or later rather than a safetensors file (whose 8-byte header length
/// is followed by `{`).
pub fn looks_like_pickle(head: &[u8]) -> bool {
    head.first() == Some(&0x80) && head.get(8) != Some(&b'{')
}

fn allowed(module: &str, name: &str) -> bool {
    let g = (module, name);
    torch::GLOBALS.contains(&g) || network::GLOBALS.contains(&g) || tf::GLOBALS.contains(&g)
}

/// Reads a network pickle from a file.
pub fn read_file(path: impl AsRef<Path>) -> Result<NetworkPickle> {
    let path = path.as_ref();
    let data =
        std::fs::read(path).map_err(|e| Error::Io(format!("reading {}: {e}", path.display())))?;
    read_bytes(&data, &path.display().to_string())
}

/// Reads a `pickle.dump` of a dict of tensors (`{name: tensor}`).
pub fn read_tensor_dict(data: &[u8], what: &str) -> Result<Vec<(String, TensorData)>> {
    let p = vm::read(data, what, &|m, n| torch::GLOBALS.contains(&(m, n)))?;
    let items = p.root().items().ok_or_else(|| {
        Error::Io(format!(
            "{what}: the pickle holds a {}, not a dict",
            p.root().kind()
        ))
    })?;
    let mut reader = torch::Reader::default();
    items
        .into_iter()
        .map(|(k, v)| {
            let k = k.as_str().unwrap_or("?").to_string();
            let t = reader
                .tensor(v)
                .map_err(|e| Error::Io(format!("{what}: tensor {k}: {e}")))?;
            Ok((k, t))
        })
        .collect()
}

/// Reads a network pickle; `what` names it in messages.
pub fn read_bytes(data: &[u8], what: &str) -> Result<NetworkPickle> {
    let p = vm::read(data, what, &allowed)?;
    let root = p.root();
    let mut notes = Vec::new();
    if tf::is_tf(root) {
        let nets = tf::read(root, what, &mut notes)?;
        let config = model_config(nets.generator, nets.discriminator, what)?;
        return Ok(NetworkPickle {
            kind: PickleKind::TensorFlow,
            config,
            tensors: nets.tensors,
            augment_p: None,
            notes,
        });
    }
    if root.items().is_none() {
        return Err(Error::Io(format!(
            "{what}: the pickle holds a {}, not a network dict (G, D, G_ema) or a TF (G, D, Gs) tuple",
            root.kind()
        )));
    }
    let mut reader = torch::Reader::default();
    let mut nets = Vec::new();
    for key in ["G", "D", "G_ema"] {
        let v = root.get(key).filter(|v| !v.is_none()).ok_or_else(|| {
            Error::Io(format!(
                "{what}: no '{key}' network (a network pickle holds G, D and G_ema)"
            ))
        })?;
        nets.push(network::network(v, &format!("{what}: {key}"), &mut reader)?);
    }
    let mut gcfgs = Vec::new();
    for (net, key) in [(&nets[0], "G"), (&nets[2], "G_ema")] {
        if net.class_name != "Generator" {
            return Err(Error::Io(format!(
                "{what}: {key} is a {}, not a Generator",
                net.class_name
            )));
        }
        let mut n = Vec::new();
        gcfgs.push(network::generator_config(
            &net.init_kwargs,
            &format!("{what}: {key}.init_kwargs"),
            &mut n,
        )?);
        if key == "G" {
            notes.extend(n);
        }
    }
    if gcfgs[0] != gcfgs[1] {
        return Err(Error::Io(format!(
            "{what}: G and G_ema have different constructor arguments"
        )));
    }
    if nets[1].class_name != "Discriminator" {
        return Err(Error::Io(format!(
            "{what}: D is a {}, not a Discriminator",
            nets[1].class_name
        )));
    }
    let dcfg = network::discriminator_config(
        &nets[1].init_kwargs,
        &format!("{what}: D.init_kwargs"),
        &mut notes,
    )?;
    let config = model_config(gcfgs.remove(0), dcfg, what)?;
    let mut tensors = Vec::new();
    for (net, key) in nets.into_iter().zip(["G", "D", "G_ema"]) {
        tensors.extend(
            net.tensors
                .into_iter()
                .map(|(n, t)| (format!("{key}.{n}"), t)),
        );
    }
    let mut augment_p = None;
    if let Some(aug) = root.get("augment_pipe").filter(|v| !v.is_none()) {
        let net = network::network(aug, &format!("{what}: augment_pipe"), &mut reader)?;
        if let Some((_, p)) = net.tensors.into_iter().find(|(n, _)| n == "p") {
            if p.data.len() != 1 {
                return Err(Error::Io(format!(
                    "{what}: augment_pipe.p has shape {:?}, expected a scalar",
                    p.shape
                )));
            }
            augment_p = Some(p.data[0]);
            tensors.push(("augment_pipe.p".into(), p));
        }
    }
    Ok(NetworkPickle {
        kind: PickleKind::PyTorch,
        config,
        tensors,
        augment_p,
        notes,
    })
}

fn model_config(
    generator: crate::model::GeneratorConfig,
    discriminator: crate::model::DiscriminatorConfig,
    what: &str,
) -> Result<ModelConfig> {
    let defaults = ModelConfig::auto(
        generator.img_resolution,
        generator.img_channels,
        generator.c_dim,
        1,
    )
    .map_err(|e| Error::Io(format!("{what}: {e}")))?;
    let cfg = ModelConfig {
        preset: "auto".into(),
        generator,
        discriminator,
        training: defaults.training,
    };
    cfg.validate()
        .map_err(|e| Error::Io(format!("{what}: {e}")))?;
    Ok(cfg)
}

/// The metadata key under which `convert` records the source pickle.
pub const SOURCE_KEY: &str = "stylegan2.source";

/// Reads a pickle and writes its networks as a safetensors network file
/// (the crate's format, [`CONFIG_KEY`] metadata), after checking that each
/// network loads. Returns what was read.
pub fn convert(src: &Path, dst: &Path) -> Result<NetworkPickle> {
    let pkl = read_file(src)?;
    let sd = pkl.state_dict(Device::Cpu)?;
    crate::model::io::check_networks(&pkl.config, &sd)
        .map_err(|e| Error::Io(format!("{}: {e}", src.display())))?;
    let mut meta = std::collections::HashMap::new();
    meta.insert(CONFIG_KEY.to_string(), pkl.config.to_json()?);
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert(SOURCE_KEY.to_string(), src.display().to_string());
    sd.save_safetensors(dst, Some(meta))?;
    Ok(pkl)
}
