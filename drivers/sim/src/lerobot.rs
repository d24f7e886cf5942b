//! A LeRobotDataset v3 writer (LeRobot's on-disk format, `codebase_version`
//! "v3.0", checked against LeRobot 0.6.1): what `ganglion sim record
//! --format lerobot` writes. Format, scope and the reference files LeRobot
//! itself wrote: `drivers/sim/lerobot/README.md`.
//!
//! Layout written (one data file, one episodes file):
//!
//! ```text
//! meta/info.json                               features, fps, totals, paths
//! meta/stats.json                              min/max/mean/std/count/q01..q99 per feature
//! meta/tasks.parquet                           task_index, task (pandas index "task")
//! meta/episodes/chunk-000/file-000.parquet     one row per episode
//! data/chunk-000/file-000.parquet              one row per frame
//! ```
//!
//! Camera frames are LeRobot's `image` dtype: PNG bytes in the parquet
//! (`struct<bytes: binary, path: string>`), the layout LeRobot writes with
//! `use_videos=False`; MP4 video features are not written. Parquet is
//! written with the `parquet` crate's low-level column API (no arrow),
//! uncompressed pages (the PNGs are deflated already). The dataset is
//! written into a temporary directory beside the target and renamed at the
//! end: an existing target is refused and a failure leaves nothing behind.
//!
//! Nothing here runs in the control loop.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{ConvertedType, LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{ByteArray, ByteArrayType, FloatType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};
use serde_json::{json, Map, Value};

/// The on-disk format version LeRobot 0.6.1 reads and writes.
pub const CODEBASE_VERSION: &str = "v3.0";
/// LeRobot's `DEFAULT_CHUNK_SIZE` (files per chunk directory).
const CHUNKS_SIZE: u64 = 1000;
/// LeRobot's `DEFAULT_DATA_FILE_SIZE_IN_MB`.
const DATA_FILES_SIZE_IN_MB: u64 = 100;
/// LeRobot's `DEFAULT_VIDEO_FILE_SIZE_IN_MB`.
const VIDEO_FILES_SIZE_IN_MB: u64 = 200;
/// The per-frame features LeRobot adds itself.
const RESERVED: [&str; 5] = ["timestamp", "frame_index", "episode_index", "index", "task_index"];
/// LeRobot's `DEFAULT_DATA_PATH`.
const DATA_PATH: &str = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";
/// Quantiles LeRobot 0.6.1 stores in `stats.json` (`DEFAULT_QUANTILES`).
const QUANTILES: [(f64, &str); 5] = [(0.01, "q01"), (0.10, "q10"), (0.50, "q50"), (0.90, "q90"), (0.99, "q99")];
/// The data file, the only one written (chunk 0, file 0).
pub const DATA_FILE: &str = "data/chunk-000/file-000.parquet";
/// The episodes file, the only one written.
pub const EPISODES_FILE: &str = "meta/episodes/chunk-000/file-000.parquet";

/// One camera stored as an `image` feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    /// Feature key, e.g. `observation.images.front`.
    pub key: String,
    /// Frame width (px).
    pub width: usize,
    /// Frame height (px).
    pub height: usize,
    /// rgb8 frames, row-major, `frames × height × width × 3` bytes.
    pub rgb: Vec<u8>,
}

/// A whole dataset in memory, frame-major.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    /// Frames per second (`info.json` `fps`; LeRobot wants an integer).
    pub fps: u32,
    /// `robot_type` in `info.json`.
    pub robot_type: String,
    /// Names of the state and action dimensions (joint names, in order).
    pub joint_names: Vec<String>,
    /// `observation.state`, `frames × joints`.
    pub state: Vec<f32>,
    /// `action`, `frames × joints`.
    pub action: Vec<f32>,
    /// Cameras (may be empty).
    pub cameras: Vec<Camera>,
    /// Episode of each frame; episodes are contiguous and numbered 0, 1, …
    pub episode: Vec<i64>,
    /// Text of each frame's task.
    pub task: Vec<String>,
    /// Per-frame integer features of our own beyond LeRobot's (e.g. which
    /// controller drove the frame), written after `action`.
    pub extra: Vec<IntFeature>,
}

/// A per-frame integer feature (`int64`, shape `[1]`): LeRobot loads it as
/// one more column, which a training script can filter on.
#[derive(Debug, Clone, PartialEq)]
pub struct IntFeature {
    /// Feature key, e.g. `ganglion.fallback`.
    pub key: String,
    /// One value per frame.
    pub values: Vec<i64>,
}

/// Why writing failed.
#[derive(Debug, thiserror::Error)]
pub enum LeRobotError {
    /// The output directory exists already.
    #[error("{0}: exists; LeRobot datasets are written into a new directory")]
    Exists(PathBuf),
    /// The content is inconsistent.
    #[error("dataset `{key}`: expected {expected}")]
    Invalid {
        /// What is wrong.
        key: String,
        /// What was expected.
        expected: String,
    },
    /// A file could not be written.
    #[error("writing {path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

fn invalid(key: impl Into<String>, expected: impl Into<String>) -> LeRobotError {
    LeRobotError::Invalid { key: key.into(), expected: expected.into() }
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> LeRobotError {
    LeRobotError::Write { path: path.to_path_buf(), message: e.to_string() }
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// Episodes.
    pub episodes: usize,
    /// Frames.
    pub frames: usize,
    /// Distinct tasks.
    pub tasks: usize,
    /// Bytes of all files.
    pub bytes: u64,
}

impl Dataset {
    fn frames(&self) -> usize {
        self.episode.len()
    }

    fn check(&self) -> Result<(), LeRobotError> {
        let t = self.frames();
        let n = self.joint_names.len();
        if self.fps == 0 {
            return Err(invalid("fps", "a positive whole number of frames per second"));
        }
        if t == 0 || n == 0 {
            return Err(invalid("frames", "at least one frame and one joint"));
        }
        if self.state.len() != t * n {
            return Err(invalid("observation.state", format!("{t} frames × {n} joints values")));
        }
        if self.action.len() != t * n {
            return Err(invalid("action", format!("{t} frames × {n} joints values")));
        }
        if self.task.len() != t {
            return Err(invalid("task", format!("one task per frame ({t})")));
        }
        for x in &self.extra {
            if x.values.len() != t {
                return Err(invalid(&x.key, format!("one value per frame ({t})")));
            }
            if RESERVED.contains(&x.key.as_str()) || x.key == "observation.state" || x.key == "action" {
                return Err(invalid(&x.key, "a key that is not one of LeRobot's own features"));
            }
        }
        for c in &self.cameras {
            if c.width == 0 || c.height == 0 || c.rgb.len() != t * c.width * c.height * 3 {
                return Err(invalid(&c.key, format!("{t} rgb8 frames of a non-empty size")));
            }
        }
        let mut expected = 0i64;
        for (i, &e) in self.episode.iter().enumerate() {
            if e == expected + 1 && i > 0 {
                expected = e;
            }
            if e != expected {
                return Err(invalid(
                    "episode_index",
                    format!("contiguous episodes numbered from 0 (frame {i} has {e}, expected {expected})"),
                ));
            }
        }
        Ok(())
    }

    /// `(first frame, end frame)` of each episode.
    fn episode_ranges(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = 0;
        for i in 1..=self.frames() {
            if i == self.frames() || self.episode[i] != self.episode[start] {
                out.push((start, i));
                start = i;
            }
        }
        out
    }
}

/// Writes `ds` as a LeRobotDataset v3 at `out`, which must not exist.
pub fn write(out: &Path, ds: &Dataset) -> Result<Written, LeRobotError> {
    ds.check()?;
    if out.exists() {
        return Err(LeRobotError::Exists(out.to_path_buf()));
    }
    let name = out.file_name().ok_or_else(|| invalid("out", format!("a directory name, not {}", out.display())))?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| write_err(parent, e))?;
    let tmp = parent.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| write_err(&tmp, e))?;
    }
    let result = write_into(&tmp, ds).and_then(|w| {
        if out.exists() {
            return Err(LeRobotError::Exists(out.to_path_buf()));
        }
        std::fs::rename(&tmp, out).map_err(|e| write_err(out, e))?;
        Ok(w)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn write_into(root: &Path, ds: &Dataset) -> Result<Written, LeRobotError> {
    for d in ["meta/episodes/chunk-000", "data/chunk-000"] {
        let p = root.join(d);
        std::fs::create_dir_all(&p).map_err(|e| write_err(&p, e))?;
    }
    let t = ds.frames();
    let n = ds.joint_names.len();
    let ranges = ds.episode_ranges();

    // Tasks, numbered in order of first appearance (as LeRobot does).
    let mut tasks: Vec<&str> = Vec::new();
    let mut task_index = Vec::with_capacity(t);
    for task in &ds.task {
        let i = match tasks.iter().position(|x| *x == task.as_str()) {
            Some(i) => i,
            None => {
                tasks.push(task);
                tasks.len() - 1
            }
        };
        task_index.push(i as i64);
    }
    let mut frame_index = Vec::with_capacity(t);
    let mut timestamp = Vec::with_capacity(t);
    for &(a, b) in &ranges {
        for k in 0..(b - a) {
            frame_index.push(k as i64);
            timestamp.push((k as f64 / f64::from(ds.fps)) as f32);
        }
    }
    let index: Vec<i64> = (0..t as i64).collect();

    // Data.
    let mut pngs = Vec::with_capacity(ds.cameras.len());
    for c in &ds.cameras {
        let frame = c.width * c.height * 3;
        let encoded = c
            .rgb
            .chunks_exact(frame)
            .map(|f| png_rgb8(c.width, c.height, f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| write_err(&root.join(DATA_FILE), format!("PNG of `{}`: {e}", c.key)))?;
        pngs.push(encoded);
    }
    let image_paths: Vec<String> = frame_index.iter().map(|k| format!("frame-{k:06}.png")).collect();
    let mut cols = vec![Col::F32List("observation.state", &ds.state, n)];
    for (c, p) in ds.cameras.iter().zip(&pngs) {
        cols.push(Col::Image(&c.key, p, &image_paths));
    }
    cols.push(Col::F32List("action", &ds.action, n));
    for x in &ds.extra {
        cols.push(Col::I64(&x.key, &x.values));
    }
    cols.push(Col::F32("timestamp", &timestamp));
    cols.push(Col::I64("frame_index", &frame_index));
    cols.push(Col::I64("episode_index", &ds.episode));
    cols.push(Col::I64("index", &index));
    cols.push(Col::I64("task_index", &task_index));
    let features = features(ds);
    let hf = serde_json::to_string(&hf_features(ds)).map_err(|e| write_err(&root.join(DATA_FILE), e))?;
    write_parquet(&root.join(DATA_FILE), &cols, vec![KeyValue::new("huggingface".into(), hf)])?;

    // Tasks.
    let tis: Vec<i64> = (0..tasks.len() as i64).collect();
    let task_strings: Vec<String> = tasks.iter().map(|s| s.to_string()).collect();
    write_parquet(
        &root.join("meta/tasks.parquet"),
        &[Col::I64("task_index", &tis), Col::Str("task", &task_strings)],
        vec![KeyValue::new("pandas".into(), pandas_tasks_metadata().to_string())],
    )?;

    // Episodes.
    let e = ranges.len();
    let ep_index: Vec<i64> = (0..e as i64).collect();
    let ep_tasks: Vec<Vec<String>> = ranges
        .iter()
        .map(|&(a, b)| {
            let mut v: Vec<String> = Vec::new();
            for task in &ds.task[a..b] {
                if !v.contains(task) {
                    v.push(task.clone());
                }
            }
            v
        })
        .collect();
    let length: Vec<i64> = ranges.iter().map(|&(a, b)| (b - a) as i64).collect();
    let from: Vec<i64> = ranges.iter().map(|&(a, _)| a as i64).collect();
    let to: Vec<i64> = ranges.iter().map(|&(_, b)| b as i64).collect();
    let zeros = vec![0i64; e];
    write_parquet(
        &root.join(EPISODES_FILE),
        &[
            Col::I64("episode_index", &ep_index),
            Col::StrList("tasks", &ep_tasks),
            Col::I64("length", &length),
            Col::I64("data/chunk_index", &zeros),
            Col::I64("data/file_index", &zeros),
            Col::I64("dataset_from_index", &from),
            Col::I64("dataset_to_index", &to),
            Col::I64("meta/episodes/chunk_index", &zeros),
            Col::I64("meta/episodes/file_index", &zeros),
        ],
        Vec::new(),
    )?;

    // Stats over all frames.
    let mut stats = Map::new();
    stats.insert("observation.state".into(), vector_stats(&ds.state, n));
    for c in &ds.cameras {
        stats.insert(c.key.clone(), image_stats(&c.rgb, t));
    }
    stats.insert("action".into(), vector_stats(&ds.action, n));
    let as_f64 = |v: &[i64]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let ts: Vec<f64> = timestamp.iter().map(|&x| f64::from(x)).collect();
    for x in &ds.extra {
        stats.insert(x.key.clone(), vector_stats(&as_f64(&x.values), 1));
    }
    stats.insert("timestamp".into(), vector_stats(&ts, 1));
    stats.insert("frame_index".into(), vector_stats(&as_f64(&frame_index), 1));
    stats.insert("episode_index".into(), vector_stats(&as_f64(&ds.episode), 1));
    stats.insert("index".into(), vector_stats(&as_f64(&index), 1));
    stats.insert("task_index".into(), vector_stats(&as_f64(&task_index), 1));
    write_json(&root.join("meta/stats.json"), &Value::Object(stats))?;

    let leaf = |v: Value| Ordered::Leaf(v);
    let info = Ordered::Object(vec![
        ("codebase_version".into(), leaf(json!(CODEBASE_VERSION))),
        ("fps".into(), leaf(json!(ds.fps))),
        ("features".into(), features),
        ("total_episodes".into(), leaf(json!(e))),
        ("total_frames".into(), leaf(json!(t))),
        ("total_tasks".into(), leaf(json!(tasks.len()))),
        ("chunks_size".into(), leaf(json!(CHUNKS_SIZE))),
        ("data_files_size_in_mb".into(), leaf(json!(DATA_FILES_SIZE_IN_MB))),
        ("video_files_size_in_mb".into(), leaf(json!(VIDEO_FILES_SIZE_IN_MB))),
        ("data_path".into(), leaf(json!(DATA_PATH))),
        ("video_path".into(), leaf(Value::Null)),
        ("robot_type".into(), leaf(json!(ds.robot_type))),
        ("splits".into(), leaf(json!({"train": format!("0:{e}")}))),
    ]);
    write_json(&root.join("meta/info.json"), &info)?;

    let mut bytes = 0;
    for f in [DATA_FILE, EPISODES_FILE, "meta/tasks.parquet", "meta/stats.json", "meta/info.json"] {
        bytes += std::fs::metadata(root.join(f)).map(|m| m.len()).unwrap_or(0);
    }
    Ok(Written { episodes: e, frames: t, tasks: tasks.len(), bytes })
}

/// `info.json` `features`, in LeRobot's order: the recorded features, then
/// timestamp, frame_index, episode_index, index, task_index.
fn features(ds: &Dataset) -> Ordered {
    let mut f = Vec::new();
    let names = Value::from(ds.joint_names.clone());
    let n = ds.joint_names.len();
    let leaf = |v: Value| Ordered::Leaf(v);
    f.push(("observation.state".into(), leaf(json!({"dtype": "float32", "shape": [n], "names": names}))));
    for c in &ds.cameras {
        f.push((
            c.key.clone(),
            leaf(json!({"dtype": "image", "shape": [c.height, c.width, 3], "names": ["height", "width", "channels"]})),
        ));
    }
    f.push(("action".into(), leaf(json!({"dtype": "float32", "shape": [n], "names": names}))));
    for x in &ds.extra {
        f.push((x.key.clone(), leaf(json!({"dtype": "int64", "shape": [1], "names": null}))));
    }
    f.push(("timestamp".into(), leaf(json!({"dtype": "float32", "shape": [1], "names": null}))));
    for &k in &RESERVED[1..] {
        f.push((k.into(), leaf(json!({"dtype": "int64", "shape": [1], "names": null}))));
    }
    Ordered::Object(f)
}

/// The `huggingface` schema metadata of the data file (the `datasets`
/// features LeRobot derives from `info.json`).
fn hf_features(ds: &Dataset) -> Ordered {
    let n = ds.joint_names.len();
    let list = json!({"feature": {"dtype": "float32", "_type": "Value"}, "length": n, "_type": "List"});
    let mut f = Vec::new();
    f.push(("observation.state".into(), Ordered::Leaf(list.clone())));
    for c in &ds.cameras {
        f.push((c.key.clone(), Ordered::Leaf(json!({"_type": "Image"}))));
    }
    f.push(("action".into(), Ordered::Leaf(list)));
    for x in &ds.extra {
        f.push((x.key.clone(), Ordered::Leaf(json!({"dtype": "int64", "_type": "Value"}))));
    }
    f.push(("timestamp".into(), Ordered::Leaf(json!({"dtype": "float32", "_type": "Value"}))));
    for &k in &RESERVED[1..] {
        f.push((k.into(), Ordered::Leaf(json!({"dtype": "int64", "_type": "Value"}))));
    }
    Ordered::Object(vec![("info".into(), Ordered::Object(vec![("features".into(), Ordered::Object(f))]))])
}

/// pandas metadata that makes `pd.read_parquet` put `task` in the index,
/// as LeRobot's `load_tasks` expects.
fn pandas_tasks_metadata() -> Value {
    json!({
        "index_columns": ["task"],
        "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": null},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": null}
        ],
        "attributes": {},
        "creator": {"library": "ganglion", "version": env!("CARGO_PKG_VERSION")},
        "pandas_version": "2.3.3"
    })
}

/// JSON with objects in insertion order (serde_json's `Map` sorts its keys
/// unless the workspace-wide `preserve_order` feature is on); LeRobot's
/// `features` order is the column order.
enum Ordered {
    Leaf(Value),
    Object(Vec<(String, Ordered)>),
}

impl serde::Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Ordered::Leaf(v) => v.serialize(s),
            Ordered::Object(kv) => {
                let mut m = s.serialize_map(Some(kv.len()))?;
                for (k, v) in kv {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<(), LeRobotError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| write_err(path, e))?;
    std::fs::write(path, text + "\n").map_err(|e| write_err(path, e))
}

/// Quantile of sorted values, numpy's default (linear) interpolation.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Per-dimension stats of `rows × n` values (`count` = rows), as LeRobot's
/// `get_feature_stats` over axis 0 (population std; exact quantiles where
/// LeRobot approximates them).
fn vector_stats<T: Copy + Into<f64>>(values: &[T], n: usize) -> Value {
    let rows = values.len() / n;
    let mut s: Map<String, Value> = Map::new();
    let mut cols: Vec<Vec<f64>> = (0..n).map(|j| (0..rows).map(|i| values[i * n + j].into()).collect()).collect();
    let (mut min, mut max, mut mean, mut std) = (vec![], vec![], vec![], vec![]);
    for c in &mut cols {
        c.sort_by(f64::total_cmp);
        let m = c.iter().sum::<f64>() / rows as f64;
        let var = c.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / rows as f64;
        min.push(c[0]);
        max.push(c[rows - 1]);
        mean.push(m);
        std.push(var.sqrt());
    }
    s.insert("min".into(), json!(min));
    s.insert("max".into(), json!(max));
    s.insert("mean".into(), json!(mean));
    s.insert("std".into(), json!(std));
    s.insert("count".into(), json!([rows]));
    for (q, k) in QUANTILES {
        s.insert(k.into(), json!(cols.iter().map(|c| quantile(c, q)).collect::<Vec<_>>()));
    }
    Value::Object(s)
}

/// Per-channel stats of rgb8 frames scaled to [0, 1], shape `[3, 1, 1]`
/// (LeRobot's image stats; `count` = frames). LeRobot samples and
/// downsamples frames; this uses every pixel (exact quantiles from a
/// 256-bin histogram).
fn image_stats(rgb: &[u8], frames: usize) -> Value {
    let mut hist = [[0u64; 256]; 3];
    for px in rgb.chunks_exact(3) {
        for ch in 0..3 {
            hist[ch][usize::from(px[ch])] += 1;
        }
    }
    let wrap = |v: Vec<f64>| json!(v.into_iter().map(|x| json!([[x]])).collect::<Vec<_>>());
    let (mut min, mut max, mut mean, mut std) = (vec![], vec![], vec![], vec![]);
    let mut qs: Vec<Vec<f64>> = vec![Vec::new(); QUANTILES.len()];
    for h in &hist {
        let total: u64 = h.iter().sum();
        let m = h.iter().enumerate().map(|(v, &c)| v as f64 * c as f64).sum::<f64>() / total as f64;
        let var = h.iter().enumerate().map(|(v, &c)| (v as f64 - m).powi(2) * c as f64).sum::<f64>() / total as f64;
        min.push(h.iter().position(|&c| c > 0).unwrap_or(0) as f64 / 255.0);
        max.push(h.iter().rposition(|&c| c > 0).unwrap_or(0) as f64 / 255.0);
        mean.push(m / 255.0);
        std.push(var.sqrt() / 255.0);
        // Value at sorted position k, from the cumulative histogram.
        let at = |k: u64| {
            let mut acc = 0;
            for (v, &c) in h.iter().enumerate() {
                acc += c;
                if acc > k {
                    return v as f64;
                }
            }
            255.0
        };
        for (i, (q, _)) in QUANTILES.iter().enumerate() {
            let pos = q * (total - 1) as f64;
            let lo = pos.floor() as u64;
            let (a, b) = (at(lo), at((lo + 1).min(total - 1)));
            qs[i].push((a + (b - a) * (pos - lo as f64)) / 255.0);
        }
    }
    let mut s = Map::new();
    s.insert("min".into(), wrap(min));
    s.insert("max".into(), wrap(max));
    s.insert("mean".into(), wrap(mean));
    s.insert("std".into(), wrap(std));
    s.insert("count".into(), json!([frames]));
    for ((_, k), v) in QUANTILES.iter().zip(qs) {
        s.insert((*k).into(), wrap(v));
    }
    Value::Object(s)
}

/// A column of a parquet file, with its parquet layout:
/// optional scalars, `LIST<optional element>` lists, and the
/// `struct<bytes, path>` image of HF `datasets.Image()`.
enum Col<'a> {
    F32(&'a str, &'a [f32]),
    I64(&'a str, &'a [i64]),
    Str(&'a str, &'a [String]),
    /// `rows × width` floats as one list per row.
    F32List(&'a str, &'a [f32], usize),
    StrList(&'a str, &'a [Vec<String>]),
    /// PNG bytes and a file name per row.
    Image(&'a str, &'a [Vec<u8>], &'a [String]),
}

fn prim(name: &str, t: PhysicalType, logical: Option<LogicalType>) -> Result<Type, parquet::errors::ParquetError> {
    Type::primitive_type_builder(name, t).with_repetition(Repetition::OPTIONAL).with_logical_type(logical).build()
}

fn list_of(name: &str, element: Type) -> Result<Type, parquet::errors::ParquetError> {
    let list = Type::group_type_builder("list")
        .with_repetition(Repetition::REPEATED)
        .with_fields(vec![Arc::new(element)])
        .build()?;
    Type::group_type_builder(name)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(Some(LogicalType::List))
        .with_converted_type(ConvertedType::LIST)
        .with_fields(vec![Arc::new(list)])
        .build()
}

impl Col<'_> {
    fn schema(&self) -> Result<Type, parquet::errors::ParquetError> {
        let string = Some(LogicalType::String);
        match self {
            Col::F32(n, _) => prim(n, PhysicalType::FLOAT, None),
            Col::I64(n, _) => prim(n, PhysicalType::INT64, None),
            Col::Str(n, _) => prim(n, PhysicalType::BYTE_ARRAY, string),
            Col::F32List(n, _, _) => list_of(n, prim("element", PhysicalType::FLOAT, None)?),
            Col::StrList(n, _) => list_of(n, prim("element", PhysicalType::BYTE_ARRAY, string)?),
            Col::Image(n, _, _) => Type::group_type_builder(n)
                .with_repetition(Repetition::OPTIONAL)
                .with_fields(vec![
                    Arc::new(prim("bytes", PhysicalType::BYTE_ARRAY, None)?),
                    Arc::new(prim("path", PhysicalType::BYTE_ARRAY, string)?),
                ])
                .build(),
        }
    }

    /// Leaf columns' writes, in schema order.
    fn write<W: Write + Send>(
        &self,
        rg: &mut parquet::file::writer::SerializedRowGroupWriter<'_, W>,
    ) -> Result<(), parquet::errors::ParquetError> {
        let missing = || parquet::errors::ParquetError::General("schema has fewer columns than written".into());
        let mut next = |f: &mut dyn FnMut(&mut parquet::file::writer::SerializedColumnWriter<'_>) -> Result<(), _>| {
            let mut c = rg.next_column()?.ok_or_else(missing)?;
            f(&mut c)?;
            c.close()
        };
        let bytes = |s: &str| ByteArray::from(s.as_bytes().to_vec());
        match self {
            Col::F32(_, v) => {
                next(&mut |c| c.typed::<FloatType>().write_batch(v, Some(&vec![1; v.len()]), None).map(drop))
            }
            Col::I64(_, v) => {
                next(&mut |c| c.typed::<Int64Type>().write_batch(v, Some(&vec![1; v.len()]), None).map(drop))
            }
            Col::Str(_, v) => next(&mut |c| {
                let b: Vec<ByteArray> = v.iter().map(|s| bytes(s)).collect();
                c.typed::<ByteArrayType>().write_batch(&b, Some(&vec![1; v.len()]), None).map(drop)
            }),
            Col::F32List(_, v, w) => next(&mut |c| {
                let rep: Vec<i16> = (0..v.len()).map(|i| i16::from(i % w != 0)).collect();
                c.typed::<FloatType>().write_batch(v, Some(&vec![3; v.len()]), Some(&rep)).map(drop)
            }),
            Col::StrList(_, rows) => next(&mut |c| {
                let (mut vals, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
                for r in rows.iter() {
                    if r.is_empty() {
                        def.push(1);
                        rep.push(0);
                    }
                    for (i, s) in r.iter().enumerate() {
                        vals.push(bytes(s));
                        def.push(3);
                        rep.push(i16::from(i > 0));
                    }
                }
                c.typed::<ByteArrayType>().write_batch(&vals, Some(&def), Some(&rep)).map(drop)
            }),
            Col::Image(_, pngs, paths) => {
                next(&mut |c| {
                    let b: Vec<ByteArray> = pngs.iter().map(|p| ByteArray::from(p.clone())).collect();
                    c.typed::<ByteArrayType>().write_batch(&b, Some(&vec![2; b.len()]), None).map(drop)
                })?;
                next(&mut |c| {
                    let b: Vec<ByteArray> = paths.iter().map(|s| bytes(s)).collect();
                    c.typed::<ByteArrayType>().write_batch(&b, Some(&vec![2; b.len()]), None).map(drop)
                })
            }
        }
    }
}

fn write_parquet(path: &Path, cols: &[Col<'_>], kv: Vec<KeyValue>) -> Result<(), LeRobotError> {
    let err = |e: parquet::errors::ParquetError| write_err(path, e);
    let fields: Vec<TypePtr> = cols.iter().map(|c| c.schema().map(Arc::new)).collect::<Result<_, _>>().map_err(err)?;
    let schema = Type::group_type_builder("schema").with_fields(fields).build().map_err(err)?;
    let props = WriterProperties::builder()
        .set_created_by(format!("ganglion {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata((!kv.is_empty()).then_some(kv))
        .build();
    let file = File::create(path).map_err(|e| write_err(path, e))?;
    let mut w = SerializedFileWriter::new(BufWriter::new(file), Arc::new(schema), Arc::new(props)).map_err(err)?;
    let mut rg = w.next_row_group().map_err(err)?;
    for c in cols {
        c.write(&mut rg).map_err(err)?;
    }
    rg.close().map_err(err)?;
    let inner = w.into_inner().map_err(err)?;
    inner.into_inner().map_err(|e| write_err(path, e.error()))?.sync_all().map_err(|e| write_err(path, e))?;
    Ok(())
}

/// A PNG of an rgb8 frame (8-bit truecolour, no interlace, filter "Up" on
/// every row but the first, zlib-deflated).
pub fn png_rgb8(width: usize, height: usize, rgb: &[u8]) -> std::io::Result<Vec<u8>> {
    let stride = width * 3;
    if rgb.len() != stride * height || width > u32::MAX as usize || height > u32::MAX as usize {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame size does not match width × height"));
    }
    let mut raw = Vec::with_capacity((stride + 1) * height);
    for y in 0..height {
        let row = &rgb[y * stride..(y + 1) * stride];
        if y == 0 {
            raw.push(0);
            raw.extend_from_slice(row);
        } else {
            let up = &rgb[(y - 1) * stride..y * stride];
            raw.push(2);
            raw.extend(row.iter().zip(up).map(|(a, b)| a.wrapping_sub(*b)));
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw)?;
    let idat = z.finish()?;
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend((width as u32).to_be_bytes());
    ihdr.extend((height as u32).to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    for (kind, data) in [(b"IHDR", &ihdr[..]), (b"IDAT", &idat[..]), (b"IEND", &[][..])] {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend(crc.finalize().to_be_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert!((quantile(&v, 0.1) - 1.3).abs() < 1e-12);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
    }

    #[test]
    fn image_stats_match_vector_stats_per_channel() {
        let rgb: Vec<u8> = (0..300u32).map(|i| (i * 37 % 256) as u8).collect();
        let img = image_stats(&rgb, 1);
        for ch in 0..3 {
            let vals: Vec<f64> = rgb.iter().skip(ch).step_by(3).map(|&v| f64::from(v) / 255.0).collect();
            let vs = vector_stats(&vals, 1);
            for k in ["min", "max", "mean", "std", "q01", "q10", "q50", "q90", "q99"] {
                let a = img[k][ch][0][0].as_f64().unwrap_or(f64::NAN);
                let b = vs[k][0].as_f64().unwrap_or(f64::NAN);
                assert!((a - b).abs() < 1e-9, "{k} channel {ch}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn refuses_an_existing_directory_and_bad_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Dataset {
            fps: 10,
            robot_type: "t".into(),
            joint_names: vec!["a".into()],
            state: vec![0.0; 2],
            action: vec![0.0; 2],
            cameras: vec![],
            episode: vec![0, 1],
            task: vec!["x".into(), "y".into()],
            extra: vec![IntFeature { key: "ganglion.fallback".into(), values: vec![0, 1] }],
        };
        assert!(matches!(write(dir.path(), &ds), Err(LeRobotError::Exists(_))));
        let mut bad = ds.clone();
        bad.episode = vec![1, 0];
        let out = dir.path().join("new");
        assert!(matches!(write(&out, &bad), Err(LeRobotError::Invalid { .. })));
        for (key, values) in [("ganglion.fallback", vec![0]), ("index", vec![0, 1])] {
            let mut bad = ds.clone();
            bad.extra = vec![IntFeature { key: key.into(), values }];
            assert!(matches!(write(&out, &bad), Err(LeRobotError::Invalid { key: k, .. }) if k == key));
        }
        assert!(!out.exists());
        let w = write(&out, &ds).unwrap();
        assert_eq!((w.episodes, w.frames, w.tasks), (2, 2, 2));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("new")]);
    }
}
