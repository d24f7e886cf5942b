//! Preprocessing of every pixel format and several sizes against a naive
//! reference written independently here (whole-image conversion to RGB in
//! f64, then textbook bilinear interpolation per output pixel).

use ganglion_core::{Frame, PixelFormat};
use ganglion_policies::manifest::{CameraConfig, Crop, DType, TensorSpec};
use ganglion_policies::preprocess::{ImageOut, ImagePreprocessor, PreprocessError};

fn frame_of(fmt: PixelFormat, w: u32, h: u32, seed: u32) -> Frame {
    let mut f = Frame::with_capacity(w, h);
    f.set_with(w, h, fmt, |b| {
        for (i, px) in b.iter_mut().enumerate() {
            *px = ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8;
        }
    })
    .expect("frame");
    f
}

/// The goldens' frame (`lerobot/make_letterbox_golden.py`): rgb8, pixel
/// (x, y, ch) = (29x + 53y + 71ch) mod 256.
fn golden_frame(w: u32, h: u32) -> Frame {
    let mut frame = Frame::with_capacity(w, h);
    frame
        .set_with(w, h, PixelFormat::Rgb8, |b| {
            for (i, px) in b.iter_mut().enumerate() {
                let (pixel, ch) = (i / 3, i % 3);
                let (x, y) = (pixel % w as usize, pixel / w as usize);
                *px = ((29 * x + 53 * y + 71 * ch) % 256) as u8;
            }
        })
        .expect("frame");
    frame
}

/// Independent reference: the frame as rows of RGB f64.
fn to_rgb(f: &Frame) -> Vec<[f64; 3]> {
    let d = f.data();
    let (w, h) = (f.width as usize, f.height as usize);
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let px = match f.format {
                PixelFormat::Rgb8 => {
                    let i = 3 * (y * w + x);
                    [d[i] as f64, d[i + 1] as f64, d[i + 2] as f64]
                }
                PixelFormat::Bgr8 => {
                    let i = 3 * (y * w + x);
                    [d[i + 2] as f64, d[i + 1] as f64, d[i] as f64]
                }
                PixelFormat::Mono8 => {
                    let v = d[y * w + x] as f64;
                    [v, v, v]
                }
                PixelFormat::Yuyv => {
                    // Macro-pixel of two pixels: Y0 U Y1 V.
                    let base = 4 * ((y * w + x) / 2);
                    let yy = if x % 2 == 0 { d[base] } else { d[base + 2] } as f64;
                    let (u, v) = (d[base + 1] as f64 - 128.0, d[base + 3] as f64 - 128.0);
                    let c = 1.164 * (yy - 16.0);
                    let cl = |v: f64| v.clamp(0.0, 255.0);
                    [cl(c + 1.596 * v), cl(c - 0.392 * u - 0.813 * v), cl(c + 2.017 * u)]
                }
            };
            out.push(px);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn reference(
    f: &Frame,
    crop: Option<Crop>,
    out_w: usize,
    out_h: usize,
    channels: usize,
    mean: &[f32],
    std: &[f32],
) -> Vec<f64> {
    let rgb = to_rgb(f);
    let w = f.width as usize;
    let (cx, cy, cw, ch) = crop.map_or((0, 0, f.width as usize, f.height as usize), |c| {
        (c.x as usize, c.y as usize, c.width as usize, c.height as usize)
    });
    let at = |x: usize, y: usize| rgb[(cy + y) * w + cx + x];
    let mut out = vec![0.0; channels * out_w * out_h];
    for oy in 0..out_h {
        for ox in 0..out_w {
            // Half-pixel centres, clamped at the edges.
            let sx = ((ox as f64 + 0.5) * cw as f64 / out_w as f64 - 0.5).max(0.0).min((cw - 1) as f64);
            let sy = ((oy as f64 + 0.5) * ch as f64 / out_h as f64 - 0.5).max(0.0).min((ch - 1) as f64);
            let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(cw - 1), (y0 + 1).min(ch - 1));
            let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
            let mut v = [0.0; 3];
            for (c, vc) in v.iter_mut().enumerate() {
                *vc = at(x0, y0)[c] * (1.0 - fx) * (1.0 - fy)
                    + at(x1, y0)[c] * fx * (1.0 - fy)
                    + at(x0, y1)[c] * (1.0 - fx) * fy
                    + at(x1, y1)[c] * fx * fy;
            }
            let vals = if channels == 1 { vec![0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2]] } else { v.to_vec() };
            for (c, val) in vals.iter().enumerate() {
                out[c * out_w * out_h + oy * out_w + ox] = (val / 255.0 - mean[c] as f64) / std[c] as f64;
            }
        }
    }
    out
}

fn camera(fmt: PixelFormat, w: u32, h: u32, out: [u32; 2], channels: usize, crop: Option<Crop>) -> CameraConfig {
    CameraConfig {
        name: "cam".into(),
        width: w,
        height: h,
        format: fmt,
        resize: out,
        mean: [0.4, 0.5, 0.6][..channels].to_vec(),
        std: [0.2, 0.25, 0.3][..channels].to_vec(),
        crop,
        letterbox: None,
        antialias: false,
        absent: false,
    }
}

/// Letterboxing (`[[cameras]] letterbox`) against LeRobot's own
/// resize-with-pad functions (`lerobot/make_letterbox_golden.py`): openpi's
/// centred variant and SmolVLA's bottom-right one, wide, tall, square and
/// upscaled frames, into square and non-square inputs.
#[test]
fn letterbox_matches_lerobots_resize_with_pad() {
    use ganglion_policies::manifest::Letterbox;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lerobot-letterbox/golden.json");
    let g: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("golden")).expect("json");
    let cases = g["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 10);
    for case in cases {
        let dim = |k: &str, i: usize| case[k][i].as_u64().expect("size") as u32;
        let (sw, sh, ow, oh) = (dim("source", 0), dim("source", 1), dim("input", 0), dim("input", 1));
        let mode = match case["mode"].as_str().expect("mode") {
            "centered" => Letterbox::Centered,
            _ => Letterbox::BottomRight,
        };
        let want: Vec<f64> =
            case["pixels"].as_array().expect("pixels").iter().map(|v| v.as_f64().expect("number")).collect();
        let frame = golden_frame(sw, sh);
        let cam = CameraConfig {
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
            letterbox: Some(mode),
            ..camera(PixelFormat::Rgb8, sw, sh, [ow, oh], 3, None)
        };
        let t = TensorSpec::fixed("image", vec![1, 3, oh as usize, ow as usize], DType::F32);
        let mut pre = ImagePreprocessor::new(&cam, &t);
        let mut out = vec![f32::NAN; pre.output_len()];
        pre.run(&frame, ImageOut::F32(&mut out)).expect("letterbox");
        assert_eq!(out.len(), want.len());
        let err = out.iter().zip(&want).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max);
        eprintln!("{mode:?} {sw}x{sh} -> {ow}x{oh}: max abs {err:.2e} vs LeRobot");
        assert!(err < 1e-5, "{mode:?} {sw}x{sh} -> {ow}x{oh}: {err:e}");
        // The u8 path pads with 0 too, and a frame of another size is refused.
        let t8 = TensorSpec { dtype: DType::U8, ..t };
        let mut pre8 = ImagePreprocessor::new(&cam, &t8);
        let mut out8 = vec![7u8; pre8.output_len()];
        pre8.run(&frame, ImageOut::U8(&mut out8)).expect("u8");
        assert!(out8.iter().zip(&want).all(|(a, b)| (f64::from(*a) - b * 255.0).abs() <= 0.51));
        let other = frame_of(PixelFormat::Rgb8, sw + 2, sh, 1);
        assert!(matches!(pre.run(&other, ImageOut::F32(&mut out)), Err(PreprocessError::SizeMismatch { .. })));
    }
}

/// The anti-aliased resize (`[[cameras]] antialias`) against
/// `F.interpolate(mode="bilinear", antialias=True)` (torchvision's `Resize`;
/// PIL's `BILINEAR` agrees within 1.2e-7, `lerobot/make_letterbox_golden.py`):
/// 4×/3×, 10×/5× and non-integer shrinks, identity and an upscale.
#[test]
fn antialiased_resize_matches_torch_interpolate_with_antialias() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lerobot-letterbox/antialias.json");
    let g: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("golden")).expect("json");
    let cases = g["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 5);
    for case in cases {
        let dim = |k: &str, i: usize| case[k][i].as_u64().expect("size") as u32;
        let (sw, sh, ow, oh) = (dim("source", 0), dim("source", 1), dim("input", 0), dim("input", 1));
        let want: Vec<f64> =
            case["pixels"].as_array().expect("pixels").iter().map(|v| v.as_f64().expect("number")).collect();
        let frame = golden_frame(sw, sh);
        let t = TensorSpec::fixed("image", vec![1, 3, oh as usize, ow as usize], DType::F32);
        let max_err = |antialias: bool| {
            let cam = CameraConfig {
                mean: vec![0.0; 3],
                std: vec![1.0; 3],
                antialias,
                ..camera(PixelFormat::Rgb8, sw, sh, [ow, oh], 3, None)
            };
            let mut pre = ImagePreprocessor::new(&cam, &t);
            let mut out = vec![f32::NAN; pre.output_len()];
            pre.run(&frame, ImageOut::F32(&mut out)).expect("resize");
            assert_eq!(out.len(), want.len());
            let other = frame_of(PixelFormat::Rgb8, sw + 2, sh, 1);
            let refused = matches!(pre.run(&other, ImageOut::F32(&mut out)), Err(PreprocessError::SizeMismatch { .. }));
            assert_eq!(refused, antialias, "antialiased taps are sized for the declared frame");
            out.iter().zip(&want).map(|(a, b)| (f64::from(*a) - b).abs()).fold(0.0, f64::max)
        };
        let (aa, plain) = (max_err(true), max_err(false));
        eprintln!("{sw}x{sh} -> {ow}x{oh}: max abs {aa:.2e} vs torch antialias (two-tap bilinear: {plain:.2e})");
        assert!(aa < 1e-5, "{sw}x{sh} -> {ow}x{oh}: {aa:e}");
        if sw >= 2 * ow {
            assert!(plain > 1e-2, "two-tap bilinear should miss pixels when shrinking {sw} -> {ow}: {plain:e}");
        }
    }
}

#[test]
fn every_format_and_size_matches_the_naive_reference() {
    let formats = [PixelFormat::Rgb8, PixelFormat::Bgr8, PixelFormat::Mono8, PixelFormat::Yuyv];
    // Down-, up- and non-uniform scaling, odd output sizes, identity.
    let sizes = [(64, 48, 16, 16), (10, 6, 16, 12), (33 * 2, 17, 7, 5), (16, 16, 16, 16), (2, 1, 3, 3)];
    for fmt in formats {
        for &(w, h, ow, oh) in &sizes {
            for channels in [1, 3] {
                let cam = camera(fmt, w, h, [ow, oh], channels, None);
                let t = TensorSpec::fixed("image", vec![1, channels, oh as usize, ow as usize], DType::F32);
                let mut pre = ImagePreprocessor::new(&cam, &t);
                let f = frame_of(fmt, w, h, w * 31 + h);
                let mut out = vec![0.0f32; pre.output_len()];
                pre.run(&f, ImageOut::F32(&mut out)).expect("preprocess");
                let want = reference(&f, None, ow as usize, oh as usize, channels, &cam.mean, &cam.std);
                let worst = out.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
                assert!(worst < 1e-3, "{fmt:?} {w}x{h}->{ow}x{oh} C={channels}: max error {worst}");
            }
        }
    }
}

#[test]
fn crop_and_u8_output_match_the_reference() {
    let crop = Some(Crop { x: 6, y: 2, width: 20, height: 14 });
    for fmt in [PixelFormat::Rgb8, PixelFormat::Yuyv] {
        let cam = camera(fmt, 32, 20, [10, 7], 3, crop);
        let f = frame_of(fmt, 32, 20, 7);
        // f32 path with crop.
        let t = TensorSpec::fixed("image", vec![1, 3, 7, 10], DType::F32);
        let mut pre = ImagePreprocessor::new(&cam, &t);
        let mut out = vec![0.0f32; pre.output_len()];
        pre.run(&f, ImageOut::F32(&mut out)).expect("preprocess");
        let want = reference(&f, crop, 10, 7, 3, &cam.mean, &cam.std);
        let worst = out.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-3, "{fmt:?} crop: {worst}");
        // u8 path: un-normalized rounded values.
        let t8 = TensorSpec { dtype: DType::U8, ..t };
        let mut pre8 = ImagePreprocessor::new(&cam, &t8);
        let mut out8 = vec![0u8; pre8.output_len()];
        pre8.run(&f, ImageOut::U8(&mut out8)).expect("preprocess u8");
        let unit = reference(&f, crop, 10, 7, 3, &[0.0; 3], &[1.0; 3]);
        for (a, b) in out8.iter().zip(&unit) {
            assert!((*a as f64 - b * 255.0).abs() <= 0.51, "{a} vs {}", b * 255.0);
        }
    }
}

#[test]
fn size_changes_between_frames_are_handled_and_bad_frames_rejected() {
    let cam = camera(PixelFormat::Rgb8, 32, 24, [8, 8], 3, None);
    let t = TensorSpec::fixed("image", vec![1, 3, 8, 8], DType::F32);
    let mut pre = ImagePreprocessor::new(&cam, &t);
    let mut out = vec![0.0f32; pre.output_len()];
    for (w, h) in [(32, 24), (16, 16), (32, 24)] {
        let f = frame_of(PixelFormat::Rgb8, w, h, 1);
        pre.run(&f, ImageOut::F32(&mut out)).expect("any size without crop");
        let want = reference(&f, None, 8, 8, 3, &cam.mean, &cam.std);
        assert!(out.iter().zip(&want).all(|(a, b)| (*a as f64 - b).abs() < 1e-3));
    }
    assert_eq!(pre.run(&Frame::with_capacity(4, 4), ImageOut::F32(&mut out)), Err(PreprocessError::EmptyFrame));
    let mut short = vec![0.0f32; 5];
    let f = frame_of(PixelFormat::Rgb8, 32, 24, 1);
    assert_eq!(pre.run(&f, ImageOut::F32(&mut short)), Err(PreprocessError::BadDestination));
    let cropped = camera(PixelFormat::Rgb8, 32, 24, [8, 8], 3, Some(Crop { x: 0, y: 0, width: 16, height: 16 }));
    let mut pre = ImagePreprocessor::new(&cropped, &t);
    let f = frame_of(PixelFormat::Rgb8, 16, 16, 1);
    assert!(matches!(pre.run(&f, ImageOut::F32(&mut out)), Err(PreprocessError::SizeMismatch { .. })));
}

/// LeRobot's normalization modes and π0.5's state bins, against LeRobot's
/// own `NormalizerProcessorStep` / `UnnormalizerProcessorStep` and its
/// `np.digitize` line (`lerobot/make_normalize_golden.py`): every mode on
/// joints inside and outside the range, one joint with a zero range (eps).
#[test]
fn normalization_modes_and_state_bins_match_lerobot() {
    use ganglion_policies::manifest::{JointsConfig, NormMode};
    use ganglion_policies::preprocess::Normalizer;
    use ganglion_policies::tokenizer::digitize;

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lerobot-normalize/golden.json");
    let g: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("golden")).expect("json");
    let v = |x: &serde_json::Value| -> Vec<f64> {
        x.as_array().expect("array").iter().map(|v| v.as_f64().expect("number")).collect()
    };
    let s = |key: &str| -> Vec<f32> { v(&g["stats"][key]).into_iter().map(|x| x as f32).collect() };
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
    let mut checked = [0usize; 4];
    for case in g["cases"].as_array().expect("cases") {
        let mode: NormMode = serde_json::from_value(case["mode"].clone()).expect("mode");
        let keys = ganglion_policies::manifest::FeatureStats::keys(mode);
        let pick = |k: &str| if keys.contains(&k) { s(k) } else { Vec::new() };
        let joints = JointsConfig {
            names: (0..6).map(|i| format!("j{i}")).collect(),
            normalization: mode,
            mean: pick("mean"),
            std: pick("std"),
            min: pick("min"),
            max: pick("max"),
            q01: pick("q01"),
            q99: pick("q99"),
            units: Vec::new(),
        };
        let norm = Normalizer::new(joints.stats());
        let x = v(&case["x"]);
        let mut out = vec![0.0f32; 6];
        norm.normalize(&x, &mut out);
        for (i, (a, b)) in out.iter().zip(v(&case["normalized"])).enumerate() {
            assert!(close(f64::from(*a), b), "{mode:?} normalize joint {i}: {a} vs LeRobot {b} ({case})");
        }
        let back_in: Vec<f32> = x.iter().map(|&x| x as f32).collect();
        let mut back = vec![0.0f64; 6];
        norm.denormalize(&back_in, &mut back);
        for (i, (a, b)) in back.iter().zip(v(&case["unnormalized"])).enumerate() {
            assert!(close(*a, b), "{mode:?} denormalize joint {i}: {a} vs LeRobot {b}");
        }
        for (i, (x, b)) in v(&case["normalized"]).iter().zip(v(&case["bins256"])).enumerate() {
            assert_eq!(digitize(*x as f32, 256), b as i64, "{mode:?} joint {i}: bin of {x}");
        }
        checked[keys.len() / 2 + usize::from(mode == NormMode::Quantiles) * 2] += 1;
    }
    assert!(checked.iter().filter(|&&c| c > 0).count() >= 3, "every mode has cases: {checked:?}");
    // np.digitize at and around the edges (NumPy 2, float32 inputs): a tiny
    // negative value is below the edge at 0 even though 1 + x rounds to 1.
    let numpy = [
        (-1e-20f32, 127),
        (-1e-9, 127),
        (0.0, 128),
        (1e-20, 128),
        (-1.0, 0),
        (-1.000_000_1, -1),
        (0.992_187_5, 255),
        (0.99, 254),
        (1.0, 255),
        (5.0, 255),
        (-5.0, -1),
    ];
    for (x, want) in numpy {
        assert_eq!(digitize(x, 256), want, "bin of {x:e}");
    }
}
