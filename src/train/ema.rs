//! The exponential moving average of G's weights (`G_ema`), as the official
//! training loop: `β = 0.5^(batch / ema_nimg)` with
//! `ema_nimg = min(ema_kimg·1000, cur_nimg·rampup)` when a ramp-up is set,
//! then `p_ema ← lerp(p, p_ema, β)` and buffers copied.

use crate::error::{Error, Result};
use crate::nn::Module;

/// The EMA decay for one step of `batch` images when `cur_nimg` images have
/// been shown so far (official formula; at `cur_nimg = 0` with a ramp-up it
/// is 0, so G_ema starts as a copy of G).
pub fn ema_beta(batch: usize, ema_kimg: f32, ema_rampup: Option<f32>, cur_nimg: u64) -> f32 {
    let mut ema_nimg = ema_kimg as f64 * 1000.0;
    if let Some(r) = ema_rampup {
        ema_nimg = ema_nimg.min(cur_nimg as f64 * r as f64);
    }
    0.5f64.powf(batch as f64 / ema_nimg.max(1e-8)) as f32
}

/// `p_ema ← p + β·(p_ema − p)` for every parameter and `b_ema ← b` for
/// every buffer; both modules must have the same names in the same order.
pub fn update_ema(g_ema: &dyn Module, g: &dyn Module, beta: f32) -> Result<()> {
    let _guard = crate::no_grad();
    let (pe, p) = (g_ema.parameters(), g.parameters());
    let (be, b) = (g_ema.buffers(), g.buffers());
    if pe.len() != p.len() || be.len() != b.len() {
        return Err(Error::Internal(format!(
            "update_ema: G_ema has {}+{} tensors, G {}+{}",
            pe.len(),
            be.len(),
            p.len(),
            b.len()
        )));
    }
    for ((ne, te), (n, t)) in pe.iter().zip(&p) {
        if ne != n {
            return Err(Error::Internal(format!("update_ema: {ne} vs {n}")));
        }
        te.assign(&t.lerp_scalar(te, beta)?)?;
    }
    for ((ne, te), (n, t)) in be.iter().zip(&b) {
        if ne != n {
            return Err(Error::Internal(format!("update_ema: {ne} vs {n}")));
        }
        te.assign(t)?;
    }
    Ok(())
}
