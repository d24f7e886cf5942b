//! Pixel conversion and bilinear resampling, shared by the policies'
//! preprocessing (frame → tensor) and the camera driver (decoded image →
//! the loop's frame slot), so both sample an image the same way.
//!
//! Resampling is bilinear with half-pixel centres and clamped edges
//! (OpenCV's `INTER_LINEAR` without anti-aliasing): a downscale by more
//! than 2× skips source pixels and can alias. [`Resampler::antialiased`]
//! widens the triangle filter by the downscale factor instead (PIL's
//! `BILINEAR`, `torch.nn.functional.interpolate(antialias=True)`): every
//! source pixel contributes. YUYV is BT.601 limited range
//! (Y 16..235, Cb/Cr 16..240), the encoding V4L2 cameras deliver. Nothing
//! here allocates after [`Resampler::new`].

use crate::frame::PixelFormat;

/// BT.601 limited-range YUV → RGB in 0..255 (clamped, not rounded).
pub fn yuv_to_rgb(y: f32, u: f32, v: f32) -> [f32; 3] {
    let c = 1.164 * (y - 16.0);
    let (d, e) = (u - 128.0, v - 128.0);
    [
        (c + 1.596 * e).clamp(0.0, 255.0),
        (c - 0.392 * d - 0.813 * e).clamp(0.0, 255.0),
        (c + 2.017 * d).clamp(0.0, 255.0),
    ]
}

/// Pixel (x, y) of a tightly packed image `w` pixels wide, as RGB in
/// 0..255. The caller keeps `(x, y)` inside the image.
pub fn pixel_rgb(data: &[u8], w: usize, fmt: PixelFormat, x: u32, y: u32) -> [f32; 3] {
    let (x, y) = (x as usize, y as usize);
    match fmt {
        PixelFormat::Rgb8 => {
            let i = (y * w + x) * 3;
            [f32::from(data[i]), f32::from(data[i + 1]), f32::from(data[i + 2])]
        }
        PixelFormat::Bgr8 => {
            let i = (y * w + x) * 3;
            [f32::from(data[i + 2]), f32::from(data[i + 1]), f32::from(data[i])]
        }
        PixelFormat::Mono8 => {
            let v = f32::from(data[y * w + x]);
            [v, v, v]
        }
        PixelFormat::Yuyv => {
            // Macro-pixel of two pixels: Y0 U Y1 V.
            let pair = (y * w + (x & !1)) * 2;
            let luma = f32::from(data[pair + (x & 1) * 2]);
            yuv_to_rgb(luma, f32::from(data[pair + 1]), f32::from(data[pair + 3]))
        }
    }
}

/// One output coordinate's two source neighbours and the weight of the second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Tap {
    i0: u32,
    i1: u32,
    w: f32,
}

/// Half-pixel-centre taps for resizing `len` source pixels starting at
/// `origin` onto `taps.len()` outputs.
fn fill_taps(taps: &mut [Tap], origin: u32, len: u32) {
    let n = taps.len().max(1) as f32;
    let scale = len as f32 / n;
    let max = len.saturating_sub(1) as f32;
    for (o, t) in taps.iter_mut().enumerate() {
        let s = ((o as f32 + 0.5) * scale - 0.5).clamp(0.0, max);
        let i0 = s.floor();
        t.i0 = origin + i0 as u32;
        t.i1 = origin + (i0 as u32 + 1).min(len.saturating_sub(1));
        t.w = s - i0;
    }
}

/// The anti-aliased filter's taps along one axis: output `o` is the
/// weighted sum of source pixels `first[o] ..` with
/// `weights[o * span .. (o + 1) * span]` (zeros past the filter's support).
#[derive(Debug, Clone)]
struct WideTaps {
    first: Vec<u32>,
    weights: Vec<f32>,
    span: usize,
}

impl WideTaps {
    /// Room for `n_out` outputs from sources of up to `max_len` pixels.
    fn new(n_out: usize, max_len: u32) -> Self {
        let scale = (max_len as f32 / n_out.max(1) as f32).max(1.0);
        // The support is ±scale around the centre: at most 2·scale + 2 pixels.
        let span = (2.0 * scale).ceil() as usize + 2;
        WideTaps { first: vec![0; n_out], weights: vec![0.0; n_out * span], span }
    }

    /// torch's `_upsample_bilinear2d_aa` weights (align_corners = false):
    /// centre `(o + 0.5)·scale`, support `max(scale, 1)`, triangle filter
    /// scaled by `1 / max(scale, 1)`, normalized to sum 1. A source longer
    /// than the one sized for is cut to the span (never read out of bounds).
    fn fill(&mut self, origin: u32, len: u32) {
        let n_out = self.first.len();
        let scale = len as f32 / n_out.max(1) as f32;
        let (support, inv) = if scale >= 1.0 { (scale, 1.0 / scale) } else { (1.0, 1.0) };
        for (o, (first, w)) in self.first.iter_mut().zip(self.weights.chunks_exact_mut(self.span)).enumerate() {
            let centre = scale * (o as f32 + 0.5);
            // `as` truncates toward zero, as the reference's int() does.
            let lo = ((centre - support + 0.5) as i64).max(0);
            let hi = ((centre + support + 0.5) as i64).min(i64::from(len));
            w.fill(0.0);
            let mut total = 0.0;
            for (k, wk) in w.iter_mut().enumerate().take(usize::try_from(hi - lo).unwrap_or(0)) {
                let x = ((lo + k as i64) as f32 - centre + 0.5) * inv;
                *wk = (1.0 - x.abs()).max(0.0);
                total += *wk;
            }
            if total > 0.0 {
                w.iter_mut().for_each(|wk| *wk /= total);
            }
            *first = origin + lo as u32;
        }
    }
}

/// How a [`Resampler`] samples.
#[derive(Debug, Clone)]
enum Taps {
    /// Two taps per axis (OpenCV `INTER_LINEAR`).
    Bilinear { xs: Vec<Tap>, ys: Vec<Tap> },
    /// The triangle filter widened by the downscale factor.
    Antialiased { xs: WideTaps, ys: WideTaps },
}

/// Bilinear resampling of a source rectangle onto a fixed output size.
///
/// The taps are computed for one source rectangle and recomputed in place
/// when it changes; the output size is fixed at construction.
#[derive(Debug, Clone)]
pub struct Resampler {
    taps: Taps,
    out: (usize, usize),
    rect: Option<(u32, u32, u32, u32)>,
}

impl Resampler {
    /// For outputs of `out_w × out_h` pixels (allocates the taps).
    pub fn new(out_w: usize, out_h: usize) -> Self {
        let taps = Taps::Bilinear { xs: vec![Tap::default(); out_w], ys: vec![Tap::default(); out_h] };
        Resampler { taps, out: (out_w, out_h), rect: None }
    }

    /// Anti-aliased, for outputs of `out_w × out_h` pixels from source
    /// rectangles of at most `max_w × max_h` (allocates the taps for that
    /// size; a larger source is cut to it). Matches
    /// `F.interpolate(mode="bilinear", antialias=True, align_corners=False)`
    /// on float pixels.
    pub fn antialiased(out_w: usize, out_h: usize, max_w: u32, max_h: u32) -> Self {
        let taps = Taps::Antialiased { xs: WideTaps::new(out_w, max_w), ys: WideTaps::new(out_h, max_h) };
        Resampler { taps, out: (out_w, out_h), rect: None }
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        self.out.0
    }

    /// Output height.
    pub fn out_height(&self) -> usize {
        self.out.1
    }

    /// Samples the source rectangle `(x, y, width, height)` from now on
    /// (non-empty, inside the image passed to [`each_pixel`](Self::each_pixel)).
    pub fn set_source(&mut self, rect: (u32, u32, u32, u32)) {
        if self.rect != Some(rect) {
            match &mut self.taps {
                Taps::Bilinear { xs, ys } => {
                    fill_taps(xs, rect.0, rect.2);
                    fill_taps(ys, rect.1, rect.3);
                }
                Taps::Antialiased { xs, ys } => {
                    xs.fill(rect.0, rect.2);
                    ys.fill(rect.1, rect.3);
                }
            }
            self.rect = Some(rect);
        }
    }

    /// Calls `f(index in the output plane, interpolated RGB in 0..255)` for
    /// every output pixel, row by row, sampling the image `data` (`w`
    /// pixels wide, of `fmt`, tightly packed) inside the source rectangle.
    pub fn each_pixel(&self, data: &[u8], w: usize, fmt: PixelFormat, mut f: impl FnMut(usize, [f32; 3])) {
        let (xs, ys) = match &self.taps {
            Taps::Bilinear { xs, ys } => (xs, ys),
            Taps::Antialiased { xs, ys } => return each_pixel_wide(xs, ys, data, w, fmt, f),
        };
        let out_w = xs.len();
        for (oy, ty) in ys.iter().enumerate() {
            for (ox, tx) in xs.iter().enumerate() {
                let p00 = pixel_rgb(data, w, fmt, tx.i0, ty.i0);
                let p01 = pixel_rgb(data, w, fmt, tx.i1, ty.i0);
                let p10 = pixel_rgb(data, w, fmt, tx.i0, ty.i1);
                let p11 = pixel_rgb(data, w, fmt, tx.i1, ty.i1);
                let mut rgb = [0.0f32; 3];
                for c in 0..3 {
                    let top = p00[c] + (p01[c] - p00[c]) * tx.w;
                    let bot = p10[c] + (p11[c] - p10[c]) * tx.w;
                    rgb[c] = top + (bot - top) * ty.w;
                }
                f(oy * out_w + ox, rgb);
            }
        }
    }

    /// Resamples the whole image `data` (`w × h` of `fmt`) into `out`,
    /// tightly packed RGB8 of the output size, rounding to nearest.
    /// Returns `false` (writing nothing) when a buffer's length does not
    /// match its geometry.
    pub fn resize_to_rgb8(&mut self, data: &[u8], w: u32, h: u32, fmt: PixelFormat, out: &mut [u8]) -> bool {
        let needed = w as usize * h as usize * fmt.bytes_per_pixel();
        if w == 0
            || h == 0
            || data.len() != needed
            || (fmt == PixelFormat::Yuyv && w % 2 != 0)
            || out.len() != self.out.0 * self.out.1 * 3
        {
            return false;
        }
        self.set_source((0, 0, w, h));
        self.each_pixel(data, w as usize, fmt, |i, rgb| {
            for c in 0..3 {
                out[i * 3 + c] = (rgb[c] + 0.5).clamp(0.0, 255.0) as u8;
            }
        });
        true
    }
}

/// [`Resampler::each_pixel`] with the anti-aliased taps: the 2-D weight is
/// the product of the axes' (the reference's two passes in exact
/// arithmetic), summed in f32 over the source pixels under the filter.
fn each_pixel_wide(
    xs: &WideTaps,
    ys: &WideTaps,
    data: &[u8],
    w: usize,
    fmt: PixelFormat,
    mut f: impl FnMut(usize, [f32; 3]),
) {
    let out_w = xs.first.len();
    let h = if w == 0 { 0 } else { data.len() / (w * fmt.bytes_per_pixel()).max(1) };
    let (max_x, max_y) = (w.saturating_sub(1) as u32, h.saturating_sub(1) as u32);
    let rows = ys.first.iter().zip(ys.weights.chunks_exact(ys.span));
    for (oy, (&y0, wy)) in rows.enumerate() {
        let cols = xs.first.iter().zip(xs.weights.chunks_exact(xs.span));
        for (ox, (&x0, wx)) in cols.enumerate() {
            let mut rgb = [0.0f32; 3];
            for (j, &wj) in wy.iter().enumerate().filter(|(_, w)| **w != 0.0) {
                let y = (y0 + j as u32).min(max_y);
                let mut row = [0.0f32; 3];
                for (i, &wi) in wx.iter().enumerate().filter(|(_, w)| **w != 0.0) {
                    let p = pixel_rgb(data, w, fmt, (x0 + i as u32).min(max_x), y);
                    for c in 0..3 {
                        row[c] += wi * p[c];
                    }
                }
                for c in 0..3 {
                    rgb[c] += wj * row[c];
                }
            }
            f(oy * out_w + ox, rgb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity_and_halving_averages() {
        let src: Vec<u8> = (0..4 * 2 * 3).map(|i| (i * 10) as u8).collect();
        let mut same = Resampler::new(4, 2);
        let mut out = vec![0u8; 4 * 2 * 3];
        assert!(same.resize_to_rgb8(&src, 4, 2, PixelFormat::Rgb8, &mut out));
        assert_eq!(out, src);
        // 4 → 2 columns, 2 → 1 row: each output is the mean of a 2×2 block.
        let mut half = Resampler::new(2, 1);
        let mut out = vec![0u8; 2 * 3];
        assert!(half.resize_to_rgb8(&src, 4, 2, PixelFormat::Rgb8, &mut out));
        let mean = |x0: usize, c: usize| {
            let at = |x: usize, y: usize| f32::from(src[(y * 4 + x) * 3 + c]);
            ((at(x0, 0) + at(x0 + 1, 0) + at(x0, 1) + at(x0 + 1, 1)) / 4.0 + 0.5) as u8
        };
        assert_eq!(out, vec![mean(0, 0), mean(0, 1), mean(0, 2), mean(2, 0), mean(2, 1), mean(2, 2)]);
        assert!(!half.resize_to_rgb8(&src[1..], 4, 2, PixelFormat::Rgb8, &mut out), "short source refused");
        assert!(!half.resize_to_rgb8(&src, 4, 2, PixelFormat::Rgb8, &mut out[1..]), "short output refused");
    }

    #[test]
    fn antialiasing_averages_every_source_pixel_and_upscales_like_bilinear() {
        // 6 → 2 columns (scale 3): output 0 is centred at 1.5 with support
        // ±3, so pixels 0..5 weigh 1 - |i - 1| / 3 = 2/3, 1, 2/3, 1/3, 0.
        let src: Vec<u8> = [0u8, 30, 60, 90, 120, 150].iter().flat_map(|&v| [v, v, v]).collect();
        let mut aa = Resampler::antialiased(2, 1, 6, 1);
        let mut out = vec![0u8; 2 * 3];
        assert!(aa.resize_to_rgb8(&src, 6, 1, PixelFormat::Rgb8, &mut out));
        let want =
            (2.0 / 3.0 * 0.0 + 30.0 + 2.0 / 3.0 * 60.0 + 1.0 / 3.0 * 90.0) / (2.0 / 3.0 + 1.0 + 2.0 / 3.0 + 1.0 / 3.0);
        assert_eq!(out[0], (want + 0.5) as u8, "{out:?}");
        let mut plain = Resampler::new(2, 1);
        let mut skipped = vec![0u8; 2 * 3];
        assert!(plain.resize_to_rgb8(&src, 6, 1, PixelFormat::Rgb8, &mut skipped));
        assert_ne!(out, skipped, "plain bilinear reads 2 of 3 pixels");
        // Upscaling: the support is one pixel, the taps are bilinear's.
        let floats = |r: &mut Resampler| {
            r.set_source((0, 0, 6, 1));
            let mut v = vec![0.0f32; 12 * 2];
            r.each_pixel(&src, 6, PixelFormat::Rgb8, |i, rgb| v[i] = rgb[0]);
            v
        };
        let (a, b) = (floats(&mut Resampler::antialiased(12, 2, 6, 1)), floats(&mut Resampler::new(12, 2)));
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-3), "{a:?} vs {b:?}");
    }

    #[test]
    fn yuv_extremes() {
        assert_eq!(yuv_to_rgb(16.0, 128.0, 128.0), [0.0, 0.0, 0.0]);
        let white = yuv_to_rgb(235.0, 128.0, 128.0);
        assert!(white.iter().all(|v| (*v - 255.0).abs() < 0.5), "{white:?}");
    }
}
