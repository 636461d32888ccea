//! The networks: configurations, mapping, synthesis, generator,
//! discriminator, and their safetensors files.

pub mod cli;
pub mod config;
pub mod discriminator;
pub mod generator;
pub mod io;
pub mod mapping;
pub mod numpy_rng;
pub mod synthesis;

pub use config::{
    fp16_resolution, Architecture, DiscriminatorConfig, GeneratorConfig, ModelConfig,
    TrainingDefaults, PRESETS,
};
pub use discriminator::{
    Discriminator, DiscriminatorBlock, DiscriminatorEpilogue, DiscriminatorOptions,
};
pub use generator::{mapping_with_mixing, mix_styles, style_mixing_cutoff, Generator};
pub use io::{
    check_networks, is_pickle_file, load_discriminator, load_generator, read_networks,
    save_networks, CONFIG_KEY,
};
pub use mapping::{normalize_2nd_moment, MappingNetwork, Truncation};
pub use synthesis::{SynthesisBlock, SynthesisNetwork, SynthesisOptions};
