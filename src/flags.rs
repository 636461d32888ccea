//! The one parser of command-line numbers, ranges and lists: every value
//! is checked (finite, within its stated range, a list's size bounded)
//! before anything is allocated or computed from it, and a refusal says
//! why. The scalar parsers plug into clap (`value_parser = flags::…`),
//! which prefixes the flag's name and exits with status 2; the list
//! parsers take the flag's name for their messages.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// The most seeds `generate` takes (one PNG each).
pub const MAX_SEEDS: u64 = 100_000;
/// The most row or column seeds of the style-mixing figure.
pub const MAX_FIGURE_SEEDS: u64 = 256;
/// The largest image resolution a network may have (official presets stop
/// at 1024).
pub const MAX_RESOLUTION: usize = 1024;
/// The largest batch (of training, a metric or a benchmark).
pub const MAX_BATCH: usize = 4096;
/// The longest training, in kimg (the official runs use up to 25 000).
pub const MAX_KIMG: f64 = 1e6;

/// A finite number (no NaN, no ±inf, no overflow to inf).
fn finite(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!("{s} is not a finite number"));
    }
    Ok(v)
}

/// A float within `[lo, hi]`.
pub fn f64_in(lo: f64, hi: f64) -> impl Fn(&str) -> std::result::Result<f64, String> + Clone {
    move |s| {
        let v = finite(s)?;
        if v < lo || v > hi {
            return Err(format!("{} is outside [{lo}, {hi}]", s.trim()));
        }
        Ok(v)
    }
}

/// A float within `[lo, hi]`, as f32 (rejects values that overflow f32).
pub fn f32_in(lo: f32, hi: f32) -> impl Fn(&str) -> std::result::Result<f32, String> + Clone {
    move |s| f64_in(lo as f64, hi as f64)(s).map(|v| v as f32)
}

/// A float in `(0, hi]`.
pub fn positive_f64(hi: f64) -> impl Fn(&str) -> std::result::Result<f64, String> + Clone {
    move |s| {
        let v = finite(s)?;
        if v <= 0.0 || v > hi {
            return Err(format!(
                "{} is not in (0, {hi}]: it must be positive",
                s.trim()
            ));
        }
        Ok(v)
    }
}

/// A float in `(0, hi]`, as f32.
pub fn positive_f32(hi: f32) -> impl Fn(&str) -> std::result::Result<f32, String> + Clone {
    move |s| positive_f64(hi as f64)(s).map(|v| v as f32)
}

/// An integer within `[lo, hi]`.
pub fn usize_in(
    lo: usize,
    hi: usize,
) -> impl Fn(&str) -> std::result::Result<usize, String> + Clone {
    move |s| {
        let v: usize = s
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a whole number in {lo}..={hi}"))?;
        if v < lo || v > hi {
            return Err(format!("{v} is outside {lo}..={hi}"));
        }
        Ok(v)
    }
}

/// An image resolution: a power of two within `[4, MAX_RESOLUTION]`.
pub fn resolution(s: &str) -> std::result::Result<usize, String> {
    power_of_two_in(4, s)
}

/// The resolution of a network with a discriminator (`train`, `init`): a
/// power of two within [`MIN_DISCRIMINATOR_RESOLUTION`]`..=`
/// [`MAX_RESOLUTION`], so 4 is refused naming the flag (exit 2) rather than
/// later by the config check.
///
/// [`MIN_DISCRIMINATOR_RESOLUTION`]: crate::model::config::MIN_DISCRIMINATOR_RESOLUTION
pub fn network_resolution(s: &str) -> std::result::Result<usize, String> {
    power_of_two_in(crate::model::config::MIN_DISCRIMINATOR_RESOLUTION, s)
}

fn power_of_two_in(lo: usize, s: &str) -> std::result::Result<usize, String> {
    let v = usize_in(lo, MAX_RESOLUTION)(s)?;
    if !v.is_power_of_two() {
        return Err(format!("{v} is not a power of two"));
    }
    Ok(v)
}

/// A path that is not empty (existence is checked where it is used, with
/// the file's name).
pub fn path(s: &str) -> std::result::Result<PathBuf, String> {
    if s.trim().is_empty() {
        return Err("an empty path".into());
    }
    Ok(PathBuf::from(s))
}

/// A list of integers and inclusive ranges, as the official scripts take
/// seeds: `"0,5,10-12"`. Kept as ranges, so a huge range costs nothing
/// until it has been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeList {
    ranges: Vec<(u64, u64)>,
}

impl RangeList {
    /// Parses `s` for `flag` (its name, for messages). Refuses an empty
    /// list, a malformed item, a reversed range (`5-2`) and a list of more
    /// than `max_count` values.
    pub fn parse(s: &str, flag: &'static str, max_count: u64) -> Result<RangeList> {
        let bad = |msg: String| Error::Invalid { op: flag, msg };
        let mut ranges = Vec::new();
        let mut count = 0u64;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let num = |t: &str| {
                t.trim().parse::<u64>().map_err(|_| {
                    bad(format!(
                        "'{part}' in '{s}' is not a whole number ≥ 0 or a range a-b"
                    ))
                })
            };
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let v = num(part)?;
                    (v, v)
                }
            };
            if a > b {
                return Err(bad(format!(
                    "the range {part} is reversed: write {b}-{a} (ranges count up)"
                )));
            }
            count = count.saturating_add((b - a).saturating_add(1));
            if count > max_count {
                return Err(bad(format!(
                    "'{s}' lists more than {max_count} values, the most {flag} takes"
                )));
            }
            ranges.push((a, b));
        }
        if ranges.is_empty() {
            return Err(bad(format!("no values in '{s}'")));
        }
        Ok(RangeList { ranges })
    }

    /// The number of values (with repeats).
    pub fn count(&self) -> u64 {
        self.ranges.iter().map(|&(a, b)| b - a + 1).sum()
    }

    /// The largest value.
    pub fn max(&self) -> u64 {
        self.ranges.iter().map(|&(_, b)| b).max().unwrap_or(0)
    }

    /// The values in the order given.
    pub fn values(&self) -> Vec<u64> {
        self.ranges.iter().flat_map(|&(a, b)| a..=b).collect()
    }
}
