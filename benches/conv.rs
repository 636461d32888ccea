//! conv2d and the modulated convolution (unfused, grouped and fused paths,
//! side by side) at StyleGAN2 layer shapes, forward and backward (gradients
//! of x, weight and styles on a graph built once); throughput in FLOP/s
//! (multiply-add = 2; backward counted as twice the forward, as
//! `stylegan2 bench` counts it). Runs on GPU 0 when there is one, else on the CPU;
//! `STYLEGAN2_BENCH_DEVICE=cpu|sim|cuda:N` chooses.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use stylegan2::bench::default_cases;
use stylegan2::ops::conv::{conv2d, Conv2d};
use stylegan2::ops::modconv::{modulated_conv2d, ModConvPath};
use stylegan2::ops::upfirdn::setup_filter;
use stylegan2::{grad, no_grad, Device, Tensor};

fn device() -> Device {
    match std::env::var("STYLEGAN2_BENCH_DEVICE") {
        Ok(s) => Device::parse(&s).unwrap_or_else(|e| panic!("STYLEGAN2_BENCH_DEVICE: {e}")),
        Err(_) => Device::parse("auto").expect("auto falls back to the CPU"),
    }
}

fn modconv(c: &mut Criterion) {
    let _g = no_grad();
    let dev = device();
    let mut rng = stylegan2::rng(0);
    let f = setup_filter(&[1.0, 3.0, 3.0, 1.0], dev).unwrap();
    let mut group = c.benchmark_group(format!("modconv_{dev}").replace(':', ""));
    group.sample_size(10);
    for case in default_cases(std::env::var_os("STYLEGAN2_BENCH_QUICK").is_some()) {
        let k = if case.p.padding == 0 { 1 } else { 3 };
        let x = Tensor::randn(
            vec![case.batch, case.cin, case.res, case.res],
            &mut rng,
            dev,
        );
        let w = Tensor::randn(vec![case.cout, case.cin, k, k], &mut rng, dev);
        let s = Tensor::randn(vec![case.batch, case.cin], &mut rng, dev)
            .add_scalar(1.0)
            .unwrap();
        group.throughput(Throughput::Elements(case.flops() as u64));
        for path in [
            ModConvPath::Unfused,
            ModConvPath::Grouped,
            ModConvPath::Fused,
        ] {
            group.bench_function(BenchmarkId::new(format!("{path:?}"), case.name), |b| {
                b.iter(|| {
                    let y = modulated_conv2d(&x, &w, &s, Some(&f), case.p, path).unwrap();
                    // GPU launches return before the kernels finish.
                    dev.synchronize().unwrap();
                    y
                })
            });
        }
        if case.p.up == 1 {
            let p = Conv2d {
                padding: [case.p.padding; 2],
                ..Default::default()
            };
            group.bench_function(BenchmarkId::new("conv2d", case.name), |b| {
                b.iter(|| {
                    let y = conv2d(&x, &w, p).unwrap();
                    dev.synchronize().unwrap();
                    y
                })
            });
        }
    }
    group.finish();
}

fn modconv_backward(c: &mut Criterion) {
    let dev = device();
    let mut rng = stylegan2::rng(0);
    let f = setup_filter(&[1.0, 3.0, 3.0, 1.0], dev).unwrap();
    let mut group = c.benchmark_group(format!("modconv_bwd_{dev}").replace(':', ""));
    group.sample_size(10);
    for case in default_cases(std::env::var_os("STYLEGAN2_BENCH_QUICK").is_some()) {
        let k = case.kernel();
        let leaf = |t: Tensor| {
            t.set_requires_grad(true).unwrap();
            t
        };
        let x = leaf(Tensor::randn(
            vec![case.batch, case.cin, case.res, case.res],
            &mut rng,
            dev,
        ));
        let w = leaf(Tensor::randn(
            vec![case.cout, case.cin, k, k],
            &mut rng,
            dev,
        ));
        let s = leaf(
            Tensor::randn(vec![case.batch, case.cin], &mut rng, dev)
                .add_scalar(1.0)
                .unwrap()
                .detach(),
        );
        let inputs = [x.clone(), w.clone(), s.clone()];
        group.throughput(Throughput::Elements(2 * case.flops() as u64));
        for path in [
            ModConvPath::Unfused,
            ModConvPath::Grouped,
            ModConvPath::Fused,
        ] {
            let y = modulated_conv2d(&x, &w, &s, Some(&f), case.p, path).unwrap();
            let gy = Tensor::randn(y.dims().to_vec(), &mut rng, dev);
            group.bench_function(BenchmarkId::new(format!("{path:?}"), case.name), |b| {
                b.iter(|| {
                    let g = grad(
                        std::slice::from_ref(&y),
                        &inputs,
                        Some(std::slice::from_ref(&gy)),
                        false,
                    )
                    .unwrap();
                    dev.synchronize().unwrap();
                    g
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, modconv, modconv_backward);
criterion_main!(benches);
