//! Pixel conversion and bilinear resampling, shared by the policies'
//! preprocessing (frame → tensor) and the camera driver (decoded image →
//! the loop's frame slot), so both sample an image the same way.
//!
//! Resampling is bilinear with half-pixel centres and clamped edges
//! (OpenCV's `INTER_LINEAR` without anti-aliasing): a downscale by more
//! than 2× skips source pixels and can alias. YUYV is BT.601 limited range
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

/// Bilinear resampling of a source rectangle onto a fixed output size.
///
/// The taps are computed for one source rectangle and recomputed in place
/// when it changes; the output size is fixed at construction.
#[derive(Debug, Clone)]
pub struct Resampler {
    xs: Vec<Tap>,
    ys: Vec<Tap>,
    rect: Option<(u32, u32, u32, u32)>,
}

impl Resampler {
    /// For outputs of `out_w × out_h` pixels (allocates the taps).
    pub fn new(out_w: usize, out_h: usize) -> Self {
        Resampler { xs: vec![Tap::default(); out_w], ys: vec![Tap::default(); out_h], rect: None }
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        self.xs.len()
    }

    /// Output height.
    pub fn out_height(&self) -> usize {
        self.ys.len()
    }

    /// Samples the source rectangle `(x, y, width, height)` from now on
    /// (non-empty, inside the image passed to [`each_pixel`](Self::each_pixel)).
    pub fn set_source(&mut self, rect: (u32, u32, u32, u32)) {
        if self.rect != Some(rect) {
            fill_taps(&mut self.xs, rect.0, rect.2);
            fill_taps(&mut self.ys, rect.1, rect.3);
            self.rect = Some(rect);
        }
    }

    /// Calls `f(index in the output plane, interpolated RGB in 0..255)` for
    /// every output pixel, row by row, sampling the image `data` (`w`
    /// pixels wide, of `fmt`, tightly packed) inside the source rectangle.
    pub fn each_pixel(&self, data: &[u8], w: usize, fmt: PixelFormat, mut f: impl FnMut(usize, [f32; 3])) {
        let out_w = self.xs.len();
        for (oy, ty) in self.ys.iter().enumerate() {
            for (ox, tx) in self.xs.iter().enumerate() {
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
            || out.len() != self.xs.len() * self.ys.len() * 3
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
    fn yuv_extremes() {
        assert_eq!(yuv_to_rgb(16.0, 128.0, 128.0), [0.0, 0.0, 0.0]);
        let white = yuv_to_rgb(235.0, 128.0, 128.0);
        assert!(white.iter().all(|v| (*v - 255.0).abs() < 0.5), "{white:?}");
    }
}
