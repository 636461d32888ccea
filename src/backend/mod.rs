//! Device implementations of each op family. `cpu` is the f32 reference;
//! `cuda` launches the kernels of `kernels/` on a GPU or in the simulator.

pub mod cpu;
pub mod cuda;
