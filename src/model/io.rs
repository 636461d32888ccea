//! Network files: safetensors with every network's state dict under a
//! prefix (`G.`, `D.`, `G_ema.`) and the [`ModelConfig`] JSON in the header
//! metadata under [`CONFIG_KEY`]; or NVIDIA's network pickles
//! ([`crate::pickle`]), which every reader here takes as well.

use super::config::ModelConfig;
use super::discriminator::Discriminator;
use super::generator::Generator;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{Module, StateDict};
use std::collections::HashMap;
use std::path::Path;

/// Metadata key of the configuration JSON.
pub const CONFIG_KEY: &str = "stylegan2.config";

/// Writes the state dicts of `nets` (name prefix, network) and `config` to
/// one safetensors file.
pub fn save_networks(
    path: impl AsRef<Path>,
    config: &ModelConfig,
    nets: &[(&str, &dyn Module)],
) -> Result<()> {
    let mut sd = StateDict::new();
    for (prefix, net) in nets {
        sd.extend_prefixed(prefix, &net.state_dict());
    }
    let mut meta = HashMap::new();
    meta.insert(CONFIG_KEY.to_string(), config.to_json()?);
    meta.insert("format".to_string(), "pt".to_string());
    sd.save_safetensors(path, Some(meta))
}

/// Whether `path` holds a pickle: by its first bytes (protocol 2 and
/// later), or by a `.pkl` name when they do not say (protocols 0 and 1,
/// an unreadable file).
pub fn is_pickle_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 9];
    let pkl_name = path.extension().is_some_and(|e| e == "pkl");
    match std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) {
        // Protocols 0 and 1 have no marker: a .pkl that is not safetensors.
        Ok(n) => crate::pickle::looks_like_pickle(&head[..n]) || pkl_name && head[8] != b'{',
        Err(_) => pkl_name,
    }
}

/// Reads a network file: its configuration (when the header has one) and
/// all tensors. A pickle (NVIDIA's `.pkl`, told by its content) gives its
/// networks' configuration and state dicts; what the crate computes
/// differently is printed to stderr as a note.
pub fn read_networks(
    path: impl AsRef<Path>,
    device: Device,
) -> Result<(Option<ModelConfig>, StateDict)> {
    let path = path.as_ref();
    if is_pickle_file(path) {
        let pkl = crate::pickle::read_file(path)?;
        // The checks of `convert` (every network of the pickle loads, no
        // tensor missing or misshapen), so that generate, style-mix,
        // metric and train --resume refuse what convert refuses rather
        // than use half of a damaged file. A CPU copy, dropped at once:
        // the networks only exist for the check.
        check_networks(&pkl.config, &pkl.state_dict(Device::Cpu)?)
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        for n in &pkl.notes {
            eprintln!("stylegan2: note: {n}");
        }
        let (config, sd) = pkl.into_parts(device)?;
        return Ok((Some(config), sd));
    }
    let (sd, meta) = StateDict::load_safetensors(path, device)?;
    let config = meta
        .get(CONFIG_KEY)
        .map(|s| {
            ModelConfig::from_json(s)
                .map_err(|e| Error::Io(format!("{}: {CONFIG_KEY} metadata: {e}", path.display())))
        })
        .transpose()?;
    Ok((config, sd))
}

fn need_config(path: &Path, config: Option<ModelConfig>) -> Result<ModelConfig> {
    config.ok_or_else(|| {
        Error::Io(format!(
            "{}: no '{CONFIG_KEY}' metadata; the file does not say which networks it holds",
            path.display()
        ))
    })
}

/// The generator of a network file: `G_ema.*` when present, else `G.*`.
pub fn load_generator(path: impl AsRef<Path>, device: Device) -> Result<(ModelConfig, Generator)> {
    let path = path.as_ref();
    let (config, sd) = read_networks(path, device)?;
    let config = need_config(path, config)?;
    let prefix = if sd.names().any(|n| n.starts_with("G_ema.")) {
        "G_ema"
    } else {
        "G"
    };
    let g = Generator::new(&config.generator, &mut crate::rng(0), device)?;
    g.load_state_dict(&sd.sub(prefix))
        .map_err(|e| Error::Io(format!("{} ({prefix}.*): {e}", path.display())))?;
    Ok((config, g))
}

/// The discriminator (`D.*`) of a network file.
pub fn load_discriminator(
    path: impl AsRef<Path>,
    device: Device,
) -> Result<(ModelConfig, Discriminator)> {
    let path = path.as_ref();
    let (config, sd) = read_networks(path, device)?;
    let config = need_config(path, config)?;
    let d = Discriminator::new(&config.discriminator, &mut crate::rng(0), device)?;
    d.load_state_dict(&sd.sub("D"))
        .map_err(|e| Error::Io(format!("{} (D.*): {e}", path.display())))?;
    Ok((config, d))
}

/// Checks that `sd` holds exactly the networks of `config` (`G`, `D`,
/// `G_ema`; other prefixes are ignored) by loading each into a fresh
/// network; the error names the network and the tensors.
pub fn check_networks(config: &ModelConfig, sd: &StateDict) -> Result<()> {
    let mut rng = crate::rng(0);
    let g = Generator::new(&config.generator, &mut rng, Device::Cpu)?;
    let d = Discriminator::new(&config.discriminator, &mut rng, Device::Cpu)?;
    for (prefix, net) in [("G", &g as &dyn Module), ("D", &d), ("G_ema", &g)] {
        net.load_state_dict(&sd.sub(prefix))
            .map_err(|e| Error::Io(format!("{prefix}.*: {e}")))?;
    }
    Ok(())
}
