//! `stylegan2 bench`: throughput of the modulated convolution at StyleGAN2
//! layer shapes, each execution path beside its peers on the same device.

use crate::error::Result;
use crate::ops::conv::{conv2d, Conv2d};
use crate::ops::modconv::{modulated_conv2d, ModConv, ModConvPath};
use crate::ops::upfirdn::setup_filter;
use crate::{no_grad, Device, Tensor};
use std::time::{Duration, Instant};

/// One benchmarked layer: a synthesis-layer shape of config-f.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    /// Input resolution (the output is twice that for `up2`).
    pub res: usize,
    pub p: ModConv,
}

impl Case {
    fn kernel(&self) -> usize {
        if self.p.padding == 0 {
            1
        } else {
            3
        }
    }

    /// Multiply-adds of the convolution counted as 2 FLOPs, at the output resolution.
    pub fn flops(&self) -> f64 {
        let out = self.res * self.p.up;
        2.0 * (self.batch * self.cout * self.cin * self.kernel() * self.kernel() * out * out) as f64
    }
}

/// The default suite: config-f layers at 8, 32 and 64 pixels, an up-sampling
/// layer and ToRGB. `quick` shrinks channels for a fast smoke run.
pub fn default_cases(quick: bool) -> Vec<Case> {
    let c = |full: usize| if quick { full / 8 } else { full };
    vec![
        Case {
            name: "conv 8x8",
            batch: 4,
            cin: c(512),
            cout: c(512),
            res: 8,
            p: ModConv::conv3x3(),
        },
        Case {
            name: "conv 32x32",
            batch: 4,
            cin: c(512),
            cout: c(512),
            res: 32,
            p: ModConv::conv3x3(),
        },
        Case {
            name: "conv 64x64",
            batch: 4,
            cin: c(256),
            cout: c(256),
            res: 64,
            p: ModConv::conv3x3(),
        },
        Case {
            name: "conv up2 32->64",
            batch: 4,
            cin: c(512),
            cout: c(256),
            res: 32,
            p: ModConv::conv3x3_up2(),
        },
        Case {
            name: "torgb 64x64",
            batch: 4,
            cin: c(256),
            cout: 3,
            res: 64,
            p: ModConv::torgb(),
        },
    ]
}

/// A measured row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub case: String,
    pub path: String,
    pub median: Duration,
    pub gflops: f64,
    /// Time of the unfused path over this one (> 1: faster than unfused).
    pub speedup_vs_unfused: f64,
}

/// Median wall time of `f` over `iters` runs after one warm-up run.
fn time(device: Device, iters: usize, mut f: impl FnMut() -> Result<Tensor>) -> Result<Duration> {
    f()?;
    device.synchronize()?;
    let mut ts = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t0 = Instant::now();
        f()?;
        // GPU launches return before the kernels finish.
        device.synchronize()?;
        ts.push(t0.elapsed());
    }
    ts.sort();
    Ok(ts[ts.len() / 2])
}

/// Runs every case on `device` with each path (and the plain conv2d with
/// the same shapes as the floor), calling `report` after each row.
pub fn run(
    device: Device,
    cases: &[Case],
    iters: usize,
    mut report: impl FnMut(&Row),
) -> Result<Vec<Row>> {
    let _g = no_grad();
    let mut rng = crate::rng(0);
    let filter = setup_filter(&[1.0, 3.0, 3.0, 1.0], device)?;
    let mut rows = Vec::new();
    for case in cases {
        let k = case.kernel();
        let x = Tensor::randn(
            vec![case.batch, case.cin, case.res, case.res],
            &mut rng,
            device,
        );
        let w = Tensor::randn(vec![case.cout, case.cin, k, k], &mut rng, device);
        let s = Tensor::randn(vec![case.batch, case.cin], &mut rng, device).add_scalar(1.0)?;
        let mut unfused = None;
        for path in [
            ModConvPath::Unfused,
            ModConvPath::Grouped,
            ModConvPath::Fused,
        ] {
            let t = time(device, iters, || {
                modulated_conv2d(&x, &w, &s, Some(&filter), case.p, path)
            })?;
            let base = *unfused.get_or_insert(t);
            let row = Row {
                case: case.name.into(),
                path: format!("modconv {path:?}").to_lowercase(),
                median: t,
                gflops: case.flops() / t.as_secs_f64() / 1e9,
                speedup_vs_unfused: base.as_secs_f64() / t.as_secs_f64(),
            };
            report(&row);
            rows.push(row);
        }
        if case.p.up == 1 {
            // The plain convolution of the same shape: what modulation costs on top.
            let conv = Conv2d {
                padding: [case.p.padding; 2],
                ..Default::default()
            };
            let t = time(device, iters, || conv2d(&x, &w, conv))?;
            let row = Row {
                case: case.name.into(),
                path: "conv2d (no modulation)".into(),
                median: t,
                gflops: case.flops() / t.as_secs_f64() / 1e9,
                speedup_vs_unfused: unfused.map_or(1.0, |u| u.as_secs_f64() / t.as_secs_f64()),
            };
            report(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The rows as JSON (device, iterations, and per row: case, path, median ms, GFLOP/s, speedup).
pub fn to_json(device: Device, iters: usize, rows: &[Row]) -> serde_json::Value {
    serde_json::json!({
        "device": device.to_string(),
        "iterations": iters,
        "rows": rows.iter().map(|r| serde_json::json!({
            "case": r.case,
            "path": r.path,
            "median_ms": r.median.as_secs_f64() * 1e3,
            "gflops": r.gflops,
            "speedup_vs_unfused": r.speedup_vs_unfused,
        })).collect::<Vec<_>>(),
    })
}
