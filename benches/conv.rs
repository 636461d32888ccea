//! CPU baseline: conv2d and the composed modulated convolution (both paths)
//! at StyleGAN2 layer shapes; throughput in FLOP/s (multiply-add = 2).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use stylegan2::bench::default_cases;
use stylegan2::ops::conv::{conv2d, Conv2d};
use stylegan2::ops::modconv::{modulated_conv2d, ModConvPath};
use stylegan2::ops::upfirdn::setup_filter;
use stylegan2::{no_grad, Device, Tensor};

fn modconv(c: &mut Criterion) {
    let _g = no_grad();
    let dev = Device::Cpu;
    let mut rng = stylegan2::rng(0);
    let f = setup_filter(&[1.0, 3.0, 3.0, 1.0], dev).unwrap();
    let mut group = c.benchmark_group("modconv_cpu");
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
                b.iter(|| modulated_conv2d(&x, &w, &s, Some(&f), case.p, path).unwrap())
            });
        }
        if case.p.up == 1 {
            let p = Conv2d {
                padding: [case.p.padding; 2],
                ..Default::default()
            };
            group.bench_function(BenchmarkId::new("conv2d", case.name), |b| {
                b.iter(|| conv2d(&x, &w, p).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, modconv);
criterion_main!(benches);
