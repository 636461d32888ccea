//! The one way image files are decoded (datasets for `train` and `metric`,
//! the input of `stylegan2 dataset`): the whole file, strictly.
//!
//! - The format is told by the file's first bytes, not its name: PNG or
//!   JPEG; anything else is refused as unsupported.
//! - PNG (through `png`): palettes and bit depths below 8 expanded, 16-bit
//!   reduced to 8 bits, and the file read to its end (`IEND`), so a file
//!   that misses its last bytes, or whose checksums fail, is refused.
//! - JPEG (through `zune-jpeg` in strict mode): a scan that ends before the
//!   image does is an error, where the default would fill the rest with
//!   gray.
//! - Alpha: the official dataset tool accepts only RGB or grayscale images.
//!   An alpha channel that is fully opaque carries nothing and is dropped;
//!   one with any transparent pixel is refused naming the file, since the
//!   colours under transparent pixels are arbitrary and training on them
//!   would silently learn them.

use crate::error::{Error, Result};
use image::DynamicImage;
use std::io::Cursor;

/// A decoded 8-bit image: `channels` is 1 (gray) or 3 (RGB), `pixels` is
/// `height × width × channels` bytes, row-major (HWC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

impl Decoded {
    /// As an `image` crate image (`Luma8` or `Rgb8`).
    pub fn into_dynamic(self) -> DynamicImage {
        let (w, h) = (self.width, self.height);
        if self.channels == 1 {
            DynamicImage::ImageLuma8(
                image::GrayImage::from_raw(w, h, self.pixels).expect("size checked at decode"),
            )
        } else {
            DynamicImage::ImageRgb8(
                image::RgbImage::from_raw(w, h, self.pixels).expect("size checked at decode"),
            )
        }
    }

    /// The pixels as `[C, H, W]` bytes with `channels` channels (1 or 3;
    /// gray is repeated into RGB, RGB is never reduced to gray).
    pub fn to_chw(&self, channels: usize) -> Vec<u8> {
        let n = (self.width * self.height) as usize;
        let mut out = vec![0u8; channels * n];
        let c = self.channels;
        for p in 0..n {
            for ch in 0..channels {
                out[ch * n + p] = self.pixels[p * c + ch.min(c - 1)];
            }
        }
        out
    }
}

/// Whether `bytes` start like a PNG or a JPEG file.
pub fn is_supported(bytes: &[u8]) -> bool {
    bytes.starts_with(PNG_MAGIC) || bytes.starts_with(JPEG_MAGIC)
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];
/// Decoder memory limit: a 16k × 16k RGBA image.
const MAX_BYTES: usize = 1 << 30;

/// Decodes a whole PNG or JPEG file; `what` names it in errors ("corrupt
/// or truncated", "unsupported format", "transparent pixels").
pub fn decode(bytes: &[u8], what: &str) -> Result<Decoded> {
    let (w, h, c, px) = if bytes.starts_with(PNG_MAGIC) {
        decode_png(bytes)
    } else if bytes.starts_with(JPEG_MAGIC) {
        decode_jpeg(bytes)
    } else {
        return Err(Error::Io(format!(
            "{what}: unsupported format: not a PNG or JPEG file"
        )));
    }
    .map_err(|e| Error::Io(format!("{what}: corrupt or truncated image ({e})")))?;
    let (channels, pixels) = match c {
        1 | 3 => (c, px),
        2 | 4 => (c - 1, drop_opaque_alpha(px, c, w, what)?),
        _ => return Err(Error::Io(format!("{what}: {c} channels are not supported"))),
    };
    if pixels.len() != (w as usize) * (h as usize) * channels {
        return Err(Error::Io(format!(
            "{what}: corrupt image (decoded {} bytes for {w}×{h}×{channels})",
            pixels.len()
        )));
    }
    Ok(Decoded {
        width: w,
        height: h,
        channels,
        pixels,
    })
}

/// `(width, height, channels, HWC bytes)` of a PNG, read to its end.
fn decode_png(bytes: &[u8]) -> std::result::Result<(u32, u32, usize, Vec<u8>), String> {
    let mut dec =
        png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: MAX_BYTES });
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec.read_info().map_err(|e| e.to_string())?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "image too large".to_string())?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    // Up to IEND: a file cut after its pixel data is refused as well.
    reader.finish().map_err(|e| e.to_string())?;
    let c = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("palette not expanded".into()),
    };
    let row = info.width as usize * c;
    // Rows may be padded to `line_size`; keep exactly width × c per row.
    let mut px = Vec::with_capacity(row * info.height as usize);
    for y in 0..info.height as usize {
        px.extend_from_slice(&buf[y * info.line_size..y * info.line_size + row]);
    }
    Ok((info.width, info.height, c, px))
}

/// `(width, height, channels, HWC bytes)` of a JPEG, strictly.
fn decode_jpeg(bytes: &[u8]) -> std::result::Result<(u32, u32, usize, Vec<u8>), String> {
    use zune_core::colorspace::ColorSpace;
    let opts = zune_core::options::DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(1 << 16)
        .set_max_height(1 << 16);
    let mut dec =
        zune_jpeg::JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(bytes), opts);
    dec.decode_headers().map_err(|e| e.to_string())?;
    let gray = matches!(dec.input_colorspace(), Some(ColorSpace::Luma));
    let out = if gray {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    dec.set_options(dec.options().jpeg_set_out_colorspace(out));
    let px = dec.decode().map_err(|e| e.to_string())?;
    let (w, h) = dec.dimensions().ok_or("no dimensions")?;
    Ok((w as u32, h as u32, if gray { 1 } else { 3 }, px))
}

/// Removes the alpha channel (the last of `c`) if every pixel is opaque;
/// else refuses the image naming the first transparent pixel.
fn drop_opaque_alpha(px: Vec<u8>, c: usize, width: u32, what: &str) -> Result<Vec<u8>> {
    if let Some(p) = px.chunks_exact(c).position(|p| p[c - 1] != 255) {
        let (x, y) = (p % width as usize, p / width as usize);
        return Err(Error::Io(format!(
            "{what}: has transparent pixels (alpha {} at x {x}, y {y}); as the official \
             dataset tool, only RGB or grayscale images are taken: flatten the images onto \
             a background first",
            px[p * c + c - 1]
        )));
    }
    Ok(px
        .chunks_exact(c)
        .flat_map(|p| p[..c - 1].iter().copied())
        .collect())
}
