//! Labels of the official StyleGAN2-ADA dataset format: a `dataset.json` at
//! the root of the folder or zip, `{"labels": [["sub/img.png", label], ...]}`
//! (or `"labels": null`). As the official `ImageFolderDataset`, a label is
//! either an integer class (served one-hot, of size max class + 1) or an
//! array of numbers (served as is); all images must have the same kind.

use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::HashMap;

/// The name of the label file at a dataset's root.
pub const LABEL_FILE: &str = "dataset.json";

/// Largest class accepted: a one-hot label of this size per image is
/// already far beyond any real dataset, and a typo should not allocate GBs.
pub const MAX_CLASSES: usize = 1 << 20;

/// The labels of a dataset, one per image in dataset order.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    /// Integer classes; `dim` = max class + 1.
    Classes { classes: Vec<usize>, dim: usize },
    /// Float vectors of one length `dim`.
    Vectors { values: Vec<Vec<f32>>, dim: usize },
}

/// Parsed labels with each image's JSON value (for re-writing them).
pub struct Parsed {
    pub labels: Labels,
    pub raw: Vec<Value>,
}

impl Labels {
    /// The label size (`c_dim` of a conditional network).
    pub fn dim(&self) -> usize {
        match self {
            Labels::Classes { dim, .. } | Labels::Vectors { dim, .. } => *dim,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Labels::Classes { classes, .. } => classes.len(),
            Labels::Vectors { values, .. } => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Label `i` as floats (one-hot for classes).
    pub fn get(&self, i: usize) -> Vec<f32> {
        match self {
            Labels::Classes { classes, dim } => {
                let mut v = vec![0.0; *dim];
                v[classes[i]] = 1.0;
                v
            }
            Labels::Vectors { values, .. } => values[i].clone(),
        }
    }
}

enum Kind {
    Class(usize),
    Vector(Vec<f32>),
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::Class(c) => format!("class {c}"),
            Kind::Vector(v) => format!("an array of {} numbers", v.len()),
        }
    }
}

fn parse_value(v: &Value, name: &str, what: &str) -> Result<Kind> {
    let bad = |msg: String| Error::Io(format!("{what}: the label of {name} {msg}"));
    match v {
        Value::Number(n) => {
            if let Some(c) = n.as_u64() {
                if c as usize > MAX_CLASSES {
                    return Err(bad(format!("is class {c}, above {MAX_CLASSES}")));
                }
                return Ok(Kind::Class(c as usize));
            }
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f < 0.0 {
                return Err(bad(format!("is {n}: classes must be ≥ 0")));
            }
            // 3.0 is class 3 (numpy casts such a list to int64 as well).
            if f.fract() == 0.0 && f <= MAX_CLASSES as f64 {
                return Ok(Kind::Class(f as usize));
            }
            Err(bad(format!(
                "is {n}: a class must be an integer (use an array for float labels)"
            )))
        }
        Value::Array(items) => {
            if items.is_empty() {
                return Err(bad("is an empty array".into()));
            }
            items
                .iter()
                .map(|x| match x.as_f64() {
                    Some(f) if f.is_finite() => Ok(f as f32),
                    _ => Err(bad(format!("holds {x}, not a finite number"))),
                })
                .collect::<Result<Vec<f32>>>()
                .map(Kind::Vector)
        }
        other => Err(bad(format!(
            "is {other}: expected a class (integer ≥ 0) or an array of numbers"
        ))),
    }
}

/// Parses `dataset.json` (`what` names it in messages) for the images
/// `names` (paths relative to the root, `/`-separated). `None` when the
/// labels are `null` or absent. Errors: malformed JSON, an entry for a file that is
/// not among the images, an image without a label, a duplicate entry, a
/// negative or non-integer class, labels of different kinds or lengths.
pub fn parse(json: &[u8], names: &[String], what: &str) -> Result<Option<Parsed>> {
    let doc: Value = serde_json::from_slice(json)
        .map_err(|e| Error::Io(format!("{what}: not valid JSON ({e})")))?;
    if !doc.is_object() {
        return Err(Error::Io(format!(
            "{what}: expected an object {{\"labels\": [[\"file.png\", label], ...]}}"
        )));
    }
    // No "labels" key (e.g. `{}`) reads as `"labels": null`: no labels.
    let entries = match doc.get("labels").unwrap_or(&Value::Null) {
        Value::Null => return Ok(None),
        Value::Array(a) => a,
        _ => {
            return Err(Error::Io(format!(
                "{what}: \"labels\" must be a list of [\"file.png\", label] pairs or null"
            )))
        }
    };
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut slots: Vec<Option<(Kind, Value)>> = (0..names.len()).map(|_| None).collect();
    for (k, e) in entries.iter().enumerate() {
        let (name, value) = match e.as_array().map(Vec::as_slice) {
            Some([Value::String(n), v]) => (n.replace('\\', "/"), v),
            _ => {
                return Err(Error::Io(format!(
                    "{what}: labels entry {k} is {e}, expected [\"file.png\", label]"
                )))
            }
        };
        let Some(&i) = index.get(name.as_str()) else {
            return Err(Error::Io(format!(
                "{what}: lists {name}, which is not an image of the dataset"
            )));
        };
        if slots[i].is_some() {
            return Err(Error::Io(format!("{what}: {name} is listed twice")));
        }
        slots[i] = Some((parse_value(value, &name, what)?, value.clone()));
    }
    let mut kinds = Vec::with_capacity(names.len());
    let mut raw = Vec::with_capacity(names.len());
    for (slot, name) in slots.into_iter().zip(names) {
        let Some((kind, value)) = slot else {
            return Err(Error::Io(format!("{what}: {name} has no label")));
        };
        kinds.push(kind);
        raw.push(value);
    }
    // One kind and one length for all (official: one numpy array).
    let Some(first) = kinds.first() else {
        return Ok(None);
    };
    let mixed = |i: usize| {
        Error::Io(format!(
            "{what}: mixed label shapes: {} has {}, but {} has {}",
            names[0],
            first.describe(),
            names[i],
            kinds[i].describe()
        ))
    };
    let labels = match first {
        Kind::Class(_) => {
            let mut classes = Vec::with_capacity(kinds.len());
            for (i, k) in kinds.iter().enumerate() {
                match k {
                    Kind::Class(c) => classes.push(*c),
                    Kind::Vector(_) => return Err(mixed(i)),
                }
            }
            let dim = classes.iter().max().map_or(0, |m| m + 1);
            Labels::Classes { classes, dim }
        }
        Kind::Vector(v0) => {
            let dim = v0.len();
            let mut values = Vec::with_capacity(kinds.len());
            for (i, k) in kinds.iter().enumerate() {
                match k {
                    Kind::Vector(v) if v.len() == dim => values.push(v.clone()),
                    _ => return Err(mixed(i)),
                }
            }
            Labels::Vectors { values, dim }
        }
    };
    Ok(Some(Parsed { labels, raw }))
}

impl Parsed {
    /// The labels of images `keep` (indices into the parsed order), with
    /// the label size of the whole file (skipping an image does not change
    /// `c_dim`).
    pub fn select(&self, keep: &[usize]) -> Parsed {
        let labels = match &self.labels {
            Labels::Classes { classes, dim } => Labels::Classes {
                classes: keep.iter().map(|&i| classes[i]).collect(),
                dim: *dim,
            },
            Labels::Vectors { values, dim } => Labels::Vectors {
                values: keep.iter().map(|&i| values[i].clone()).collect(),
                dim: *dim,
            },
        };
        Parsed {
            labels,
            raw: keep.iter().map(|&i| self.raw[i].clone()).collect(),
        }
    }
}
