//! Finite-difference checks (first and second order) of the elementwise,
//! reduction and layout ops.

mod common;
use common::{gradcheck, input, input_away_from_zero, Check};
use stylegan2::{Device, Tensor};

fn unary(name: &str, f: fn(&Tensor) -> stylegan2::Result<Tensor>, x: Tensor) {
    gradcheck(name, |t| f(&t[0]), &[x], Check::default());
}

#[test]
fn unary_ops() {
    unary("neg", |x| x.neg(), input(&[3, 5], 1));
    unary("square", |x| x.square(), input(&[3, 5], 2));
    unary("exp", |x| x.exp(), input(&[3, 5], 3));
    unary("softplus", |x| x.softplus(), input(&[3, 5], 4));
    unary("sigmoid", |x| x.sigmoid(), input(&[3, 5], 5));
    unary("abs", |x| x.abs(), input_away_from_zero(&[3, 5], 6, 0.05));
    unary("affine", |x| x.affine(-1.5, 0.25), input(&[2, 3], 7));
    // sqrt, rsqrt and log need positive inputs.
    let pos = |seed| {
        let t = input(&[3, 5], seed)
            .abs()
            .unwrap()
            .add_scalar(0.5)
            .unwrap()
            .detach();
        t.set_requires_grad(true).unwrap();
        t
    };
    unary("sqrt", |x| x.sqrt(), pos(8));
    unary("rsqrt", |x| x.rsqrt(), pos(9));
    unary("log", |x| x.log(), pos(10));
    // Inputs at least 0.05 from the bounds ±0.5 (eps is 1e-2).
    let x = input(&[4, 7], 11)
        .to_vec()
        .into_iter()
        .map(|v| {
            if (v.abs() - 0.5).abs() < 0.05 {
                v * 0.8
            } else {
                v
            }
        })
        .collect();
    let x = Tensor::from_vec(x, vec![4, 7], Device::Cpu).unwrap();
    x.set_requires_grad(true).unwrap();
    unary("clamp", |x| x.clamp(-0.5, 0.5), x);
}

#[test]
fn binary_ops_with_broadcasting() {
    let shapes: [(&[usize], &[usize]); 4] = [
        (&[3, 5], &[3, 5]),
        (&[2, 3, 5], &[5]),
        (&[3, 1], &[1, 4]),
        (&[2, 1, 3], &[3, 1]),
    ];
    for (i, (sa, sb)) in shapes.iter().enumerate() {
        let a = input(sa, 20 + i as u64);
        let b = input(sb, 40 + i as u64);
        gradcheck(
            "add",
            |t| t[0].add(&t[1]),
            &[a.clone(), b.clone()],
            Check::default(),
        );
        gradcheck(
            "sub",
            |t| t[0].sub(&t[1]),
            &[a.clone(), b.clone()],
            Check::default(),
        );
        gradcheck(
            "mul",
            |t| t[0].mul(&t[1]),
            &[a.clone(), b.clone()],
            Check::default(),
        );
        let bpos = b.abs().unwrap().add_scalar(0.5).unwrap().detach();
        bpos.set_requires_grad(true).unwrap();
        gradcheck(
            "div",
            |t| t[0].div(&t[1]),
            &[a.clone(), bpos],
            Check::default(),
        );
        // Shift b so no pair is within eps of a tie.
        let bshift = b.add_scalar(0.013).unwrap().detach();
        bshift.set_requires_grad(true).unwrap();
        gradcheck(
            "maximum",
            |t| t[0].maximum(&t[1]),
            &[a.clone(), bshift.clone()],
            Check::default(),
        );
        gradcheck(
            "minimum",
            |t| t[0].minimum(&t[1]),
            &[a.clone(), bshift],
            Check::default(),
        );
    }
}

#[test]
fn lerp_with_tensor_and_scalar_weights() {
    let (a, b, t) = (input(&[2, 3], 1), input(&[2, 3], 2), input(&[3], 3));
    gradcheck(
        "lerp",
        |x| x[0].lerp(&x[1], &x[2]),
        &[a.clone(), b.clone(), t],
        Check::default(),
    );
    gradcheck(
        "lerp_scalar",
        |x| x[0].lerp_scalar(&x[1], 0.3),
        &[a, b],
        Check::default(),
    );
}

#[test]
fn reductions() {
    let x = input(&[2, 3, 4], 7);
    // Distinct values 0.1 apart, so no perturbation by eps changes which element is the max.
    let spread: Vec<f32> = (0..24).map(|i| ((i * 7) % 24) as f32 * 0.1 - 1.2).collect();
    let xm = Tensor::from_vec(spread, vec![2, 3, 4], Device::Cpu).unwrap();
    xm.set_requires_grad(true).unwrap();
    for axes in [&[0usize][..], &[1], &[2], &[0, 2], &[0, 1, 2]] {
        for keep in [false, true] {
            gradcheck(
                "sum",
                |t| t[0].sum(axes, keep),
                std::slice::from_ref(&x),
                Check::default(),
            );
            // A nonlinearity after the reduction makes the second order non-trivial.
            gradcheck(
                "mean",
                |t| t[0].mean(axes, keep)?.square(),
                std::slice::from_ref(&x),
                Check::default(),
            );
            gradcheck(
                "max",
                |t| t[0].max(axes, keep)?.square(),
                std::slice::from_ref(&xm),
                Check::default(),
            );
        }
    }
    let y = input(&[2, 3, 4], 8);
    gradcheck(
        "sum_to",
        |t| t[0].square()?.sum_to(&stylegan2::Shape::new([3, 1])),
        &[y],
        Check::default(),
    );
}

#[test]
fn layout_ops() {
    let x = input(&[2, 3, 4], 9);
    let sq = |t: &Tensor| t.square();
    gradcheck(
        "reshape",
        |t| sq(&t[0].reshape(vec![4, 6])?),
        std::slice::from_ref(&x),
        Check::default(),
    );
    gradcheck(
        "permute",
        |t| sq(&t[0].permute(&[2, 0, 1])?),
        std::slice::from_ref(&x),
        Check::default(),
    );
    gradcheck(
        "transpose",
        |t| sq(&t[0].transpose(0, 2)?),
        std::slice::from_ref(&x),
        Check::default(),
    );
    gradcheck(
        "narrow",
        |t| sq(&t[0].narrow(2, 1, 2)?),
        std::slice::from_ref(&x),
        Check::default(),
    );
    gradcheck(
        "pad_zeros",
        |t| sq(&t[0].pad_zeros(1, 2, 1)?),
        std::slice::from_ref(&x),
        Check::default(),
    );
    gradcheck(
        "flip",
        |t| sq(&t[0].flip(&[0, 2])?),
        std::slice::from_ref(&x),
        Check::default(),
    );
    gradcheck(
        "broadcast_to",
        |t| sq(&t[0].broadcast_to(&stylegan2::Shape::new([5, 2, 3, 4]))?),
        std::slice::from_ref(&x),
        Check::default(),
    );
    let y = input(&[2, 1, 4], 10);
    gradcheck(
        "concat",
        |t| sq(&Tensor::concat(&[t[0].clone(), t[1].clone()], 1)?),
        &[x, y],
        Check::default(),
    );
}

#[test]
fn layout_values() {
    let x = Tensor::from_vec((0..6).map(|v| v as f32).collect(), vec![2, 3], Device::Cpu).unwrap();
    assert_eq!(
        x.transpose(0, 1).unwrap().to_vec(),
        vec![0., 3., 1., 4., 2., 5.]
    );
    assert_eq!(x.flip(&[1]).unwrap().to_vec(), vec![2., 1., 0., 5., 4., 3.]);
    assert_eq!(x.narrow(1, 1, 2).unwrap().to_vec(), vec![1., 2., 4., 5.]);
    let c = Tensor::concat(&[x.clone(), x.narrow(1, 0, 1).unwrap()], 1).unwrap();
    assert_eq!(c.dims(), &[2, 4]);
    assert_eq!(c.to_vec(), vec![0., 1., 2., 0., 3., 4., 5., 3.]);
    let b = x
        .narrow(0, 0, 1)
        .unwrap()
        .broadcast_to(&stylegan2::Shape::new([2, 2, 3]))
        .unwrap();
    assert_eq!(
        b.to_vec(),
        vec![0., 1., 2., 0., 1., 2., 0., 1., 2., 0., 1., 2.]
    );
    assert_eq!(x.max(&[1], false).unwrap().to_vec(), vec![2., 5.]);
    assert_eq!(x.sum(&[0], false).unwrap().to_vec(), vec![3., 5., 7.]);
}

#[test]
fn shape_errors_name_the_op() {
    let a = Tensor::zeros(vec![2, 3], Device::Cpu);
    let b = Tensor::zeros(vec![4], Device::Cpu);
    let e = a.add(&b).unwrap_err().to_string();
    assert!(
        e.contains("add") && e.contains("[2, 3]") && e.contains("[4]"),
        "{e}"
    );
    assert!(a
        .reshape(vec![5])
        .unwrap_err()
        .to_string()
        .contains("reshape"));
    assert!(a.narrow(1, 2, 2).is_err());
    assert!(a.permute(&[0, 0]).is_err());
    assert!(a.sum(&[2], false).is_err());
    assert!(Tensor::from_vec(vec![1.0; 5], vec![2, 3], Device::Cpu).is_err());
    assert!(a.clamp(1.0, -1.0).is_err());
}

#[test]
fn minibatch_std() {
    use stylegan2::ops::mbstd::minibatch_std;
    // Group 2 over a batch of 4 (strided groups), and group 4 clipped to batch 3 → 3.
    gradcheck(
        "minibatch_std g2",
        |t| minibatch_std(&t[0], 2, 1),
        &[input(&[4, 3, 2, 3], 12)],
        Check::default(),
    );
    gradcheck(
        "minibatch_std g4/n3 f2",
        |t| minibatch_std(&t[0], 4, 2),
        &[input(&[3, 4, 3, 2], 13)],
        Check::default(),
    );
    let x = Tensor::zeros(vec![3, 2, 2, 2], Device::Cpu);
    assert!(minibatch_std(&x, 2, 1)
        .unwrap_err()
        .to_string()
        .contains("divisible"));
}
