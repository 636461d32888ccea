//! Test helpers: finite-difference gradient checks (first and second order)
//! and tolerance comparisons.
#![allow(dead_code)]

pub mod golden;
pub mod skip;
pub mod tc;

use stylegan2::{grad, Device, Result, Tensor};

/// Tolerances of a gradient check: `|analytic − numeric| ≤ atol + rtol · max|numeric|`.
///
/// Central differences in f32 with step `eps` have truncation error
/// O(eps²·f''') and round-off O(ε_f32·|f|/eps); with eps = 1e-2 on O(1)
/// inputs both stay well below rtol = 1e-2 of the largest gradient, while a
/// wrong rule (a missing term, a transposed index) is off by O(1).
#[derive(Clone, Copy, Debug)]
pub struct Check {
    pub eps: f32,
    pub atol: f64,
    pub rtol: f64,
    /// Also check the gradient of a scalar function of the first gradient.
    pub second_order: bool,
}

impl Default for Check {
    fn default() -> Self {
        Check {
            eps: 1e-2,
            atol: 1e-3,
            rtol: 1e-2,
            second_order: true,
        }
    }
}

/// Deterministic pseudo-random values in [-1, 1) (no dependency on the crate's RNG).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A tensor of `values` that requires grad.
pub fn input(dims: &[usize], seed: u64) -> Tensor {
    let n = dims.iter().product();
    let t = Tensor::from_vec(values(n, seed), dims.to_vec(), Device::Cpu).unwrap();
    t.set_requires_grad(true).unwrap();
    t
}

/// Like `input`, but every |value| ≥ `gap`, keeping finite differences away
/// from kinks at 0 (abs, lrelu, sign masks).
pub fn input_away_from_zero(dims: &[usize], seed: u64, gap: f32) -> Tensor {
    let n = dims.iter().product();
    let v = values(n, seed)
        .into_iter()
        .map(|x| if x >= 0.0 { x + gap } else { x - gap })
        .collect();
    let t = Tensor::from_vec(v, dims.to_vec(), Device::Cpu).unwrap();
    t.set_requires_grad(true).unwrap();
    t
}

/// Fails with a message naming `what` and the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f64, rtol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} values, want {}",
        got.len(),
        want.len()
    );
    let scale = want.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    let tol = atol + rtol * scale;
    let (i, err) = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| ((a as f64) - (b as f64)).abs())
        .enumerate()
        .fold((0, 0f64), |best, (i, e)| {
            if e.is_nan() || e > best.1 {
                (i, if e.is_nan() { f64::INFINITY } else { e })
            } else {
                best
            }
        });
    assert!(
        err <= tol,
        "{what}: max |diff| {err:.3e} at {i} (got {}, want {}) exceeds {tol:.3e} (atol {atol:e} + rtol {rtol:e} × max|want| {scale:.3e})",
        got[i],
        want[i]
    );
}

fn dot(a: &Tensor, b: &[f32]) -> f64 {
    a.to_vec()
        .iter()
        .zip(b)
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum()
}

fn with_value(t: &Tensor, i: usize, v: f32) -> Tensor {
    let mut d = t.to_vec();
    d[i] = v;
    let out = Tensor::from_vec(d, t.dims().to_vec(), t.device()).unwrap();
    out.set_requires_grad(t.requires_grad()).unwrap();
    out
}

/// Numeric gradient of the scalar `l` w.r.t. every element of `inputs[k]`.
fn numeric(l: &dyn Fn(&[Tensor]) -> f64, inputs: &[Tensor], k: usize, eps: f32) -> Vec<f32> {
    let x = &inputs[k];
    let base = x.to_vec();
    (0..x.numel())
        .map(|i| {
            let at = |v: f32| {
                let mut xs = inputs.to_vec();
                xs[k] = with_value(x, i, v);
                l(&xs)
            };
            let (hi, lo) = (base[i] + eps, base[i] - eps);
            ((at(hi) - at(lo)) / (hi as f64 - lo as f64)) as f32
        })
        .collect()
}

/// Checks the gradients of `f` w.r.t. each input that requires grad against
/// central differences, and, with `second_order`, the gradient of
/// `h(x) = Σ_k ⟨∇_k L(x), r2_k⟩` (with `L = ⟨f(x), r⟩`), which exercises every
/// backward rule under `create_graph`.
pub fn gradcheck(
    name: &str,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    check: Check,
) {
    let y = f(inputs).unwrap_or_else(|e| panic!("{name}: forward failed: {e}"));
    let r = values(y.numel(), 99);
    let r_t = Tensor::from_vec(r.clone(), y.dims().to_vec(), y.device()).unwrap();
    let wrt: Vec<usize> = (0..inputs.len())
        .filter(|&k| inputs[k].requires_grad())
        .collect();
    let wrt_t: Vec<Tensor> = wrt.iter().map(|&k| inputs[k].clone()).collect();

    let grads = grad(
        &[y],
        &wrt_t,
        Some(std::slice::from_ref(&r_t)),
        check.second_order,
    )
    .unwrap_or_else(|e| panic!("{name}: backward failed: {e}"));
    let loss = |xs: &[Tensor]| dot(&f(xs).unwrap(), &r);
    for (j, &k) in wrt.iter().enumerate() {
        let num = numeric(&loss, inputs, k, check.eps);
        let got = grads[j]
            .as_ref()
            .map(|g| g.to_vec())
            .unwrap_or_else(|| vec![0.0; inputs[k].numel()]);
        assert_close(
            &format!("{name}: d/d(input {k})"),
            &got,
            &num,
            check.atol,
            check.rtol,
        );
    }
    if !check.second_order {
        return;
    }

    // h = Σ_k ⟨g_k, r2_k⟩, built as a graph from the create_graph gradients.
    let r2: Vec<Vec<f32>> = wrt
        .iter()
        .map(|&k| values(inputs[k].numel(), 1000 + k as u64))
        .collect();
    let mut h: Option<Tensor> = None;
    for (j, &k) in wrt.iter().enumerate() {
        let Some(g) = &grads[j] else { continue };
        let r2_t = Tensor::from_vec(r2[j].clone(), inputs[k].dims().to_vec(), Device::Cpu).unwrap();
        let term = g.mul(&r2_t).unwrap().sum_all().unwrap();
        h = Some(match h {
            Some(acc) => acc.add(&term).unwrap(),
            None => term,
        });
    }
    let h_value = |xs: &[Tensor]| -> f64 {
        let y = f(xs).unwrap();
        let ts: Vec<Tensor> = wrt.iter().map(|&k| xs[k].clone()).collect();
        let gs = grad(&[y], &ts, Some(std::slice::from_ref(&r_t)), false).unwrap();
        gs.iter()
            .zip(&r2)
            .map(|(g, r2)| g.as_ref().map_or(0.0, |g| dot(g, r2)))
            .sum()
    };
    let second = match &h {
        Some(h) if h.requires_grad() || !h.is_leaf() => {
            grad(std::slice::from_ref(h), &wrt_t, None, false)
                .unwrap_or_else(|e| panic!("{name}: second-order backward failed: {e}"))
        }
        _ => vec![None; wrt.len()],
    };
    for (j, &k) in wrt.iter().enumerate() {
        let num = numeric(&h_value, inputs, k, check.eps);
        let got = second[j]
            .as_ref()
            .map(|g| g.to_vec())
            .unwrap_or_else(|| vec![0.0; inputs[k].numel()]);
        assert_close(
            &format!("{name}: second order d/d(input {k})"),
            &got,
            &num,
            check.atol,
            check.rtol,
        );
    }
}

/// The devices whose kernels are checked against the CPU reference: the
/// simulator always, GPU 0 when `Device::cuda(0)` succeeds (else the GPU part
/// is skipped with the reason, see `skip`).
pub fn kernel_devices() -> Vec<Device> {
    let mut d = vec![Device::Sim];
    match Device::cuda(0) {
        Ok(gpu) => d.push(gpu),
        Err(e) => skip::skip_in_binary(
            skip::Need::Gpu,
            &format!("simulator only: {}", skip::short_reason(&e.to_string())),
        ),
    }
    d
}

/// `values(n, seed)` on `device`, as a leaf that requires grad.
pub fn leaf_on(dims: &[usize], seed: u64, device: Device) -> Tensor {
    let n = dims.iter().product();
    let t = Tensor::from_vec(values(n, seed), dims.to_vec(), device).unwrap();
    t.set_requires_grad(true).unwrap();
    t
}

/// Runs `f` on the CPU and on every kernel device, and compares each output
/// (shape, device and values within `atol + rtol · max|cpu|`) with the CPU's.
/// `f` builds its inputs on the device it is given and returns the tensors to
/// compare (outputs, gradients, ...).
pub fn on_every_device(
    name: &str,
    atol: f64,
    rtol: f64,
    f: impl Fn(Device) -> Result<Vec<Tensor>>,
) {
    let want = f(Device::Cpu).unwrap_or_else(|e| panic!("{name} on cpu: {e}"));
    for dev in kernel_devices() {
        let got = f(dev).unwrap_or_else(|e| panic!("{name} on {dev}: {e}"));
        assert_eq!(got.len(), want.len(), "{name} on {dev}: output count");
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            let what = format!("{name} on {dev}, output {k}");
            assert_eq!(g.dims(), w.dims(), "{what}: shape");
            assert_eq!(g.device(), dev, "{what}: device");
            assert_close(&what, &g.to_vec(), &w.to_vec(), atol, rtol);
        }
    }
}

/// `y` and the gradients of `⟨y, r⟩` (r fixed pseudo-random) w.r.t. `xs`,
/// with `create_graph` so the backward rules run as recorded ops too; an
/// input that gets no gradient gives zeros.
pub fn with_grads(y: Tensor, xs: &[&Tensor]) -> Result<Vec<Tensor>> {
    let r = Tensor::from_vec(values(y.numel(), 77), y.dims().to_vec(), y.device())?;
    let inputs: Vec<Tensor> = xs.iter().map(|&x| x.clone()).collect();
    let gs = grad(std::slice::from_ref(&y), &inputs, Some(&[r]), true)?;
    let mut out = vec![y];
    for (g, x) in gs.into_iter().zip(xs) {
        out.push(match g {
            Some(g) => g,
            None => Tensor::zeros(x.dims().to_vec(), x.device()),
        });
    }
    Ok(out)
}
