//! stylegan2-ada-pytorch network pickles: the snapshot dict of
//! `training/training_loop.py` (`G`, `D`, `G_ema`, `augment_pipe`,
//! `training_set_kwargs`), each network a `torch_utils.persistence` record
//! `_reconstruct_persistent_obj({type: 'class', version, module_src,
//! class_name, state})` whose state is the module's `__dict__`:
//! `_parameters`, `_buffers` and `_modules` (children, records again) give
//! the state dict under the official names, `_init_kwargs` the constructor
//! arguments, from which the crate's configuration follows.

use super::kwargs::{Kw, Kwargs};
use super::torch::{Reader, TensorData};
use super::vm::Val;
use crate::error::{Error, Result};
use crate::model::config::channels_at;
use crate::model::{Architecture, DiscriminatorConfig, GeneratorConfig};

/// The globals a stylegan2-ada-pytorch pickle may name beyond tensors'.
pub const GLOBALS: &[(&str, &str)] = &[
    ("torch_utils.persistence", "_reconstruct_persistent_obj"),
    ("dnnlib.util", "EasyDict"),
    ("dnnlib", "EasyDict"),
    ("builtins", "set"),
    ("__builtin__", "set"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
];

/// One network of a pickle: class, constructor arguments, state dict.
pub struct Network {
    pub class_name: String,
    pub init_kwargs: Kw,
    /// Official state-dict names (parameters and persistent buffers).
    pub tensors: Vec<(String, TensorData)>,
}

/// A persistent record's class name and `__dict__`.
fn record<'a>(v: Val<'a>, path: &str) -> Result<(String, Val<'a>)> {
    let not = || {
        Error::Io(format!(
            "{path}: a {} where a network record (torch_utils.persistence) was expected",
            v.call()
                .map(|((m, n), _)| format!("{m}.{n}(...)"))
                .unwrap_or_else(|| v.kind().to_string())
        ))
    };
    let Some((("torch_utils.persistence", "_reconstruct_persistent_obj"), args)) = v.call() else {
        return Err(not());
    };
    let meta = args.first().ok_or_else(not)?;
    if meta.get("type").and_then(|t| t.as_str()) != Some("class") {
        return Err(Error::Io(format!(
            "{path}: persistent record of a type other than 'class'"
        )));
    }
    let class_name = meta
        .get("class_name")
        .and_then(|c| c.as_str())
        .ok_or_else(|| Error::Io(format!("{path}: persistent record without class_name")))?;
    let state = meta
        .get("state")
        .filter(|s| s.items().is_some())
        .ok_or_else(|| Error::Io(format!("{path}: persistent record without a state dict")))?;
    Ok((class_name.to_string(), state))
}

/// The tensors of a module's `__dict__` and its children's, official names.
fn collect(
    state: Val,
    prefix: &str,
    path: &str,
    reader: &mut Reader,
    out: &mut Vec<(String, TensorData)>,
    depth: usize,
) -> Result<()> {
    if depth > 64 {
        return Err(Error::Io(format!("{path}: modules nested too deeply")));
    }
    let non_persistent: Vec<&str> = state
        .get("_non_persistent_buffers_set")
        .map(|s| match s.node() {
            super::vm::Node::Set(items) => {
                items.iter().filter_map(|&i| s.p.val(i).as_str()).collect()
            }
            // Protocol < 4: builtins.set(list).
            _ => s
                .call()
                .and_then(|(_, a)| a.first().and_then(|l| l.seq()))
                .unwrap_or_default()
                .iter()
                .filter_map(|x| x.as_str())
                .collect(),
        })
        .unwrap_or_default();
    for group in ["_parameters", "_buffers"] {
        let Some(items) = state.get(group).and_then(|g| g.items()) else {
            continue;
        };
        for (k, t) in items {
            let Some(k) = k.as_str() else { continue };
            if t.is_none() || (group == "_buffers" && non_persistent.contains(&k)) {
                continue;
            }
            let name = format!("{prefix}{k}");
            let td = reader
                .tensor(t)
                .map_err(|e| Error::Io(format!("{path}: tensor {name}: {e}")))?;
            out.push((name, td));
        }
    }
    if let Some(children) = state.get("_modules").and_then(|m| m.items()) {
        for (k, m) in children {
            let Some(k) = k.as_str() else { continue };
            if m.is_none() {
                continue;
            }
            let (_, st) = record(m, &format!("{path}: module {prefix}{k}"))?;
            collect(st, &format!("{prefix}{k}."), path, reader, out, depth + 1)?;
        }
    }
    Ok(())
}

/// Positional constructor arguments of the official networks, in order.
fn positional_names(class: &str) -> &'static [&'static str] {
    match class {
        "Generator" => &[
            "z_dim",
            "c_dim",
            "w_dim",
            "img_resolution",
            "img_channels",
            "mapping_kwargs",
            "synthesis_kwargs",
        ],
        "Discriminator" => &[
            "c_dim",
            "img_resolution",
            "img_channels",
            "architecture",
            "channel_base",
            "channel_max",
            "num_fp16_res",
            "conv_clamp",
            "cmap_dim",
            "block_kwargs",
            "mapping_kwargs",
            "epilogue_kwargs",
        ],
        _ => &[],
    }
}

/// Reads the network record `v` (`path` names it in messages).
pub fn network(v: Val, path: &str, reader: &mut Reader) -> Result<Network> {
    let (class_name, state) = record(v, path)?;
    let mut kwargs = match state.get("_init_kwargs") {
        Some(k) => match Kw::from_val(k, &format!("{path}.init_kwargs"), 0)? {
            Kw::Dict(d) => d,
            _ => return Err(Error::Io(format!("{path}: _init_kwargs is not a dict"))),
        },
        None => Vec::new(),
    };
    if let Some(args) = state.get("_init_args").and_then(|a| a.seq()) {
        let names = positional_names(&class_name);
        if args.len() > names.len() {
            return Err(Error::Io(format!(
                "{path}: {} positional constructor arguments for {class_name}",
                args.len()
            )));
        }
        for (a, n) in args.iter().zip(names) {
            kwargs.push((
                n.to_string(),
                Kw::from_val(*a, &format!("{path}.init_args.{n}"), 0)?,
            ));
        }
    }
    let mut tensors = Vec::new();
    collect(state, "", path, reader, &mut tensors, 0)?;
    Ok(Network {
        class_name,
        init_kwargs: Kw::Dict(kwargs),
        tensors,
    })
}

const LRELU: &str = "the crate's networks use lrelu";

fn filter_ok(k: &Kwargs, key: &str) -> Result<()> {
    let f = |v: i64| Kw::Int(v);
    k.only(
        key,
        &[Kw::List(vec![f(1), f(3), f(3), f(1)])],
        "the crate's resampling filter is [1, 3, 3, 1]",
    )
}

fn architecture(k: &Kwargs, default: &str) -> Result<Architecture> {
    match k.str("architecture", default)? {
        "orig" => Ok(Architecture::Orig),
        "skip" => Ok(Architecture::Skip),
        "resnet" => Ok(Architecture::Resnet),
        other => Err(Error::Io(format!(
            "{}.architecture: '{other}' is not orig, skip or resnet",
            k.path
        ))),
    }
}

/// The crate's generator configuration from official `Generator` kwargs;
/// `notes` receives what the crate does differently (where mixed precision applies).
pub fn generator_config(kw: &Kw, path: &str, notes: &mut Vec<String>) -> Result<GeneratorConfig> {
    let k = Kwargs::new(path, kw)?;
    let w_dim = k.usize("w_dim", None)?;
    let z_dim = k.usize("z_dim", None)?;
    let c_dim = k.usize("c_dim", None)?;
    let img_resolution = k.usize("img_resolution", None)?;
    let img_channels = k.usize("img_channels", None)?;
    let m = k.sub("mapping_kwargs")?;
    let mapping_layers = m.usize("num_layers", Some(8))?;
    let same = [Kw::None, Kw::Int(w_dim as i64)];
    if c_dim > 0 {
        m.only(
            "embed_features",
            &same,
            "the label embedding has w_dim features",
        )?;
    } else {
        m.ignore(&["embed_features"]);
    }
    m.only(
        "layer_features",
        &same,
        "the mapping layers have w_dim features",
    )?;
    m.only("activation", &[Kw::Str("lrelu".into())], LRELU)?;
    let lr_mul = m.f64("lr_multiplier", 0.01)?;
    let w_avg_beta = match m.get("w_avg_beta") {
        None => 0.995,
        Some(Kw::None) => {
            return Err(Error::Io(format!(
                "{path}.mapping_kwargs.w_avg_beta: None (no w_avg tracked) is not supported"
            )))
        }
        Some(_) => m.f64("w_avg_beta", 0.995)?,
    };
    m.ignore(&["z_dim", "c_dim", "w_dim", "num_ws"]);
    m.no_unknown()?;
    let s = k.sub("synthesis_kwargs")?;
    let channel_base = s.usize("channel_base", Some(32768))?;
    let channel_max = s.usize("channel_max", Some(512))?;
    let conv_clamp = s.opt_f64("conv_clamp")?.map(|c| c as f32);
    let arch = architecture(&s, "skip")?;
    let num_fp16_res = s.usize("num_fp16_res", Some(0))?;
    if num_fp16_res > 0 {
        notes.push(format!(
            "{path}: num_fp16_res = {num_fp16_res}: those blocks compute in FP16 on Sim/Cuda, in FP32 on the CPU (as the official code off CUDA)"
        ));
    }
    filter_ok(&s, "resample_filter")?;
    s.only(
        "use_noise",
        &[Kw::Bool(true)],
        "the crate's synthesis layers have noise inputs",
    )?;
    s.only("activation", &[Kw::Str("lrelu".into())], LRELU)?;
    s.only(
        "kernel_size",
        &[Kw::Int(3)],
        "the crate's synthesis convolutions are 3×3",
    )?;
    s.ignore(&[
        "fp16_channels_last",
        "channels_last",
        "w_dim",
        "img_resolution",
        "img_channels",
    ]);
    s.no_unknown()?;
    k.no_unknown()?;
    let cfg = GeneratorConfig {
        z_dim,
        c_dim,
        w_dim,
        img_resolution,
        img_channels,
        mapping_layers,
        mapping_lr_multiplier: lr_mul as f32,
        w_avg_beta: w_avg_beta as f32,
        channel_base,
        channel_max,
        conv_clamp,
        architecture: arch,
        num_fp16_res,
    };
    cfg.validate()
        .map_err(|e| Error::Io(format!("{path}: {e}")))?;
    Ok(cfg)
}

/// The crate's discriminator configuration from official `Discriminator`
/// kwargs.
pub fn discriminator_config(
    kw: &Kw,
    path: &str,
    notes: &mut Vec<String>,
) -> Result<DiscriminatorConfig> {
    let k = Kwargs::new(path, kw)?;
    let c_dim = k.usize("c_dim", None)?;
    let img_resolution = k.usize("img_resolution", None)?;
    let img_channels = k.usize("img_channels", None)?;
    let arch = architecture(&k, "resnet")?;
    let channel_base = k.usize("channel_base", Some(32768))?;
    let channel_max = k.usize("channel_max", Some(512))?;
    let num_fp16_res = k.usize("num_fp16_res", Some(0))?;
    if num_fp16_res > 0 {
        notes.push(format!(
            "{path}: num_fp16_res = {num_fp16_res}: those blocks compute in FP16 on Sim/Cuda, in FP32 on the CPU (as the official code off CUDA)"
        ));
    }
    let conv_clamp = k.opt_f64("conv_clamp")?.map(|c| c as f32);
    let cmap_dim = k.opt_usize("cmap_dim")?;
    let b = k.sub("block_kwargs")?;
    b.only("activation", &[Kw::Str("lrelu".into())], LRELU)?;
    filter_ok(&b, "resample_filter")?;
    let freeze_layers = b.usize("freeze_layers", Some(0))?;
    b.ignore(&["fp16_channels_last"]);
    b.no_unknown()?;
    let m = k.sub("mapping_kwargs")?;
    let mapping_layers = m.usize("num_layers", Some(8))?;
    if c_dim > 0 {
        let cmap = cmap_dim.unwrap_or(channels_at(channel_base, channel_max, 4));
        let same = [Kw::None, Kw::Int(cmap as i64)];
        m.only(
            "embed_features",
            &same,
            "the label embedding has cmap_dim features",
        )?;
        m.only(
            "layer_features",
            &same,
            "the mapping layers have cmap_dim features",
        )?;
        m.only("activation", &[Kw::Str("lrelu".into())], LRELU)?;
        m.only(
            "lr_multiplier",
            &[Kw::Float(0.01)],
            "the crate's label mapping of D uses lr_multiplier 0.01",
        )?;
    } else {
        // No labels, no mapping network: legacy.py's TF conversions carry
        // settings (lr_multiplier 0.1) of a network that is not built.
        m.ignore(&[
            "embed_features",
            "layer_features",
            "activation",
            "lr_multiplier",
        ]);
    }
    m.no_unknown()?;
    let e = k.sub("epilogue_kwargs")?;
    let mbstd_group_size = match e.get("mbstd_group_size") {
        None => Some(4),
        Some(Kw::None) => None,
        Some(_) => Some(e.usize("mbstd_group_size", None)?),
    };
    let mbstd_num_channels = e.usize("mbstd_num_channels", Some(1))?;
    e.only("activation", &[Kw::Str("lrelu".into())], LRELU)?;
    e.no_unknown()?;
    k.no_unknown()?;
    let cfg = DiscriminatorConfig {
        c_dim,
        img_resolution,
        img_channels,
        architecture: arch,
        channel_base,
        channel_max,
        conv_clamp,
        num_fp16_res,
        cmap_dim,
        mbstd_group_size,
        mbstd_num_channels,
        mapping_layers,
        freeze_layers,
    };
    cfg.validate()
        .map_err(|e| Error::Io(format!("{path}: {e}")))?;
    Ok(cfg)
}
