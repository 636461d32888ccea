//! Original TensorFlow StyleGAN2 pickles: the tuple `(G, D, Gs)` of
//! `dnnlib.tflib.network.Network` states (`version`, `name`,
//! `static_kwargs`, `components`, `variables` as `(name, numpy array)`),
//! mapped to the official PyTorch names and layouts as the official
//! `legacy.py` (`convert_tf_generator`, `convert_tf_discriminator`) maps
//! them: FC weights transposed, conv weights `[kh, kw, in, out]` →
//! `[out, in, kh, kw]` (up-sampling and resnet-skip kernels of G flipped),
//! modulation biases + 1, the constant input and noise images without
//! their batch dimensions, `w_avg` from `dlatent_avg`.

use super::kwargs::{numpy_dtype, Kw, Kwargs};
use super::torch::{Dtype, TensorData};
use super::vm::Val;
use crate::error::{Error, Result};
use crate::model::{Discriminator, DiscriminatorConfig, Generator, GeneratorConfig};
use crate::nn::Module;
use crate::Device;
use std::collections::HashMap;

/// The globals a TF StyleGAN2 pickle names.
pub const GLOBALS: &[(&str, &str)] = &[
    ("dnnlib.tflib.network", "Network"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
];

/// Whether `root` is a TF `(G, D, Gs)` tuple.
pub fn is_tf(root: Val) -> bool {
    root.seq().is_some_and(|s| {
        s.len() == 3
            && s.iter()
                .all(|n| matches!(n.call(), Some((("dnnlib.tflib.network", "Network"), _))))
    })
}

/// A numpy array as f32, row-major.
#[derive(Clone, Debug)]
struct Array {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Array {
    /// Axes permuted: `out.shape[i] = shape[perm[i]]`.
    fn permute(&self, perm: &[usize]) -> Array {
        let n = self.shape.len();
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let mut strides = vec![1usize; n];
        for d in (0..n.saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * self.shape[d + 1];
        }
        let mut data = Vec::with_capacity(self.data.len());
        let mut idx = vec![0usize; n];
        for _ in 0..self.data.len() {
            let at: usize = (0..n).map(|i| idx[i] * strides[perm[i]]).sum();
            data.push(self.data[at]);
            for d in (0..n).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Array { shape, data }
    }

    /// `[::-1, ::-1]` of a 4-D kernel `[kh, kw, in, out]`.
    fn flip01(&self) -> Array {
        let [kh, kw, i, o] = self.shape[..] else {
            return self.clone();
        };
        let inner = i * o;
        let mut data = vec![0.0; self.data.len()];
        for y in 0..kh {
            for x in 0..kw {
                let src = ((kh - 1 - y) * kw + (kw - 1 - x)) * inner;
                let dst = (y * kw + x) * inner;
                data[dst..dst + inner].copy_from_slice(&self.data[src..src + inner]);
            }
        }
        Array {
            shape: self.shape.clone(),
            data,
        }
    }

    /// `a[0]` (and `a[0, 0]`): drops leading axes of size 1.
    fn index0(&self, times: usize) -> Result<Array> {
        let mut a = self.clone();
        for _ in 0..times {
            match a.shape.first() {
                Some(&n) if n >= 1 => {
                    let inner: usize = a.shape[1..].iter().product();
                    a.data.truncate(inner);
                    a.shape.remove(0);
                }
                _ => return Err(Error::Io("indexing an empty array".into())),
            }
        }
        Ok(a)
    }
}

fn bytes_of<'a>(v: Val<'a>) -> Option<std::borrow::Cow<'a, [u8]>> {
    if let Some(b) = v.as_bytes() {
        return Some(b.into());
    }
    // Protocol 2 from Python 3 writes bytes as _codecs.encode(str, 'latin1').
    let (("_codecs", "encode"), args) = v.call()? else {
        return None;
    };
    let s = args.first()?.as_str()?;
    Some(
        s.chars()
            .map(|c| c as u32 as u8)
            .collect::<Vec<u8>>()
            .into(),
    )
}

/// A numpy array record: `_reconstruct(ndarray, (0,), b'b')` with the
/// `BUILD` state `(version, shape, dtype, is_fortran, raw bytes)`.
fn array(v: Val, name: &str) -> Result<Array> {
    let bad = |m: &str| Error::Io(format!("TF variable {name}: {m}"));
    match v.call() {
        Some(((_, "_reconstruct"), _)) => {}
        _ => {
            return Err(bad(&format!(
                "a {} where a numpy array was expected",
                v.kind()
            )))
        }
    }
    let st = v
        .state()
        .and_then(|s| s.seq())
        .ok_or_else(|| bad("numpy array without state"))?;
    let [_, shape, dtype, fortran, raw] = st.as_slice() else {
        return Err(bad("numpy array state of unexpected length"));
    };
    let shape: Vec<usize> = shape
        .seq()
        .ok_or_else(|| bad("shape is not a tuple"))?
        .iter()
        .map(|d| d.as_int().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| bad("shape holds a non-size"))?;
    let (descr, big) = numpy_dtype(*dtype).ok_or_else(|| bad("dtype is not a numpy dtype"))?;
    let dt = match descr {
        "f4" => Dtype::F32,
        "f2" => Dtype::F16,
        "f8" => Dtype::F64,
        other => return Err(bad(&format!("dtype '{other}' is not a float type"))),
    };
    let raw = bytes_of(*raw).ok_or_else(|| bad("array data is not bytes"))?;
    let n: usize = shape.iter().product();
    let es = dt.size();
    if raw.len() != n * es {
        return Err(bad(&format!(
            "{} data bytes for shape {shape:?} of {descr}",
            raw.len()
        )));
    }
    let data: Vec<f32> = raw
        .chunks_exact(es)
        .map(|c| {
            let mut c = c.to_vec();
            if big {
                c.reverse();
            }
            match dt {
                Dtype::F32 => f32::from_le_bytes(c[..4].try_into().expect("4")),
                Dtype::F16 => half::f16::from_le_bytes([c[0], c[1]]).to_f32(),
                _ => f64::from_le_bytes(c[..8].try_into().expect("8")) as f32,
            }
        })
        .collect();
    let a = Array {
        shape: shape.clone(),
        data,
    };
    if fortran.as_bool() == Some(true) && shape.len() > 1 {
        // Column-major data: read it as the reversed shape and transpose.
        let rev: Vec<usize> = shape.iter().rev().copied().collect();
        let perm: Vec<usize> = (0..shape.len()).rev().collect();
        return Ok(Array { shape: rev, ..a }.permute(&perm));
    }
    Ok(a)
}

/// A TF network: its static kwargs and all variables of it and its
/// components, named `component/…/variable` (legacy `_collect_tf_params`).
struct TfNet {
    kwargs: Kw,
    version: i64,
    params: HashMap<String, Array>,
}

fn tf_net(v: Val, what: &str) -> Result<TfNet> {
    let st = v
        .state()
        .filter(|s| s.items().is_some())
        .ok_or_else(|| Error::Io(format!("{what}: TF network without a state dict")))?;
    let version = st.get("version").and_then(|x| x.as_int()).unwrap_or(0);
    let kwargs = match st.get("static_kwargs") {
        Some(k) => Kw::from_val(k, &format!("{what}.static_kwargs"), 0)?,
        None => Kw::Dict(Vec::new()),
    };
    let mut params = HashMap::new();
    fn recurse(
        st: Val,
        prefix: &str,
        what: &str,
        out: &mut HashMap<String, Array>,
        depth: usize,
    ) -> Result<()> {
        if depth > 16 {
            return Err(Error::Io(format!("{what}: components nested too deeply")));
        }
        for var in st
            .get("variables")
            .and_then(|v| v.seq())
            .unwrap_or_default()
        {
            let pair = var.seq().unwrap_or_default();
            let [n, a] = pair.as_slice() else {
                return Err(Error::Io(format!(
                    "{what}: a variable that is not (name, array)"
                )));
            };
            let n = n.as_str().ok_or_else(|| {
                Error::Io(format!("{what}: a variable name that is not a string"))
            })?;
            let name = format!("{prefix}{n}");
            let arr = array(*a, &name)?;
            out.insert(name, arr);
        }
        for (k, c) in st
            .get("components")
            .and_then(|c| c.items())
            .unwrap_or_default()
        {
            let k = k.as_str().unwrap_or("?");
            let cst = c
                .state()
                .ok_or_else(|| Error::Io(format!("{what}: component {k} without state")))?;
            recurse(cst, &format!("{prefix}{k}/"), what, out, depth + 1)?;
        }
        Ok(())
    }
    recurse(st, "", what, &mut params, 0)?;
    Ok(TfNet {
        kwargs,
        version,
        params,
    })
}

fn int(v: i64) -> Kw {
    Kw::Int(v)
}

/// legacy.py's `kwarg(tf_name, default)` bookkeeping over static_kwargs.
struct TfKwargs<'a> {
    k: Kwargs<'a>,
}

impl<'a> TfKwargs<'a> {
    fn get(&self, name: &str, default: Kw) -> Kw {
        self.k.get(name).cloned().unwrap_or(default)
    }

    /// As legacy's `none=` argument: a None value becomes `none`.
    fn get_or(&self, name: &str, default: Kw, none: Kw) -> Kw {
        match self.get(name, default) {
            Kw::None => none,
            v => v,
        }
    }
}

fn times2(k: Kw, path: &str) -> Result<Kw> {
    match k {
        Kw::Int(i) => Ok(Kw::Int(i * 2)),
        other => Err(Error::Io(format!(
            "{path}.fmap_base: {} is not an integer",
            other.describe()
        ))),
    }
}

fn dict(items: Vec<(&str, Kw)>) -> Kw {
    Kw::Dict(items.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Official `Generator` kwargs from TF static kwargs (legacy.py).
fn generator_kwargs(kw: &Kw, what: &str) -> Result<Kw> {
    let t = TfKwargs {
        k: Kwargs::new(format!("{what}.static_kwargs"), kw)?,
    };
    let out = dict(vec![
        ("z_dim", t.get("latent_size", int(512))),
        ("c_dim", t.get("label_size", int(0))),
        ("w_dim", t.get("dlatent_size", int(512))),
        ("img_resolution", t.get("resolution", int(1024))),
        ("img_channels", t.get("num_channels", int(3))),
        (
            "mapping_kwargs",
            dict(vec![
                ("num_layers", t.get("mapping_layers", int(8))),
                ("embed_features", t.get("label_fmaps", Kw::None)),
                ("layer_features", t.get("mapping_fmaps", Kw::None)),
                (
                    "activation",
                    t.get("mapping_nonlinearity", Kw::Str("lrelu".into())),
                ),
                ("lr_multiplier", t.get("mapping_lrmul", Kw::Float(0.01))),
                (
                    "w_avg_beta",
                    t.get_or("w_avg_beta", Kw::Float(0.995), int(1)),
                ),
            ]),
        ),
        (
            "synthesis_kwargs",
            dict(vec![
                (
                    "channel_base",
                    times2(t.get("fmap_base", int(16384)), &t.k.path)?,
                ),
                ("channel_max", t.get("fmap_max", int(512))),
                ("num_fp16_res", t.get("num_fp16_res", int(0))),
                ("conv_clamp", t.get("conv_clamp", Kw::None)),
                (
                    "architecture",
                    t.get("architecture", Kw::Str("skip".into())),
                ),
                (
                    "resample_filter",
                    t.get(
                        "resample_kernel",
                        Kw::List(vec![int(1), int(3), int(3), int(1)]),
                    ),
                ),
                ("use_noise", t.get("use_noise", Kw::Bool(true))),
                ("activation", t.get("nonlinearity", Kw::Str("lrelu".into()))),
            ]),
        ),
    ]);
    t.k.ignore(&[
        "truncation_psi",
        "truncation_cutoff",
        "style_mixing_prob",
        "structure",
    ]);
    t.k.no_unknown()?;
    Ok(out)
}

/// Official `Discriminator` kwargs from TF static kwargs (legacy.py).
fn discriminator_kwargs(kw: &Kw, what: &str) -> Result<Kw> {
    let t = TfKwargs {
        k: Kwargs::new(format!("{what}.static_kwargs"), kw)?,
    };
    let label_size = t.get("label_size", int(0));
    if label_size != int(0) {
        // legacy.py gives the label mapping lr_multiplier 0.1 and 0 layers by
        // default, which the crate's discriminator does not model.
        return Err(Error::Io(format!(
            "{what}.static_kwargs.label_size: {}: conditional TF discriminators are not supported",
            label_size.describe()
        )));
    }
    let lrelu = Kw::Str("lrelu".into());
    let out = dict(vec![
        ("c_dim", label_size),
        ("img_resolution", t.get("resolution", int(1024))),
        ("img_channels", t.get("num_channels", int(3))),
        (
            "architecture",
            t.get("architecture", Kw::Str("resnet".into())),
        ),
        (
            "channel_base",
            times2(t.get("fmap_base", int(16384)), &t.k.path)?,
        ),
        ("channel_max", t.get("fmap_max", int(512))),
        ("num_fp16_res", t.get("num_fp16_res", int(0))),
        ("conv_clamp", t.get("conv_clamp", Kw::None)),
        ("cmap_dim", t.get("mapping_fmaps", Kw::None)),
        (
            "block_kwargs",
            dict(vec![
                ("activation", t.get("nonlinearity", lrelu.clone())),
                (
                    "resample_filter",
                    t.get(
                        "resample_kernel",
                        Kw::List(vec![int(1), int(3), int(3), int(1)]),
                    ),
                ),
                ("freeze_layers", t.get("freeze_layers", int(0))),
            ]),
        ),
        (
            "epilogue_kwargs",
            dict(vec![
                ("mbstd_group_size", t.get("mbstd_group_size", Kw::None)),
                ("mbstd_num_channels", t.get("mbstd_num_features", int(1))),
                ("activation", t.get("nonlinearity", lrelu)),
            ]),
        ),
    ]);
    t.k.ignore(&["mapping_layers", "mapping_lrmul", "structure"]);
    t.k.no_unknown()?;
    Ok(out)
}

/// The TF variable and transform for an official parameter name, as the
/// patterns of legacy.py's `_populate_module_params`.
enum Src {
    /// Keep the model's own value (resampling filters).
    Keep,
    Var(String, Op),
}

#[derive(Clone, Copy)]
enum Op {
    Same,
    /// FC weight: `.transpose()`.
    T,
    /// Conv weight: `.transpose(3, 2, 0, 1)`.
    Conv,
    /// `[::-1, ::-1].transpose(3, 2, 0, 1)`.
    FlipConv,
    /// `[0]`.
    Index0,
    /// `[0, 0]`.
    Index00,
    /// `+ 1`.
    Plus1,
}

fn g_source(name: &str) -> Option<Src> {
    use Op::*;
    let p: Vec<&str> = name.split('.').collect();
    let v = |s: String, op| Some(Src::Var(s, op));
    if name.ends_with("resample_filter") {
        return Some(Src::Keep);
    }
    match p.as_slice() {
        ["mapping", "w_avg"] => v("dlatent_avg".into(), Same),
        ["mapping", "embed", w] => v(
            format!("mapping/LabelEmbed/{w}"),
            if *w == "weight" { T } else { Same },
        ),
        ["mapping", fc, w] if fc.starts_with("fc") => v(
            format!("mapping/Dense{}/{w}", &fc[2..]),
            if *w == "weight" { T } else { Same },
        ),
        ["synthesis", "b4", "const"] => v("synthesis/4x4/Const/const".into(), Index0),
        ["synthesis", b, layer, rest @ ..] => {
            let r: usize = b.strip_prefix('b')?.parse().ok()?;
            let log2 = r.trailing_zeros() as i64;
            let tf = match (*layer, r) {
                ("conv1", 4) => "Conv",
                ("conv0", _) => "Conv0_up",
                ("conv1", _) => "Conv1",
                ("torgb", _) => "ToRGB",
                ("skip", _) => "Skip",
                _ => return None,
            };
            let base = format!("synthesis/{r}x{r}/{tf}");
            match rest {
                ["weight"] => v(
                    format!("{base}/weight"),
                    if matches!(*layer, "conv0" | "skip") {
                        FlipConv
                    } else {
                        Conv
                    },
                ),
                ["bias"] => v(format!("{base}/bias"), Same),
                ["noise_strength"] => v(format!("{base}/noise_strength"), Same),
                ["affine", "weight"] => v(format!("{base}/mod_weight"), T),
                ["affine", "bias"] => v(format!("{base}/mod_bias"), Plus1),
                ["noise_const"] => {
                    let idx = match (*layer, r) {
                        ("conv1", 4) => 0,
                        ("conv0", _) => log2 * 2 - 5,
                        _ => log2 * 2 - 4,
                    };
                    v(format!("synthesis/noise{idx}"), Index00)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn d_source(name: &str) -> Option<Src> {
    use Op::*;
    let p: Vec<&str> = name.split('.').collect();
    let v = |s: String, op| Some(Src::Var(s, op));
    if name.ends_with("resample_filter") {
        return Some(Src::Keep);
    }
    let wt = |w: &str, op| if w == "weight" { op } else { Same };
    match p.as_slice() {
        ["b4", "conv", w] => v(format!("4x4/Conv/{w}"), wt(w, Conv)),
        ["b4", "fc", w] => v(format!("4x4/Dense0/{w}"), wt(w, T)),
        ["b4", "out", w] => v(format!("Output/{w}"), wt(w, T)),
        ["mapping", "embed", w] => v(format!("LabelEmbed/{w}"), wt(w, T)),
        ["mapping", fc, w] if fc.starts_with("fc") => {
            v(format!("Mapping{}/{w}", &fc[2..]), wt(w, T))
        }
        [b, layer, w] => {
            let r: usize = b.strip_prefix('b')?.parse().ok()?;
            let tf = match *layer {
                "fromrgb" => "FromRGB",
                "conv0" => "Conv0",
                "conv1" => "Conv1_down",
                "skip" => "Skip",
                _ => return None,
            };
            v(format!("{r}x{r}/{tf}/{w}"), wt(w, Conv))
        }
        _ => None,
    }
}

/// Fills the model's state dict from TF variables; every model tensor must
/// find its variable with the model's shape.
fn populate(
    model: &dyn Module,
    net: &TfNet,
    source: fn(&str) -> Option<Src>,
    what: &str,
    out: &mut Vec<(String, TensorData)>,
    prefix: &str,
) -> Result<()> {
    for (name, t) in model.state_dict().iter() {
        let td = match source(name) {
            None => {
                return Err(Error::Io(format!(
                    "{what}: no TF variable maps to {prefix}.{name}"
                )))
            }
            Some(Src::Keep) => TensorData {
                dtype: Dtype::F32,
                shape: t.dims().to_vec(),
                data: t.to_vec(),
            },
            Some(Src::Var(var, op)) => {
                let a = net.params.get(&var).ok_or_else(|| {
                    Error::Io(format!(
                        "{what}: TF variable {var} (for {prefix}.{name}) is missing"
                    ))
                })?;
                let a = match op {
                    Op::Same => a.clone(),
                    Op::T if a.shape.len() == 2 => a.permute(&[1, 0]),
                    Op::Conv if a.shape.len() == 4 => a.permute(&[3, 2, 0, 1]),
                    Op::FlipConv if a.shape.len() == 4 => a.flip01().permute(&[3, 2, 0, 1]),
                    Op::Index0 => a.index0(1)?,
                    Op::Index00 => a.index0(2)?,
                    Op::Plus1 => Array {
                        shape: a.shape.clone(),
                        data: a.data.iter().map(|x| x + 1.0).collect(),
                    },
                    _ => {
                        return Err(Error::Io(format!(
                            "{what}: TF variable {var} has shape {:?}, of the wrong rank for {prefix}.{name}",
                            a.shape
                        )))
                    }
                };
                if a.shape != t.dims() {
                    return Err(Error::Io(format!(
                        "{what}: TF variable {var} gives {prefix}.{name} the shape {:?}, the network needs {:?}",
                        a.shape,
                        t.dims()
                    )));
                }
                TensorData {
                    dtype: Dtype::F32,
                    shape: a.shape,
                    data: a.data,
                }
            }
        };
        out.push((format!("{prefix}.{name}"), td));
    }
    Ok(())
}

/// The networks of a TF pickle: configurations (one for G and Gs) and
/// tensors under `G.`, `D.`, `G_ema.`.
pub struct TfNetworks {
    pub generator: GeneratorConfig,
    pub discriminator: DiscriminatorConfig,
    pub tensors: Vec<(String, TensorData)>,
}

/// Reads the TF `(G, D, Gs)` tuple.
pub fn read(root: Val, what: &str, notes: &mut Vec<String>) -> Result<TfNetworks> {
    let nets = root.seq().expect("checked by is_tf");
    let names = ["G", "D", "Gs"];
    let mut parsed = Vec::new();
    for (v, n) in nets.iter().zip(names) {
        let net = tf_net(*v, &format!("{what}: TF {n}"))?;
        if net.version < 4 {
            return Err(Error::Io(format!(
                "{what}: TF {n} has network version {}; legacy.py converts version 4 and later",
                net.version
            )));
        }
        if net
            .params
            .keys()
            .any(|k| k.contains("ToRGB_lod") || k.contains("FromRGB_lod"))
        {
            return Err(Error::Io(format!(
                "{what}: TF {n} has progressive-growing ToRGB_lod/FromRGB_lod layers (StyleGAN2 configs A-D), which are not supported"
            )));
        }
        parsed.push(net);
    }
    let gk = generator_kwargs(&parsed[0].kwargs, &format!("{what}: TF G"))?;
    let gsk = generator_kwargs(&parsed[2].kwargs, &format!("{what}: TF Gs"))?;
    let dk = discriminator_kwargs(&parsed[1].kwargs, &format!("{what}: TF D"))?;
    let gcfg = super::network::generator_config(&gk, &format!("{what}: G"), notes)?;
    let gscfg = super::network::generator_config(&gsk, &format!("{what}: G_ema"), &mut Vec::new())?;
    if gcfg != gscfg {
        return Err(Error::Io(format!(
            "{what}: TF G and Gs have different architectures"
        )));
    }
    let dcfg = super::network::discriminator_config(&dk, &format!("{what}: D"), notes)?;
    let mut rng = crate::rng(0);
    let g = Generator::new(&gcfg, &mut rng, Device::Cpu)?;
    let d = Discriminator::new(&dcfg, &mut rng, Device::Cpu)?;
    let mut tensors = Vec::new();
    populate(&g, &parsed[0], g_source, what, &mut tensors, "G")?;
    populate(&d, &parsed[1], d_source, what, &mut tensors, "D")?;
    populate(&g, &parsed[2], g_source, what, &mut tensors, "G_ema")?;
    Ok(TfNetworks {
        generator: gcfg,
        discriminator: dcfg,
        tensors,
    })
}
