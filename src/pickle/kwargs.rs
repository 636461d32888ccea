//! Constructor arguments read from a pickle (`init_kwargs` of a
//! persistent record, `static_kwargs` of a TF network) as plain values, and
//! the typed look-ups that turn them into a configuration, each naming the
//! argument it rejects.

use super::vm::{Node, Val};
use crate::error::{Error, Result};

/// A plain Python value.
#[derive(Clone, Debug, PartialEq)]
pub enum Kw {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Kw>),
    Dict(Vec<(String, Kw)>),
}

impl Kw {
    /// Converts a pickled value: dicts (also `EasyDict`/`OrderedDict`) with
    /// string keys, lists, tuples, numbers (also numpy scalars), strings.
    pub fn from_val(v: Val, path: &str, depth: usize) -> Result<Kw> {
        let unsupported = |what: &str| {
            Error::Io(format!(
                "{path}: a {what} where a plain value (number, string, list, dict) was expected"
            ))
        };
        if depth > 32 {
            return Err(unsupported("value nested too deeply"));
        }
        if let Some(items) = v.items() {
            let mut out = Vec::new();
            for (k, x) in items {
                let k = k
                    .as_str()
                    .ok_or_else(|| unsupported("non-string dict key"))?;
                out.push((
                    k.to_string(),
                    Kw::from_val(x, &format!("{path}.{k}"), depth + 1)?,
                ));
            }
            return Ok(Kw::Dict(out));
        }
        Ok(match v.node() {
            Node::None => Kw::None,
            Node::Bool(b) => Kw::Bool(*b),
            Node::Int(i) => Kw::Int(*i),
            Node::Float(f) => Kw::Float(*f),
            Node::Str(s) => Kw::Str(s.clone()),
            Node::List(_) | Node::Tuple(_) => Kw::List(
                v.seq()
                    .expect("a sequence")
                    .iter()
                    .enumerate()
                    .map(|(i, x)| Kw::from_val(*x, &format!("{path}[{i}]"), depth + 1))
                    .collect::<Result<_>>()?,
            ),
            Node::Call { .. } => match numpy_scalar(v) {
                Some(k) => k,
                None => {
                    let name = v.call().map(|((m, n), _)| format!("{m}.{n}(...)"));
                    return Err(unsupported(name.as_deref().unwrap_or("object")));
                }
            },
            other => return Err(unsupported(super::vm::kind(other))),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Kw::None => "None".into(),
            Kw::Bool(b) => if *b { "True" } else { "False" }.into(),
            Kw::Int(i) => i.to_string(),
            Kw::Float(f) => f.to_string(),
            Kw::Str(s) => format!("'{s}'"),
            Kw::List(l) => format!(
                "[{}]",
                l.iter().map(Kw::describe).collect::<Vec<_>>().join(", ")
            ),
            Kw::Dict(d) => format!(
                "{{{}}}",
                d.iter()
                    .map(|(k, v)| format!("{k}: {}", v.describe()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Kw::Int(i) => Some(*i as f64),
            Kw::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// numpy's `scalar(dtype, bytes)` (attributes such as `weight_gain` are
/// numpy floats); only the numeric kinds.
pub fn numpy_scalar(v: Val) -> Option<Kw> {
    let ((m, n), args) = v.call()?;
    if !(matches!(m, "numpy.core.multiarray" | "numpy._core.multiarray") && n == "scalar") {
        return None;
    }
    let (descr, big) = numpy_dtype(*args.first()?)?;
    let b = args.get(1)?.as_bytes()?;
    let mut b = b.to_vec();
    if big {
        b.reverse();
    }
    let f = |n: usize| -> Option<[u8; 8]> {
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(b.get(..n)?);
        Some(a)
    };
    Some(match descr {
        "f8" => Kw::Float(f64::from_le_bytes(f(8)?)),
        "f4" => Kw::Float(f32::from_le_bytes(b.get(..4)?.try_into().ok()?) as f64),
        "f2" => Kw::Float(half::f16::from_le_bytes(b.get(..2)?.try_into().ok()?).to_f64()),
        "i8" => Kw::Int(i64::from_le_bytes(f(8)?)),
        "i4" => Kw::Int(i32::from_le_bytes(b.get(..4)?.try_into().ok()?) as i64),
        "u1" => Kw::Int(*b.first()? as i64),
        "b1" => Kw::Bool(*b.first()? != 0),
        _ => return None,
    })
}

/// numpy `dtype(descr, False, True)` with its `BUILD` state `(3, order,
/// ...)`: the descr ("f4", ...) and whether it is big-endian.
pub fn numpy_dtype<'a>(v: Val<'a>) -> Option<(&'a str, bool)> {
    let (("numpy", "dtype"), args) = v.call()? else {
        return None;
    };
    let descr = args.first()?.as_str()?;
    let big = v
        .state()
        .and_then(|s| s.seq())
        .and_then(|s| s.get(1).and_then(|o| o.as_str()))
        == Some(">");
    Some((descr, big))
}

/// Keyword arguments with the path they came from, for messages.
pub struct Kwargs<'a> {
    pub path: String,
    pub items: &'a [(String, Kw)],
    /// Names read so far: the rest are unknown to the caller.
    used: std::cell::RefCell<Vec<String>>,
}

fn bad(path: &str, key: &str, msg: impl std::fmt::Display) -> Error {
    Error::Io(format!("{path}.{key}: {msg}"))
}

impl<'a> Kwargs<'a> {
    pub fn new(path: impl Into<String>, kw: &'a Kw) -> Result<Kwargs<'a>> {
        let path = path.into();
        match kw {
            Kw::Dict(items) => Ok(Kwargs {
                path,
                items,
                used: Default::default(),
            }),
            other => Err(Error::Io(format!(
                "{path}: {} is not a dict of arguments",
                other.describe()
            ))),
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Kw> {
        self.used.borrow_mut().push(key.to_string());
        self.items
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// A non-negative integer; `default` when absent.
    pub fn usize(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match self.get(key) {
            None => default.ok_or_else(|| bad(&self.path, key, "missing")),
            Some(Kw::Int(i)) if *i >= 0 => Ok(*i as usize),
            Some(v) => Err(bad(
                &self.path,
                key,
                format!("{} is not a non-negative integer", v.describe()),
            )),
        }
    }

    /// An optional non-negative integer (None allowed).
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None | Some(Kw::None) => Ok(None),
            Some(Kw::Int(i)) if *i >= 0 => Ok(Some(*i as usize)),
            Some(v) => Err(bad(
                &self.path,
                key,
                format!("{} is not a non-negative integer or None", v.describe()),
            )),
        }
    }

    pub fn f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| bad(&self.path, key, format!("{} is not a number", v.describe()))),
        }
    }

    /// An optional number (None allowed).
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None | Some(Kw::None) => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                bad(
                    &self.path,
                    key,
                    format!("{} is not a number or None", v.describe()),
                )
            }),
        }
    }

    pub fn str(&self, key: &str, default: &'a str) -> Result<&'a str> {
        match self.get(key) {
            None => Ok(default),
            Some(Kw::Str(s)) => Ok(s),
            Some(v) => Err(bad(
                &self.path,
                key,
                format!("{} is not a string", v.describe()),
            )),
        }
    }

    /// Nested keyword arguments (absent or None: empty).
    pub fn sub(&self, key: &str) -> Result<Kwargs<'a>> {
        static EMPTY: Kw = Kw::Dict(Vec::new());
        let path = format!("{}.{key}", self.path);
        match self.get(key) {
            None | Some(Kw::None) => Kwargs::new(path, &EMPTY),
            Some(v) => Kwargs::new(path, v),
        }
    }

    /// Fails unless `key` is absent or one of `allowed` (the values the
    /// crate computes).
    pub fn only(&self, key: &str, allowed: &[Kw], why: &str) -> Result<()> {
        match self.get(key) {
            Some(v) if !allowed.contains(v) => Err(bad(
                &self.path,
                key,
                format!("{} is not supported: {why}", v.describe()),
            )),
            _ => Ok(()),
        }
    }

    /// Marks keys as read without checking them (settings that do not
    /// change the function, such as memory formats).
    pub fn ignore(&self, keys: &[&str]) {
        for k in keys {
            self.get(k);
        }
    }

    /// Fails naming the first argument that no look-up asked for.
    pub fn no_unknown(&self) -> Result<()> {
        let used = self.used.borrow();
        match self.items.iter().find(|(k, _)| !used.contains(k)) {
            Some((k, v)) => Err(bad(
                &self.path,
                k,
                format!("unknown argument (= {})", v.describe()),
            )),
            None => Ok(()),
        }
    }
}
