//! The networks: configurations, mapping, synthesis, generator,
//! discriminator, and their safetensors files.

pub mod config;
pub mod discriminator;
pub mod generator;
pub mod io;
pub mod mapping;
pub mod synthesis;

pub use config::{
    Architecture, DiscriminatorConfig, GeneratorConfig, ModelConfig, TrainingDefaults, PRESETS,
};
pub use discriminator::{Discriminator, DiscriminatorBlock, DiscriminatorEpilogue};
pub use generator::Generator;
pub use io::{load_discriminator, load_generator, read_networks, save_networks, CONFIG_KEY};
pub use mapping::MappingNetwork;
pub use synthesis::{SynthesisBlock, SynthesisNetwork};
