//! Device implementations of each op family. `cpu` is the f32 reference.

pub mod cpu;
