//! Training snapshots: one safetensors file with `G.*`, `D.*`, `G_ema.*`
//! (official state-dict names, so `generate`/`info` read it like any network
//! file; `generate` takes `G_ema`), the Adam moments `opt_G.{m,v}.*`,
//! `opt_D.{m,v}.*`, the [`ModelConfig`] under [`CONFIG_KEY`] and the
//! training counters as JSON under [`STATE_KEY`].

use super::adam::Adam;
use crate::error::{Error, Result};
use crate::model::{Discriminator, Generator, ModelConfig, CONFIG_KEY};
use crate::nn::{Module, StateDict};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Metadata key of the training state JSON.
pub const STATE_KEY: &str = "stylegan2.train_state";

/// The counters a resumed run continues from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Training steps (batches) done.
    pub step: u64,
    /// Real images shown.
    pub cur_nimg: u64,
    /// Running mean path length.
    pub pl_mean: f32,
    /// Adam steps per parameter, in parameter order.
    pub opt_g_steps: Vec<u64>,
    pub opt_d_steps: Vec<u64>,
    /// The seed of the run (data order and latents follow it).
    pub seed: u64,
    /// ADA's probability and pending signs (absent: no augmentation, or a
    /// snapshot from before augmentation existed).
    #[serde(default)]
    pub augment: Option<crate::augment::AdaState>,
}

/// The networks, optimizers and counters of a run.
pub struct Checkpoint<'a> {
    pub config: &'a ModelConfig,
    pub g: &'a Generator,
    pub d: &'a Discriminator,
    pub g_ema: &'a Generator,
    pub opt_g: &'a Adam,
    pub opt_d: &'a Adam,
    pub state: TrainState,
}

/// Writes a snapshot to `path` (through [`crate::fsio`]: a temporary file
/// renamed into place, so a failed or interrupted write never leaves a
/// truncated snapshot or a stray temporary).
pub fn save(path: &Path, ck: &Checkpoint) -> Result<()> {
    let mut sd = StateDict::new();
    sd.extend_prefixed("G", &ck.g.state_dict());
    sd.extend_prefixed("D", &ck.d.state_dict());
    sd.extend_prefixed("G_ema", &ck.g_ema.state_dict());
    sd.extend_prefixed("opt_G", &ck.opt_g.state_dict());
    sd.extend_prefixed("opt_D", &ck.opt_d.state_dict());
    let mut meta = HashMap::new();
    meta.insert(CONFIG_KEY.to_string(), ck.config.to_json()?);
    meta.insert(
        STATE_KEY.to_string(),
        serde_json::to_string(&ck.state)
            .map_err(|e| Error::Internal(format!("training state to JSON: {e}")))?,
    );
    meta.insert("format".to_string(), "pt".to_string());
    sd.save_safetensors(path, Some(meta))
}

/// A snapshot or network file as read for resuming.
pub struct Loaded {
    pub config: ModelConfig,
    pub tensors: StateDict,
    /// `None` for a plain network file (no training state): the run starts
    /// at step 0 from its weights.
    pub state: Option<TrainState>,
}

/// Reads a snapshot (or any network file with a config, or a network
/// pickle, which holds no training state) onto `device`.
pub fn load(path: &Path, device: crate::Device) -> Result<Loaded> {
    if crate::model::is_pickle_file(path) {
        let pkl = crate::pickle::read_file(path)?;
        for n in &pkl.notes {
            eprintln!("stylegan2: note: {n}");
        }
        let (config, tensors) = pkl.into_parts(device)?;
        return Ok(Loaded {
            config,
            tensors,
            state: None,
        });
    }
    let (tensors, meta) = StateDict::load_safetensors(path, device)?;
    let config = meta.get(CONFIG_KEY).ok_or_else(|| {
        Error::Io(format!(
            "{}: no '{CONFIG_KEY}' metadata; cannot resume from it",
            path.display()
        ))
    })?;
    let config = ModelConfig::from_json(config)
        .map_err(|e| Error::Io(format!("{}: {CONFIG_KEY} metadata: {e}", path.display())))?;
    let state = meta
        .get(STATE_KEY)
        .map(|s| {
            serde_json::from_str::<TrainState>(s)
                .map_err(|e| Error::Io(format!("{}: {STATE_KEY} metadata: {e}", path.display())))
        })
        .transpose()?;
    Ok(Loaded {
        config,
        tensors,
        state,
    })
}

/// Loads `prefix.*` of `sd` into `net`, naming the file on failure.
pub(crate) fn load_net(path: &Path, sd: &StateDict, prefix: &str, net: &dyn Module) -> Result<()> {
    net.load_state_dict(&sd.sub(prefix))
        .map_err(|e| Error::Io(format!("{} ({prefix}.*): {e}", path.display())))
}
