//! `Generator`: mapping network + synthesis network.

use super::config::GeneratorConfig;
use super::mapping::MappingNetwork;
use super::synthesis::SynthesisNetwork;
use crate::device::Device;
use crate::error::Result;
use crate::nn::{join, Kind, Module};
use crate::tensor::Tensor;

/// Official `Generator`; state-dict names `synthesis.*`, `mapping.*`.
pub struct Generator {
    pub config: GeneratorConfig,
    pub synthesis: SynthesisNetwork,
    pub mapping: MappingNetwork,
}

impl Generator {
    /// A generator with the official initialization, drawn from `rng`.
    pub fn new(
        cfg: &GeneratorConfig,
        rng: &mut impl rand::Rng,
        device: Device,
    ) -> Result<Generator> {
        cfg.validate()?;
        let synthesis = SynthesisNetwork::new(cfg, rng, device);
        let mapping = MappingNetwork::new(
            cfg.z_dim,
            cfg.c_dim,
            cfg.w_dim,
            Some(synthesis.num_ws),
            cfg.mapping_layers,
            cfg.mapping_lr_multiplier,
            Some(cfg.w_avg_beta),
            rng,
            device,
        );
        Ok(Generator {
            config: cfg.clone(),
            synthesis,
            mapping,
        })
    }

    pub fn num_ws(&self) -> usize {
        self.synthesis.num_ws
    }
}

impl Module for Generator {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, &Tensor, Kind)) {
        self.synthesis.visit(&join(prefix, "synthesis"), f);
        self.mapping.visit(&join(prefix, "mapping"), f);
    }
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("config", &self.config)
            .field("num_ws", &self.num_ws())
            .field("num_params", &self.num_params())
            .finish()
    }
}
