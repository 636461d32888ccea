//! The fused Adam kernel (`adam_step`, kernels/elementwise.cu) on the
//! simulator (and GPU 0 when present) against its CPU twin.

mod common;
use common::{on_every_device, values};
use stylegan2::train::{Adam, AdamConfig};
use stylegan2::Tensor;

#[test]
fn adam_step_kernel_matches_the_cpu() {
    // Sizes that fill no block evenly, and one spanning several blocks.
    for n in [1usize, 5, 67, 1000] {
        for betas in [(0.0f32, 0.99f32), (0.9, 0.999)] {
            // Four steps: the first creates the moments, the third gets no
            // gradient for `b` (skipped), non-finite gradients are sanitized.
            // Each value takes a few f32 roundings (an FMA may fuse two on a
            // device): a few ulps of values of order 1.
            on_every_device(&format!("adam n={n} {betas:?}"), 1e-6, 1e-5, |dev| {
                let a = Tensor::from_vec(values(n, 1), vec![n], dev)?;
                let b = Tensor::from_vec(values(3, 2), vec![3], dev)?;
                a.set_requires_grad(true)?;
                b.set_requires_grad(true)?;
                let mut opt = Adam::new(
                    vec![("a".into(), a.clone()), ("b".into(), b.clone())],
                    AdamConfig {
                        lr: 0.01,
                        betas,
                        eps: 1e-8,
                    },
                )?;
                for step in 0..4u64 {
                    let mut ga = values(n, 10 + step);
                    if step == 1 {
                        ga[0] = f32::NAN;
                        if n > 2 {
                            ga[1] = f32::INFINITY;
                            ga[2] = f32::NEG_INFINITY;
                        }
                    }
                    let ga = Tensor::from_vec(ga, vec![n], dev)?;
                    let gb = Tensor::from_vec(values(3, 20 + step), vec![3], dev)?;
                    opt.step(&[Some(ga), (step != 2).then_some(gb)])?;
                }
                assert_eq!(opt.steps(), &[4, 3]);
                let sd = opt.state_dict();
                Ok(vec![
                    a,
                    b,
                    sd.get("m.a").unwrap().clone(),
                    sd.get("v.a").unwrap().clone(),
                    sd.get("v.b").unwrap().clone(),
                ])
            });
        }
    }
}
