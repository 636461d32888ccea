//! The autograd engine: grad(), backward(), no_grad, higher order, freeing.

use stylegan2::{grad, no_grad, Device, Tensor};

fn leaf(v: Vec<f32>, dims: &[usize]) -> Tensor {
    let t = Tensor::from_vec(v, dims.to_vec(), Device::Cpu).unwrap();
    t.set_requires_grad(true).unwrap();
    t
}

#[test]
fn grad_of_a_polynomial_and_its_derivatives() {
    // y = x³ at x = 2: dy/dx = 12, d²y/dx² = 12, d³y/dx³ = 6.
    let x = leaf(vec![2.0], &[1]);
    let y = x.square().unwrap().mul(&x).unwrap();
    let g1 = grad(&[y], std::slice::from_ref(&x), None, true).unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(g1.to_vec(), vec![12.0]);
    let g2 = grad(&[g1], std::slice::from_ref(&x), None, true).unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(g2.to_vec(), vec![12.0]);
    let g3 = grad(&[g2], std::slice::from_ref(&x), None, false).unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(g3.to_vec(), vec![6.0]);
    assert!(
        g3.is_leaf(),
        "without create_graph the gradient records no graph"
    );
}

#[test]
fn unreached_inputs_get_none_and_shared_inputs_accumulate() {
    let a = leaf(vec![1.0, 2.0], &[2]);
    let b = leaf(vec![3.0, 4.0], &[2]);
    let y = a.mul(&a).unwrap().add(&a).unwrap().sum_all().unwrap();
    let g = grad(&[y], &[a.clone(), b], None, false).unwrap();
    assert_eq!(g[0].as_ref().unwrap().to_vec(), vec![3.0, 5.0]);
    assert!(g[1].is_none());
}

#[test]
fn grad_outputs_weight_the_outputs() {
    let x = leaf(vec![1.0, 2.0, 3.0], &[3]);
    let y = x.scale(2.0).unwrap();
    let w = Tensor::from_vec(vec![1.0, 0.0, -1.0], vec![3], Device::Cpu).unwrap();
    let g = grad(
        std::slice::from_ref(&y),
        std::slice::from_ref(&x),
        Some(&[w]),
        false,
    )
    .unwrap();
    assert_eq!(g[0].as_ref().unwrap().to_vec(), vec![2.0, 0.0, -2.0]);
    let bad = Tensor::zeros(vec![2], Device::Cpu);
    assert!(grad(&[y], &[x], Some(&[bad]), false)
        .unwrap_err()
        .to_string()
        .contains("grad"));
}

#[test]
fn backward_accumulates_into_leaves() {
    let w = leaf(vec![1.0, -2.0], &[2]);
    let loss = w.square().unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    loss.backward().unwrap();
    assert_eq!(w.grad().unwrap().to_vec(), vec![4.0, -8.0]);
    w.zero_grad();
    assert!(w.grad().is_none());
    let not_scalar = w.scale(1.0).unwrap();
    assert!(not_scalar.backward().is_err());
}

#[test]
fn no_grad_records_nothing_and_restores_the_mode() {
    let x = leaf(vec![1.0], &[1]);
    {
        let _g = no_grad();
        let y = x.exp().unwrap();
        assert!(y.is_leaf());
        assert!(!stylegan2::autograd::is_grad_enabled());
    }
    assert!(stylegan2::autograd::is_grad_enabled());
    assert!(!x.exp().unwrap().is_leaf());
}

#[test]
fn intermediate_tensors_can_be_grad_inputs() {
    let x = leaf(vec![3.0], &[1]);
    let h = x.square().unwrap();
    let y = h.scale(5.0).unwrap();
    let g = grad(&[y], &[h, x], None, false).unwrap();
    assert_eq!(g[0].as_ref().unwrap().to_vec(), vec![5.0]);
    assert_eq!(g[1].as_ref().unwrap().to_vec(), vec![30.0]);
}

#[test]
fn a_chain_of_100k_ops_is_built_differentiated_and_dropped() {
    let x = leaf(vec![1.0], &[1]);
    let mut y = x.clone();
    for _ in 0..100_000 {
        y = y.add_scalar(1e-5).unwrap();
    }
    let g = grad(
        std::slice::from_ref(&y),
        std::slice::from_ref(&x),
        None,
        false,
    )
    .unwrap();
    assert_eq!(g[0].as_ref().unwrap().to_vec(), vec![1.0]);
    // Dropping the last handle frees the chain without recursing 100k deep.
    drop(y);
}

#[test]
fn assign_replaces_data_of_a_leaf() {
    let p = leaf(vec![1.0, 2.0], &[2]);
    let snapshot = p.scale(1.0).unwrap();
    p.assign(&Tensor::from_vec(vec![5.0, 6.0], vec![2], Device::Cpu).unwrap())
        .unwrap();
    assert_eq!(p.to_vec(), vec![5.0, 6.0]);
    assert_eq!(snapshot.to_vec(), vec![1.0, 2.0]);
    assert!(p.assign(&Tensor::zeros(vec![3], Device::Cpu)).is_err());
}

#[test]
fn seeded_random_tensors_are_reproducible() {
    let a = Tensor::randn(vec![4, 8], &mut stylegan2::rng(7), Device::Cpu);
    let b = Tensor::randn(vec![4, 8], &mut stylegan2::rng(7), Device::Cpu);
    assert_eq!(a.to_vec(), b.to_vec());
    let mean: f32 = Tensor::randn(vec![10_000], &mut stylegan2::rng(1), Device::Cpu)
        .to_vec()
        .iter()
        .sum::<f32>()
        / 1e4;
    assert!(mean.abs() < 0.05, "mean {mean}");
    let u = Tensor::uniform(vec![1000], -2.0, 3.0, &mut stylegan2::rng(2), Device::Cpu)
        .unwrap()
        .to_vec();
    assert!(u.iter().all(|&v| (-2.0..3.0).contains(&v)));
    assert!(Tensor::uniform(vec![1], 1.0, 1.0, &mut stylegan2::rng(2), Device::Cpu).is_err());
}
