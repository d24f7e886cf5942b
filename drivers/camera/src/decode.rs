//! Captured buffers → RGB8 frames of the loop's geometry, on the camera
//! thread.
//!
//! - **MJPEG** through `zune-jpeg` (pure Rust, decodes on the calling
//!   thread into a buffer we own). Many UVC cameras send frames without
//!   Huffman tables (MJPEG's fixed tables are implied); such a frame gets
//!   the standard tables of ITU-T T.81 Annex K.3 inserted before its scan,
//!   as `ffmpeg`'s `mjpeg2jpeg` does, so any frame decodes as a JPEG.
//! - **YUYV** (4:2:2, Y0 U Y1 V) as V4L2 cameras deliver it: BT.601
//!   limited range (`ganglion_core::image::yuv_to_rgb`, the conversion the
//!   policies' preprocessing uses too), rounded to nearest.
//! - **Resize** into the slot's size with `ganglion_core::image::Resampler`
//!   (bilinear, half-pixel centres: the policies' own resampling) when the
//!   capture size differs; the aspect ratio follows the slot's geometry.
//!
//! Allocation: every buffer here is sized once, in [`Decoder::new`]; YUYV
//! capture then allocates nothing per frame. `zune-jpeg` allocates its
//! per-frame working memory (component planes, about the size of the
//! image) inside each decode: its API does not take those buffers from
//! the caller. That happens on the camera thread, never the control thread.

use ganglion_core::image::{yuv_to_rgb, Resampler};
use ganglion_core::{Frame, PixelFormat};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::error::DecodeError;

/// The pixel format asked of the camera (`format` in the profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormat {
    /// Motion JPEG (`MJPG`): what USB cameras offer at full rate above 640×480.
    #[default]
    Mjpeg,
    /// YUYV 4:2:2 (`YUYV`), uncompressed.
    Yuyv,
}

impl CaptureFormat {
    /// The V4L2 fourcc codes that carry this format (MJPEG: `MJPG`, `JPEG`).
    pub fn fourccs(self) -> &'static [u32] {
        match self {
            CaptureFormat::Mjpeg => &[crate::abi::V4L2_PIX_FMT_MJPEG, crate::abi::V4L2_PIX_FMT_JPEG],
            CaptureFormat::Yuyv => &[crate::abi::V4L2_PIX_FMT_YUYV],
        }
    }

    /// How errors and reports name it.
    pub fn name(self) -> &'static str {
        match self {
            CaptureFormat::Mjpeg => "MJPEG",
            CaptureFormat::Yuyv => "YUYV",
        }
    }
}

/// What the camera sends, as negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureGeometry {
    /// The pixel format.
    pub format: CaptureFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row (YUYV; at least `2 · width`); 0 for MJPEG.
    pub bytes_per_line: u32,
    /// The largest buffer the driver fills (`sizeimage`).
    pub max_bytes: usize,
}

/// Turns one camera's buffers into RGB8 frames of one size.
#[derive(Debug)]
pub struct Decoder {
    capture: CaptureGeometry,
    out_w: u32,
    out_h: u32,
    /// The decoded image at capture size (RGB8), when it must be resized
    /// (MJPEG always decodes here first).
    rgb: Vec<u8>,
    /// An MJPEG frame with the standard Huffman tables inserted.
    jpeg: Vec<u8>,
    /// The standard tables' DHT segment, built once.
    dht: Vec<u8>,
    resampler: Resampler,
}

/// The DHT segment of the standard tables (ITU-T T.81 Annex K.3): luminance
/// and chrominance, DC and AC, in one segment (418 bytes).
fn standard_dht() -> Vec<u8> {
    const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
    const AC_LUMA_VALUES: [u8; 162] = [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71,
        0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72,
        0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37,
        0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
        0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3,
        0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
        0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
        0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ];
    const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
    const AC_CHROMA_VALUES: [u8; 162] = [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22,
        0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1,
        0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36,
        0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,
        0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a,
        0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba,
        0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
        0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ];
    let tables: [(u8, &[u8; 16], &[u8]); 4] = [
        (0x00, &DC_LUMA_BITS, &DC_VALUES),
        (0x10, &AC_LUMA_BITS, &AC_LUMA_VALUES),
        (0x01, &DC_CHROMA_BITS, &DC_VALUES),
        (0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALUES),
    ];
    let len: usize = 2 + tables.iter().map(|(_, b, v)| 1 + b.len() + v.len()).sum::<usize>();
    let mut seg = Vec::with_capacity(2 + len);
    seg.extend_from_slice(&[0xff, 0xc4, (len >> 8) as u8, len as u8]);
    for (class_id, bits, values) in tables {
        seg.push(class_id);
        seg.extend_from_slice(bits);
        seg.extend_from_slice(values);
    }
    seg
}

/// Where the first scan (SOS) starts, and whether a DHT segment comes
/// before it; `None` when the markers before the scan do not parse (the
/// decoder then reports the frame as it is).
fn scan_start(data: &[u8]) -> Option<(usize, bool)> {
    if data.len() < 4 || data[0] != 0xff || data[1] != 0xd8 {
        return None;
    }
    let mut pos = 2;
    let mut has_dht = false;
    loop {
        if *data.get(pos)? != 0xff {
            return None;
        }
        // Fill bytes: any number of 0xFF before the marker code.
        while *data.get(pos + 1)? == 0xff {
            pos += 1;
        }
        let marker = *data.get(pos + 1)?;
        match marker {
            0xda => return Some((pos, has_dht)),
            0xc4 => has_dht = true,
            // Standalone markers carry no length.
            0x01 | 0xd0..=0xd7 => {
                pos += 2;
                continue;
            }
            _ => {}
        }
        let len = usize::from(*data.get(pos + 2)?) << 8 | usize::from(*data.get(pos + 3)?);
        if len < 2 {
            return None;
        }
        pos += 2 + len;
    }
}

impl Decoder {
    /// For buffers of `capture` geometry, producing RGB8 frames of
    /// `out_w × out_h`; sizes every buffer the steady state uses.
    pub fn new(capture: CaptureGeometry, out_w: u32, out_h: u32) -> Self {
        let rgb_len = capture.width as usize * capture.height as usize * 3;
        let jpeg_cap = match capture.format {
            CaptureFormat::Mjpeg => capture.max_bytes + 512,
            CaptureFormat::Yuyv => 0,
        };
        Decoder {
            capture,
            out_w,
            out_h,
            rgb: vec![0; rgb_len],
            jpeg: Vec::with_capacity(jpeg_cap),
            dht: standard_dht(),
            resampler: Resampler::new(out_w as usize, out_h as usize),
        }
    }

    /// The capture geometry.
    pub fn capture(&self) -> CaptureGeometry {
        self.capture
    }

    /// Decodes `data` (one buffer) into `out` as RGB8 of the output size.
    /// On an error `out` may hold a partial image: do not publish it.
    pub fn decode(&mut self, data: &[u8], out: &mut Frame) -> Result<(), DecodeError> {
        let (cw, ch) = (self.capture.width, self.capture.height);
        let same_size = (cw, ch) == (self.out_w, self.out_h);
        match self.capture.format {
            CaptureFormat::Mjpeg => {
                self.decode_jpeg(data)?;
                self.emit(out)
            }
            CaptureFormat::Yuyv => {
                let stride = (self.capture.bytes_per_line as usize).max(cw as usize * 2);
                let needed = stride * (ch as usize).saturating_sub(1) + cw as usize * 2;
                if data.len() < needed {
                    return Err(DecodeError::Short { len: data.len(), needed });
                }
                if same_size {
                    // Straight into the slot's buffer: no intermediate copy.
                    return out
                        .set_with(cw, ch, PixelFormat::Rgb8, |buf| yuyv_to_rgb8(data, cw, ch, stride, buf))
                        .map_err(|e| DecodeError::Geometry { what: e.to_string(), expected: self.expected() });
                }
                yuyv_to_rgb8(data, cw, ch, stride, &mut self.rgb);
                self.emit(out)
            }
        }
    }

    fn expected(&self) -> String {
        format!("{}x{} RGB", self.capture.width, self.capture.height)
    }

    /// `self.rgb` (capture size) → `out` (output size).
    fn emit(&mut self, out: &mut Frame) -> Result<(), DecodeError> {
        let (cw, ch) = (self.capture.width, self.capture.height);
        let (ow, oh) = (self.out_w, self.out_h);
        let rgb = &self.rgb;
        let resampler = &mut self.resampler;
        let mut resized = true;
        out.set_with(ow, oh, PixelFormat::Rgb8, |buf| {
            if (cw, ch) == (ow, oh) {
                buf.copy_from_slice(rgb);
            } else {
                resized = resampler.resize_to_rgb8(rgb, cw, ch, PixelFormat::Rgb8, buf);
            }
        })
        .map_err(|e| DecodeError::Geometry { what: e.to_string(), expected: format!("{ow}x{oh} RGB") })?;
        if resized {
            Ok(())
        } else {
            Err(DecodeError::Geometry { what: "a buffer of another size".into(), expected: format!("{cw}x{ch} RGB") })
        }
    }

    /// MJPEG → `self.rgb` at capture size.
    fn decode_jpeg(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        let bytes: &[u8] = match scan_start(data) {
            Some((sos, false)) => {
                // Allocated once: `jpeg` was sized for the largest frame
                // plus the tables; a larger frame grows it once.
                self.jpeg.clear();
                self.jpeg.extend_from_slice(&data[..sos]);
                self.jpeg.extend_from_slice(&self.dht);
                self.jpeg.extend_from_slice(&data[sos..]);
                &self.jpeg
            }
            _ => data,
        };
        let (cw, ch) = (self.capture.width as usize, self.capture.height as usize);
        let options = DecoderOptions::default()
            .jpeg_set_out_colorspace(ColorSpace::RGB)
            // Bounded (a corrupt header cannot ask for gigabytes), loose
            // enough that a frame of the wrong size reaches the check below.
            .set_max_width(8192)
            .set_max_height(8192)
            .set_strict_mode(false);
        let mut dec = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
        dec.decode_headers().map_err(|e| DecodeError::Jpeg(format!("{e:?}")))?;
        let (w, h) = dec.info().map_or((0, 0), |i| (usize::from(i.width), usize::from(i.height)));
        if (w, h) != (cw, ch) {
            return Err(DecodeError::Geometry { what: format!("{w}x{h}"), expected: self.expected() });
        }
        dec.decode_into(&mut self.rgb).map_err(|e| DecodeError::Jpeg(format!("{e:?}")))?;
        Ok(())
    }
}

/// YUYV rows (`stride` bytes apart) → tightly packed RGB8, BT.601 limited
/// range, rounded to nearest. `out` holds `w × h × 3` bytes; `data` holds
/// the rows (checked by the caller).
pub fn yuyv_to_rgb8(data: &[u8], w: u32, h: u32, stride: usize, out: &mut [u8]) {
    let (w, h) = (w as usize, h as usize);
    let round = |v: f32| (v + 0.5) as u8;
    for y in 0..h {
        let row = &data[y * stride..y * stride + w * 2];
        let dst = &mut out[y * w * 3..(y + 1) * w * 3];
        for (pair, px) in row.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
            let (u, v) = (f32::from(pair[1]), f32::from(pair[3]));
            let a = yuv_to_rgb(f32::from(pair[0]), u, v);
            let b = yuv_to_rgb(f32::from(pair[2]), u, v);
            px[0] = round(a[0]);
            px[1] = round(a[1]);
            px[2] = round(a[2]);
            px[3] = round(b[0]);
            px[4] = round(b[1]);
            px[5] = round(b[2]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_tables_segment_is_well_formed() {
        let seg = standard_dht();
        assert_eq!(seg.len(), 420);
        assert_eq!(&seg[..4], &[0xff, 0xc4, 0x01, 0xa2]);
        // Each table's value count equals the sum of its code-length counts.
        let mut pos = 4;
        for _ in 0..4 {
            let counts: usize = seg[pos + 1..pos + 17].iter().map(|&c| usize::from(c)).sum();
            pos += 17 + counts;
        }
        assert_eq!(pos, seg.len());
    }

    #[test]
    fn scan_start_finds_sos_and_tables() {
        // SOI, APP0 (len 4), DHT (len 2), SOS.
        let with = [0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc4, 0, 2, 0xff, 0xda, 0, 2];
        assert_eq!(scan_start(&with), Some((12, true)));
        let without = [0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xff, 0xda, 0, 2];
        assert_eq!(scan_start(&without), Some((9, false)));
        assert_eq!(scan_start(&[0xff, 0xd8, 0x00]), None);
        assert_eq!(scan_start(&[1, 2, 3, 4]), None);
    }

    #[test]
    fn yuyv_short_buffer_is_refused_naming_sizes() {
        let g = CaptureGeometry { format: CaptureFormat::Yuyv, width: 4, height: 2, bytes_per_line: 8, max_bytes: 16 };
        let mut d = Decoder::new(g, 4, 2);
        let mut f = Frame::with_capacity(4, 2);
        assert_eq!(d.decode(&[0; 15], &mut f), Err(DecodeError::Short { len: 15, needed: 16 }));
        d.decode(&[16, 128, 16, 128].repeat(4), &mut f).expect("black frame");
        assert_eq!(f.data(), &[0; 24]);
    }
}
