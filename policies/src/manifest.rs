//! `policy.toml`: the bundle manifest, its parsing and its validation.
//!
//! The format is documented in `policies/README.md`; validation here is the
//! executable form of that document. Every error names the manifest file and
//! the dotted key that is wrong.

use std::path::{Path, PathBuf};

use ganglion_core::{ActionKind, PixelFormat, MAX_JOINTS};
use serde::{Deserialize, Serialize};

use crate::error::BundleError;
use crate::preprocess::{JointRange, Normalizer, UnitMap};

pub mod dataflow;
pub mod prompt_axis;

pub use dataflow::{
    CommittedActions, Dataflow, GuidanceSpec, HeadSpec, Link, Plan, PrefixSchedule, ScheduleKind, ScheduleSpec, Source,
    Wire,
};
use prompt_axis::AxisToml;
pub use prompt_axis::{PromptAxis, PROMPT_LEN};

/// Name of the manifest inside a bundle.
pub const MANIFEST_FILE: &str = "policy.toml";
/// Name of the detached signature inside a bundle.
pub const SIGNATURE_FILE: &str = "signature.ed25519";
/// The manifest format of the fixed world-model / single-graph pipeline.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest format with named graphs and a declared dataflow
/// (`[dataflow]`, see [`dataflow`]); this crate reads both.
pub const FORMAT_DATAFLOW: u32 = 2;

/// Numeric precision the bundle's graphs were exported or quantized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit float.
    Fp32,
    /// 16-bit float (TensorRT builds fp16 engines).
    Fp16,
    /// 8-bit integer (static QDQ graphs).
    Int8,
}

impl Precision {
    /// Lower-case name as in the manifest.
    pub const fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }
}

/// Most token slots `[text] max_tokens` may declare.
pub const MAX_TOKENS: usize = 4096;

/// Element type of a tensor, as the graph declares it.
///
/// The runtime holds every tensor in its *host* type ([`DType::host`]):
/// f16 and bf16 as f32, i32 as i64. The backend converts at its boundary,
/// so the pipeline (normalization, schedules, wires) is written once, and a
/// half-precision tensor wired from one graph to another round-trips
/// exactly (every f16 and bf16 value is an f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float.
    F32,
    /// IEEE 754 half precision (fp16 exports, TensorRT). Held as f32.
    F16,
    /// bfloat16 (PaliGemma/Gemma exports). Held as f32; ONNX Runtime only
    /// (tract has no bf16).
    Bf16,
    /// Unsigned byte (images the graph normalizes itself).
    U8,
    /// 32-bit signed integer (token ids and timesteps of some exports). Held
    /// as i64; a value outside i32 is an error at the backend, never wrapped.
    I32,
    /// 64-bit signed integer (token ids).
    I64,
    /// Boolean (attention and padding masks), one byte per element.
    Bool,
}

impl DType {
    /// Lower-case name as in the manifest.
    pub const fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::U8 => "u8",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }

    /// The type the runtime holds this tensor in: f32 for every float, i64
    /// for every integer but u8.
    pub const fn host(self) -> DType {
        match self {
            DType::F32 | DType::F16 | DType::Bf16 => DType::F32,
            DType::I32 | DType::I64 => DType::I64,
            DType::U8 => DType::U8,
            DType::Bool => DType::Bool,
        }
    }

    /// ONNX's `TensorProto.DataType` code.
    pub const fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::Bool => 9,
            DType::F16 => 10,
            DType::Bf16 => 16,
        }
    }
}

/// One input or output tensor of a graph.
///
/// In TOML `shape` lists sizes, or for an axis that follows the prompt's
/// length an expression of `L` (`[1, 2, "L + 17", 16]`, see
/// [`prompt_axis`]); here `shape` holds the largest shape (the longest
/// prompt's, set by [`Manifest::parse`]) and `prompt_axes` those axes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TensorToml", into = "TensorToml")]
pub struct TensorSpec {
    /// Tensor name in the ONNX graph.
    pub name: String,
    /// The shape (batch included, always 1); an axis in `prompt_axes` holds
    /// its size for the longest prompt.
    pub shape: Vec<usize>,
    /// The axes that follow the prompt's length, in axis order; empty for a
    /// fixed shape.
    pub prompt_axes: Vec<PromptAxis>,
    /// Element type.
    pub dtype: DType,
}

/// [`TensorSpec`] as TOML holds it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorToml {
    name: String,
    shape: Vec<AxisToml>,
    dtype: DType,
}

impl TryFrom<TensorToml> for TensorSpec {
    type Error = String;

    /// A prompt axis's size is 0 until [`Manifest::parse`] bounds it.
    fn try_from(t: TensorToml) -> Result<Self, String> {
        let mut shape = Vec::with_capacity(t.shape.len());
        let mut prompt_axes = Vec::new();
        for (axis, a) in t.shape.into_iter().enumerate() {
            match a {
                AxisToml::Size(n) => shape.push(n),
                AxisToml::Prompt(text) => {
                    prompt_axes.push(PromptAxis::parse(axis, &text).map_err(|e| format!("tensor `{}`: {e}", t.name))?);
                    shape.push(0);
                }
            }
        }
        Ok(TensorSpec { name: t.name, shape, prompt_axes, dtype: t.dtype })
    }
}

impl From<TensorSpec> for TensorToml {
    fn from(t: TensorSpec) -> Self {
        let shape = t
            .shape
            .iter()
            .enumerate()
            .map(|(axis, &n)| match t.prompt_axes.iter().find(|a| a.axis == axis) {
                Some(a) => AxisToml::Prompt(a.to_string()),
                None => AxisToml::Size(n),
            })
            .collect();
        TensorToml { name: t.name, shape, dtype: t.dtype }
    }
}

impl TensorSpec {
    /// A tensor of fixed shape.
    pub fn fixed(name: impl Into<String>, shape: Vec<usize>, dtype: DType) -> Self {
        TensorSpec { name: name.into(), shape, prompt_axes: Vec::new(), dtype }
    }

    /// Number of elements of the largest shape (what its buffer holds).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether an axis follows the prompt's length.
    pub fn follows_prompt(&self) -> bool {
        !self.prompt_axes.is_empty()
    }

    /// Writes the shape for a prompt of `tokens` tokens into `out` (same
    /// rank; nothing allocated).
    pub fn shape_at(&self, tokens: usize, out: &mut [usize]) {
        out.copy_from_slice(&self.shape);
        for a in &self.prompt_axes {
            if let Some(d) = out.get_mut(a.axis) {
                *d = a.size(tokens);
            }
        }
    }

    /// Number of elements for a prompt of `tokens` tokens.
    pub fn len_at(&self, tokens: usize) -> usize {
        self.shape
            .iter()
            .enumerate()
            .map(|(axis, &n)| self.prompt_axes.iter().find(|a| a.axis == axis).map_or(n, |a| a.size(tokens)))
            .product()
    }

    /// The shape as the manifest writes it: `[1, 2, L + 17, 16]`.
    pub fn shape_text(&self) -> String {
        let axes: Vec<String> = self
            .shape
            .iter()
            .enumerate()
            .map(|(axis, n)| match self.prompt_axes.iter().find(|a| a.axis == axis) {
                Some(a) => a.to_string(),
                None => n.to_string(),
            })
            .collect();
        format!("[{}]", axes.join(", "))
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One ONNX graph of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSpec {
    /// ONNX file, relative to the bundle root; must be listed in `files`.
    pub file: String,
    /// Inputs in wiring order (see the README).
    pub inputs: Vec<TensorSpec>,
    /// Outputs; the first is the one the pipeline uses.
    pub outputs: Vec<TensorSpec>,
}

/// The graphs: either the world-model triple (plus an optional text encoder)
/// or a single `policy` graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graphs {
    /// Observation → latent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<GraphSpec>,
    /// (latent, normalized action) → next latent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamics: Option<GraphSpec>,
    /// latent [, instruction embedding] → normalized chunk `[1, H, n]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_head: Option<GraphSpec>,
    /// token ids `[1, L]` i64 → instruction embedding `[1, E]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_encoder: Option<GraphSpec>,
    /// Observation → normalized chunk, for single-graph exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<GraphSpec>,
}

/// Which graph a [`GraphSpec`] plays in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GraphRole {
    /// `graphs.encoder`.
    Encoder,
    /// `graphs.dynamics`.
    Dynamics,
    /// `graphs.action_head`.
    ActionHead,
    /// `graphs.text_encoder`.
    TextEncoder,
    /// `graphs.policy`.
    Policy,
    /// A named graph of format 2 (`dataflow.graphs.<name>`).
    Dataflow,
}

impl GraphRole {
    /// Key name in the manifest.
    pub const fn as_str(self) -> &'static str {
        match self {
            GraphRole::Encoder => "encoder",
            GraphRole::Dynamics => "dynamics",
            GraphRole::ActionHead => "action_head",
            GraphRole::TextEncoder => "text_encoder",
            GraphRole::Policy => "policy",
            GraphRole::Dataflow => "dataflow",
        }
    }
}

impl Graphs {
    /// Whether no graph is set (format 2 keeps its graphs in `[dataflow]`).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The graphs present, in pipeline order.
    pub fn iter(&self) -> impl Iterator<Item = (GraphRole, &GraphSpec)> {
        [
            (GraphRole::TextEncoder, &self.text_encoder),
            (GraphRole::Encoder, &self.encoder),
            (GraphRole::Dynamics, &self.dynamics),
            (GraphRole::ActionHead, &self.action_head),
            (GraphRole::Policy, &self.policy),
        ]
        .into_iter()
        .filter_map(|(r, g)| g.as_ref().map(|g| (r, g)))
    }

    /// The graph that consumes the observation (`encoder` or `policy`).
    pub fn observation_graph(&self) -> Option<(GraphRole, &GraphSpec)> {
        match (&self.encoder, &self.policy) {
            (Some(e), _) => Some((GraphRole::Encoder, e)),
            (None, Some(p)) => Some((GraphRole::Policy, p)),
            _ => None,
        }
    }
}

/// A rectangle of the camera image, in pixels of the declared size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// A camera the policy consumes and how its frames become a tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Camera name as in the robot profile.
    pub name: String,
    /// Width the robot delivers.
    pub width: u32,
    /// Height the robot delivers.
    pub height: u32,
    /// Pixel format the robot delivers.
    pub format: PixelFormat,
    /// Network input size `[width, height]`; must match the graph input.
    pub resize: [u32; 2],
    /// Per-channel mean of pixel values scaled to [0, 1] (f32 inputs only).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation, > 0 (f32 inputs only).
    pub std: Vec<f32>,
    /// Region to keep before resizing; the whole image when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<Crop>,
    /// Resize without distortion and pad with black to `resize`
    /// (LeRobot's resize-with-pad); absent: stretch to `resize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letterbox: Option<Letterbox>,
    /// Shrink with the triangle filter widened by the downscale factor
    /// (PIL's `BILINEAR`, `F.interpolate(antialias=True)`: torchvision's
    /// `Resize`, openpi's PIL resize) instead of two-tap bilinear (OpenCV
    /// `INTER_LINEAR`, `F.interpolate` without it). Needs frames of the
    /// declared size.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub antialias: bool,
    /// Format 2: the policy was trained with this camera but the robot has
    /// none. It is not in the policy's spec (the robot delivers no frames
    /// for it); its input holds a black frame (pixel 0, normalized like any
    /// pixel), and `obs.image_mask.<name>` says false — LeRobot's / openpi's
    /// handling of a missing camera (a −1 image in SigLIP's [-1, 1], mask 0).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
}

/// Where the image goes inside a letterboxed input: the (cropped) frame is
/// scaled by `1 / max(w / W, h / H)` to `int(w / ratio) × int(h / ratio)`
/// (bilinear, half-pixel centres, no anti-aliasing, as `F.interpolate`)
/// and the rest of the `W × H` input is black (pixel value 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Letterbox {
    /// Centred, the odd pixel of padding at the bottom / right: openpi's
    /// `resize_with_pad_torch` (π0, π0.5, π0-FAST).
    Centered,
    /// In the bottom-right corner, all padding at the top and left:
    /// LeRobot's `resize_with_pad` (SmolVLA, xVLA).
    BottomRight,
}

/// Joint names and state normalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JointsConfig {
    /// Joint names in the order of the state and action vectors.
    pub names: Vec<String>,
    /// How the values are normalized (LeRobot's `NormalizationMode`);
    /// `mean_std` when absent.
    #[serde(default, skip_serializing_if = "NormMode::is_default")]
    pub normalization: NormMode,
    /// Mean per joint (`mean_std`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mean: Vec<f32>,
    /// Standard deviation per joint, > 0 (`mean_std`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub std: Vec<f32>,
    /// Minimum per joint (`min_max`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub min: Vec<f32>,
    /// Maximum per joint (`min_max`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub max: Vec<f32>,
    /// 1st percentile per joint (`quantiles`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub q01: Vec<f32>,
    /// 99th percentile per joint (`quantiles`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub q99: Vec<f32>,
    /// The unit of each joint in the policy's state and actions (and so in
    /// every statistic of `[joints]` and `[action]`); the robot's are
    /// radians. Empty: radians throughout. LeRobot's SO-100/SO-101 with
    /// `use_degrees = true` records and trains in degrees.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<JointUnit>,
}

/// A joint's unit in the policy's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JointUnit {
    /// Radians (the robot's unit).
    Rad,
    /// Degrees.
    Deg,
    /// LeRobot's `range_m100_100`: -100..100 over the arm's calibrated
    /// range (its default for SO-100/SO-101 body joints without
    /// `use_degrees`); needs the calibration
    /// ([`crate::preprocess::JointRange`]).
    #[serde(rename = "range_m100_100")]
    RangeM100To100,
    /// LeRobot's `range_0_100`: 0..100 over the calibrated range (its
    /// SO-100/SO-101 gripper, always).
    #[serde(rename = "range_0_100")]
    Range0To100,
}

impl JointUnit {
    /// Every unit.
    pub const ALL: [JointUnit; 4] = [JointUnit::Rad, JointUnit::Deg, JointUnit::RangeM100To100, JointUnit::Range0To100];

    /// The unit the manifest spells `s`.
    pub fn parse(s: &str) -> Option<JointUnit> {
        JointUnit::ALL.into_iter().find(|u| u.as_str() == s)
    }

    /// The manifest's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JointUnit::Rad => "rad",
            JointUnit::Deg => "deg",
            JointUnit::RangeM100To100 => "range_m100_100",
            JointUnit::Range0To100 => "range_0_100",
        }
    }
}

/// Action semantics and de-normalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// `absolute` joint targets or `delta` offsets from the observed position.
    pub kind: ActionKindConfig,
    /// Actions per chunk (H).
    pub chunk_len: usize,
    /// Policy rate (actions per second).
    pub rate_hz: f64,
    // The same statistics keys as `[joints]`, spelled out again: serde's
    // `flatten` cannot be combined with `deny_unknown_fields`, and a typo'd
    // key must stay an error. `feature_stats!` gives both one view.
    /// How the values are normalized (LeRobot's `NormalizationMode`);
    /// `mean_std` when absent.
    #[serde(default, skip_serializing_if = "NormMode::is_default")]
    pub normalization: NormMode,
    /// Mean per joint (`mean_std`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mean: Vec<f32>,
    /// Standard deviation per joint, > 0 (`mean_std`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub std: Vec<f32>,
    /// Minimum per joint (`min_max`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub min: Vec<f32>,
    /// Maximum per joint (`min_max`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub max: Vec<f32>,
    /// 1st percentile per joint (`quantiles`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub q01: Vec<f32>,
    /// 99th percentile per joint (`quantiles`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub q99: Vec<f32>,
    /// LeRobot's `use_relative_actions` (π0.5, GR00T; openpi's
    /// `DeltaActions`): the policy's actions, de-normalized, are offsets
    /// from the observed joint state on every joint but those
    /// `relative_exclude` names; the runtime adds the state back (and takes
    /// it off the committed actions it inpaints), so the chunk holds
    /// absolute targets. Needs `kind = "absolute"`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relative: bool,
    /// LeRobot's `relative_exclude_joints`: joints that stay absolute (a
    /// gripper), matched as LeRobot matches them: a joint whose lower-case
    /// name equals or contains a lower-case token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relative_exclude: Vec<String>,
}

/// LeRobot's normalization modes (`lerobot/processor/normalize_processor.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormMode {
    /// `(x − mean) / std`.
    #[default]
    MeanStd,
    /// `2 (x − min) / (max − min) − 1` (a zero range counts as 1e-8).
    MinMax,
    /// `2 (x − q01) / (q99 − q01) − 1` (a zero range counts as 1e-8; π0.5).
    Quantiles,
    /// `x`.
    Identity,
}

impl NormMode {
    fn is_default(&self) -> bool {
        *self == NormMode::MeanStd
    }

    /// Manifest spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            NormMode::MeanStd => "mean_std",
            NormMode::MinMax => "min_max",
            NormMode::Quantiles => "quantiles",
            NormMode::Identity => "identity",
        }
    }
}

/// The normalization statistics of `[joints]` or `[action]`, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct FeatureStats<'a> {
    /// The mode.
    pub mode: NormMode,
    /// `(key, values)` of every statistic, in manifest order.
    pub stats: [(&'static str, &'a [f32]); 6],
}

impl FeatureStats<'_> {
    /// The statistic `key` (empty when absent).
    pub fn get(&self, key: &str) -> &[f32] {
        self.stats.iter().find(|(k, _)| *k == key).map_or(&[], |(_, v)| v)
    }

    /// The statistics `mode` uses, in the order its formula names them.
    pub const fn keys(mode: NormMode) -> &'static [&'static str] {
        match mode {
            NormMode::MeanStd => &["mean", "std"],
            NormMode::MinMax => &["min", "max"],
            NormMode::Quantiles => &["q01", "q99"],
            NormMode::Identity => &[],
        }
    }
}

macro_rules! feature_stats {
    ($t:ty) => {
        impl $t {
            /// The normalization and its statistics.
            pub fn stats(&self) -> FeatureStats<'_> {
                FeatureStats {
                    mode: self.normalization,
                    stats: [
                        ("mean", &self.mean),
                        ("std", &self.std),
                        ("min", &self.min),
                        ("max", &self.max),
                        ("q01", &self.q01),
                        ("q99", &self.q99),
                    ],
                }
            }
        }
    };
}
feature_stats!(JointsConfig);
feature_stats!(ActionConfig);

impl Manifest {
    /// Joint positions (rad) → the policy's normalized state, in the
    /// joints' units; `ranges`: the arm's calibrated range per joint, which
    /// the range units need (empty: none given; an error then names the
    /// joint).
    pub fn state_normalizer(&self, ranges: &[JointRange]) -> Result<Normalizer, BundleError> {
        Normalizer::new(self.joints.stats()).in_units(&self.joints.units, ranges, &[]).map_err(|e| self.unit_error(e))
    }

    /// Joint targets (rad, or offsets for delta and relative actions) ↔ the
    /// policy's normalized actions, in the joints' units (offsets: scaled
    /// only, see [`crate::preprocess::UnitMap::new`]).
    pub fn action_normalizer(&self, ranges: &[JointRange]) -> Result<Normalizer, BundleError> {
        let offsets = match self.action.kind {
            ActionKindConfig::Delta => vec![true; self.n_joints()],
            ActionKindConfig::Absolute => self.relative_action_mask(),
        };
        Normalizer::new(self.action.stats())
            .in_units(&self.joints.units, ranges, &offsets)
            .map_err(|e| self.unit_error(e))
    }

    /// Per joint, radians ↔ the policy's unit for the values a LeRobot
    /// reference records: positions, and actions as the policy emits them
    /// (absolute targets, relative ones after LeRobot adds the state back;
    /// offsets for delta actions). Empty: radians throughout.
    pub fn reference_units(&self, ranges: &[JointRange]) -> Result<(Vec<UnitMap>, Vec<UnitMap>), BundleError> {
        let n = self.n_joints();
        let state = UnitMap::per_joint(&self.joints.units, ranges, &[]).map_err(|e| self.unit_error(e))?;
        let delta = vec![self.action.kind == ActionKindConfig::Delta; n];
        let action = UnitMap::per_joint(&self.joints.units, ranges, &delta).map_err(|e| self.unit_error(e))?;
        Ok((state, action))
    }

    /// Whether a joint's unit is relative to the arm's calibration.
    pub fn needs_joint_ranges(&self) -> bool {
        self.joints.units.iter().any(|u| matches!(u, JointUnit::RangeM100To100 | JointUnit::Range0To100))
    }

    fn unit_error(&self, why: String) -> BundleError {
        BundleError::Manifest { file: MANIFEST_FILE.into(), key: "joints.units".into(), problem: why }
    }
}

/// Manifest spelling of [`ActionKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKindConfig {
    /// Absolute joint positions.
    Absolute,
    /// Offsets from the observed joint position.
    Delta,
}

impl From<ActionKindConfig> for ActionKind {
    fn from(k: ActionKindConfig) -> Self {
        match k {
            ActionKindConfig::Absolute => ActionKind::AbsolutePosition,
            ActionKindConfig::Delta => ActionKind::DeltaPosition,
        }
    }
}

/// One file of the bundle and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the bundle root (no `..`, not absolute).
    pub path: String,
    /// Lower-case hex SHA-256 of the file; empty until `ganglion policy sign`.
    #[serde(default)]
    pub sha256: String,
}

/// The parsed `policy.toml`.
///
/// Field order matters for [`Manifest::to_canonical_toml`]: plain values
/// first, then tables, as TOML requires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version: [`FORMAT_VERSION`] or [`FORMAT_DATAFLOW`].
    pub format: u32,
    /// Policy name.
    pub name: String,
    /// Policy version.
    pub version: String,
    /// Precision the graphs were made for.
    pub precision: Precision,
    /// Inference latency the bundle expects on its target, ms.
    pub expected_latency_ms: f64,
    /// Largest absolute difference allowed between backends' outputs.
    pub parity_tolerance: f32,
    /// Threshold on the normalized surprise; required with `graphs.dynamics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surprise_threshold: Option<f32>,
    /// Most robots whose inferences a policy server may run as one batch
    /// (`ganglion serve --max-batch`): the graphs take a dynamic first
    /// dimension (checked when a server loads them). Absent: 1, no batching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch: Option<u32>,
    /// Vocabulary file (one token a line, line number = token id); required
    /// with `graphs.text_encoder`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab: Option<String>,
    /// Format 2: how the instruction becomes tokens (`obs.tokens`,
    /// `obs.token_mask`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    /// The graphs of format 1 (empty in format 2).
    #[serde(default, skip_serializing_if = "Graphs::is_empty")]
    pub graphs: Graphs,
    /// Format 2: named graphs and their wiring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataflow: Option<Dataflow>,
    /// Where the graphs came from (`ganglion policy import`) and the parity
    /// gate's result; absent for bundles made by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// Joint names and normalization.
    pub joints: JointsConfig,
    /// Action semantics.
    pub action: ActionConfig,
    /// Cameras in the order of the observation graph's image inputs.
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// Every file of the bundle with its digest.
    pub files: Vec<FileEntry>,
}

/// Format 2's `[text]`: the instruction, written into a prompt template,
/// tokenized by a Hugging Face `tokenizer.json` and padded on the right to
/// `max_tokens` (`padding="max_length"`) or fed at its own length
/// (`padding="longest"`), as LeRobot's tokenizer processor step does.
/// Tokenization runs on the inference worker when the instruction changes,
/// never on the control thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// `tokenizer.json`, relative to the bundle root; listed in `files`.
    pub tokenizer: String,
    /// The prompt: `{instruction}` stands for the instruction's text
    /// (SmolVLA: `"{instruction}\n"`).
    pub template: String,
    /// Token slots: the `obs.tokens` / `obs.token_mask` tensors are
    /// `[1, max_tokens]` (`[1, L]`, `L <= max_tokens`, with `padding =
    /// "longest"`); a longer prompt is cut (LeRobot's `truncation`), with a
    /// warning.
    pub max_tokens: usize,
    /// How the prompt is padded (LeRobot's `pad_language_to`).
    #[serde(default, skip_serializing_if = "Padding::is_default")]
    pub padding: Padding,
    /// The padding token's text, looked up in the tokenizer.
    pub pad_token: String,
    /// Whether the tokenizer's post-processor adds its special tokens
    /// (transformers' `add_special_tokens`, true by default there too).
    #[serde(default = "default_true")]
    pub add_special_tokens: bool,
    /// With `{state}` in the template (π0.5): the normalized joint state,
    /// each joint digitized into this many bins over [-1, 1] as LeRobot's
    /// `np.digitize(state, linspace(-1, 1, bins + 1)[:-1]) - 1`, written as
    /// space-separated integers. The prompt then changes every inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_bins: Option<usize>,
    /// π0.5's clean-up of the instruction: trimmed, `_` and newlines
    /// written as spaces.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clean_instruction: bool,
}

fn default_true() -> bool {
    true
}

/// `[text] padding`: how a prompt fills the token input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// Padded with the pad token to `max_tokens`, masked out (LeRobot's
    /// `padding="max_length"`): fixed shapes.
    #[default]
    MaxLength,
    /// Not padded (LeRobot's `padding="longest"` for one prompt): the token
    /// input is `[1, L]` for a prompt of `L` tokens, and the graphs' shapes
    /// follow `L` where the manifest writes it ([`prompt_axis`]). A prompt
    /// of no token takes one pad token, masked out.
    Longest,
}

impl Padding {
    fn is_default(&self) -> bool {
        *self == Padding::MaxLength
    }
}

/// Where an imported bundle's graphs came from (`[provenance]`), written by
/// `ganglion policy import` and covered by the signature like every key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Training framework the checkpoint came from (`lerobot`).
    pub source: String,
    /// Its policy type (`act`).
    pub policy_type: String,
    /// LeRobot version that loaded and exported the checkpoint.
    pub lerobot_version: String,
    /// PyTorch version of the export.
    pub torch_version: String,
    /// ONNX opset of the exported graph(s).
    pub onnx_opset: u32,
    /// SHA-256 of the checkpoint's `model.safetensors`.
    pub checkpoint_sha256: String,
    /// How the graph stores its weights (`fp32` when absent): `int8` keeps
    /// large weight tensors as int8 with a float scale per output channel,
    /// turned back into float by the graph itself (computation stays fp32;
    /// the parity gate measured the difference).
    #[serde(default, skip_serializing_if = "WeightStorage::is_fp32")]
    pub weights: WeightStorage,
    /// The parity gate: the bundle against the PyTorch policy.
    pub parity: ParityReport,
}

/// How an imported graph stores its weights (`[provenance] weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum WeightStorage {
    /// 32-bit float, as trained.
    #[default]
    Fp32,
    /// Weight-only INT8: every float initializer of at least
    /// [`INT8_WEIGHT_MIN_ELEMENTS`] elements becomes int8 with a symmetric
    /// per-output-channel (axis 0) scale, `Cast` + `Mul` in the graph; about
    /// a quarter of the size, the same fp32 arithmetic.
    Int8,
}

/// Smallest initializer that `WeightStorage::Int8` quantizes (smaller ones,
/// biases and normalization parameters, stay fp32).
pub const INT8_WEIGHT_MIN_ELEMENTS: usize = 1024;

impl WeightStorage {
    /// Lower-case name as in the manifest and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            WeightStorage::Fp32 => "fp32",
            WeightStorage::Int8 => "int8",
        }
    }

    /// Whether this is the default (fp32), which the manifest omits.
    pub fn is_fp32(&self) -> bool {
        *self == WeightStorage::Fp32
    }
}

/// The parity gate's result (`[provenance.parity]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParityReport {
    /// The reference observations and PyTorch actions, a file of the bundle
    /// (listed in `[[files]]`, so signed).
    pub reference: String,
    /// Observations compared.
    pub samples: usize,
    /// Largest |bundle action − PyTorch action| over every sample, step and
    /// joint, in the action's units.
    pub max_abs_error: f64,
    /// The gate: the import refuses a bundle whose error exceeds it.
    pub tolerance: f64,
    /// The backend the bundle ran on (`tract`).
    pub backend: String,
}

/// Dimensions the validated manifest implies, used to wire the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Joints (n).
    pub joints: usize,
    /// Chunk length (H).
    pub chunk_len: usize,
    /// Latent size (D), 0 without an encoder.
    pub latent: usize,
    /// Instruction embedding size (E), 0 without a text encoder.
    pub embedding: usize,
    /// Token ids per instruction (L), 0 without a text encoder.
    pub tokens: usize,
}

struct Ctx<'a> {
    file: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, problem: impl Into<String>) -> BundleError {
        BundleError::Manifest { file: self.file.to_path_buf(), key: key.into(), problem: problem.into() }
    }
}

impl Manifest {
    /// Parses and validates manifest bytes; `file` names the manifest in
    /// errors.
    pub fn parse(bytes: &[u8], file: &Path) -> Result<Manifest, BundleError> {
        let ctx = Ctx { file };
        let text = std::str::from_utf8(bytes).map_err(|e| ctx.err("(file)", format!("not UTF-8: {e}")))?;
        let mut manifest: Manifest = toml::from_str(text).map_err(|e| {
            let key = e.span().map(|s| key_at(text, s.start)).unwrap_or_else(|| "(document)".to_string());
            ctx.err(key, e.message().to_string())
        })?;
        manifest.bound_prompt_axes(&ctx)?;
        manifest.validate(file)?;
        Ok(manifest)
    }

    /// Sizes every axis that follows the prompt's length for the longest
    /// prompt, `[text] max_tokens` tokens: such axes need
    /// `[text] padding = "longest"`, the only thing that makes a prompt's
    /// length vary.
    fn bound_prompt_axes(&mut self, ctx: &Ctx) -> Result<(), BundleError> {
        let longest = self.text.as_ref().filter(|t| t.padding == Padding::Longest).map(|t| t.max_tokens);
        let mut graphs: Vec<(String, &mut GraphSpec)> = Vec::new();
        for (role, g) in [
            (GraphRole::TextEncoder, &mut self.graphs.text_encoder),
            (GraphRole::Encoder, &mut self.graphs.encoder),
            (GraphRole::Dynamics, &mut self.graphs.dynamics),
            (GraphRole::ActionHead, &mut self.graphs.action_head),
            (GraphRole::Policy, &mut self.graphs.policy),
        ] {
            if let Some(g) = g.as_mut() {
                graphs.push((format!("graphs.{}", role.as_str()), g));
            }
        }
        if let Some(df) = self.dataflow.as_mut() {
            graphs.extend(df.graphs.iter_mut().map(|(name, g)| (format!("dataflow.graphs.{name}"), g)));
        }
        for (base, g) in graphs {
            for (kind, list) in [("inputs", &mut g.inputs), ("outputs", &mut g.outputs)] {
                for (i, t) in list.iter_mut().enumerate() {
                    let Some(a) = t.prompt_axes.first() else { continue };
                    let Some(max) = longest else {
                        return Err(ctx.err(
                            format!("{base}.{kind}[{i}].shape"),
                            format!(
                                "axis {} of `{}` is `{a}`: a shape follows the prompt's length `{PROMPT_LEN}` only \
                                 with [text] padding = \"longest\"",
                                a.axis, t.name
                            ),
                        ));
                    };
                    for a in &t.prompt_axes {
                        if let Some(d) = t.shape.get_mut(a.axis) {
                            *d = a.size(max);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The manifest as TOML in the one form `sign` writes and signs.
    pub fn to_canonical_toml(&self) -> String {
        // Serializing plain data structs to TOML cannot fail: every field is
        // a string, number, bool, array or table in the required order.
        toml::to_string(self).unwrap_or_default()
    }

    /// The digest listed for `path`, if any.
    pub fn digest_of(&self, path: &str) -> Option<&str> {
        self.files.iter().find(|f| f.path == path).map(|f| f.sha256.as_str())
    }

    /// Number of joints.
    pub fn n_joints(&self) -> usize {
        self.joints.names.len()
    }

    /// Policy period in ns.
    pub fn step_ns(&self) -> u64 {
        (1e9 / self.action.rate_hz).round() as u64
    }

    /// What the loop needs to know of the policy (either format); the
    /// surprise threshold only with world-model dynamics.
    pub fn policy_spec(&self) -> ganglion_core::PolicySpec {
        ganglion_core::PolicySpec {
            name: format!("{} {}", self.name, self.version),
            n_joints: self.n_joints(),
            chunk_len: self.action.chunk_len,
            step_ns: self.step_ns(),
            action_kind: self.action.kind.into(),
            cameras: self
                .cameras
                .iter()
                .filter(|c| !c.absent)
                .map(|c| ganglion_core::CameraSpec {
                    name: c.name.clone(),
                    width: c.width,
                    height: c.height,
                    format: c.format,
                })
                .collect(),
            expected_latency_ns: (self.expected_latency_ms * 1e6).round() as u64,
            surprise_threshold: if self.graphs.dynamics.is_some() { self.surprise_threshold } else { None },
            history: self
                .dataflow
                .as_ref()
                .and_then(|d| d.wires.iter().filter_map(|w| w.history).max())
                .unwrap_or(1)
                .max(1),
            rolls_at_reply: false,
        }
    }

    /// Dimensions implied by the graphs (call after validation).
    pub fn dims(&self) -> Dims {
        let first = |g: &Option<GraphSpec>, out: bool, idx: usize| {
            g.as_ref()
                .and_then(|g| if out { g.outputs.get(idx) } else { g.inputs.get(idx) })
                .and_then(|t| t.shape.last().copied())
                .unwrap_or(0)
        };
        Dims {
            joints: self.n_joints(),
            chunk_len: self.action.chunk_len,
            latent: first(&self.graphs.encoder, true, 0),
            embedding: first(&self.graphs.text_encoder, true, 0),
            tokens: first(&self.graphs.text_encoder, false, 0),
        }
    }

    /// Checks everything the README promises; the first problem wins.
    pub fn validate(&self, file: &Path) -> Result<(), BundleError> {
        let ctx = Ctx { file };
        if self.format != FORMAT_VERSION && self.format != FORMAT_DATAFLOW {
            return Err(
                ctx.err("format", format!("expected {FORMAT_VERSION} or {FORMAT_DATAFLOW}, found {}", self.format))
            );
        }
        if self.name.trim().is_empty() {
            return Err(ctx.err("name", "must not be empty"));
        }
        if self.version.trim().is_empty() {
            return Err(ctx.err("version", "must not be empty"));
        }
        if !(self.expected_latency_ms.is_finite() && self.expected_latency_ms > 0.0) {
            return Err(ctx.err("expected_latency_ms", "expected a finite number > 0"));
        }
        if !(self.parity_tolerance.is_finite() && self.parity_tolerance >= 0.0) {
            return Err(ctx.err("parity_tolerance", "expected a finite number >= 0"));
        }
        let most = crate::backend::batch::MAX_BATCH;
        if let Some(b) = self.max_batch.filter(|&b| b == 0 || b as usize > most) {
            return Err(ctx.err("max_batch", format!("expected 1..={most} robots, found {b}")));
        }
        self.validate_joints_and_action(&ctx)?;
        let plan = if self.format == FORMAT_DATAFLOW {
            Some(self.validate_dataflow(&ctx)?)
        } else {
            if self.dataflow.is_some() {
                return Err(ctx.err("dataflow", format!("needs format = {FORMAT_DATAFLOW}")));
            }
            if self.text.is_some() {
                return Err(ctx.err("text", format!("needs format = {FORMAT_DATAFLOW} (format 1 uses `vocab`)")));
            }
            self.validate_graphs(&ctx)?;
            None
        };
        self.validate_cameras(&ctx, plan.as_ref())?;
        self.validate_files(&ctx)?;
        self.validate_provenance(&ctx)
    }

    fn validate_provenance(&self, ctx: &Ctx) -> Result<(), BundleError> {
        let Some(p) = &self.provenance else { return Ok(()) };
        let r = &p.parity;
        check_rel_path(ctx, "provenance.parity.reference", &r.reference)?;
        if self.digest_of(&r.reference).is_none() {
            return Err(
                ctx.err("provenance.parity.reference", format!("`{}` must be listed in [[files]]", r.reference))
            );
        }
        if r.samples == 0 {
            return Err(ctx.err("provenance.parity.samples", "expected >= 1"));
        }
        if !(r.tolerance.is_finite() && r.tolerance >= 0.0) {
            return Err(ctx.err("provenance.parity.tolerance", "expected a finite number >= 0"));
        }
        if !(r.max_abs_error.is_finite() && r.max_abs_error >= 0.0) {
            return Err(ctx.err("provenance.parity.max_abs_error", "expected a finite number >= 0"));
        }
        Ok(())
    }

    /// Format 2: the checked wiring ([`Plan`]); `None` for format 1. `file`
    /// names the manifest in errors.
    pub fn dataflow_plan(&self, file: &Path) -> Result<Option<Plan>, BundleError> {
        match &self.dataflow {
            Some(df) if self.format == FORMAT_DATAFLOW => df.resolve(self, &Ctx { file }).map(Some),
            _ => Ok(None),
        }
    }

    /// Every graph of the bundle with its manifest key (`graphs.encoder`,
    /// `dataflow.graphs.step`), in either format.
    pub fn all_graphs(&self) -> Vec<(String, &GraphSpec)> {
        let mut all: Vec<(String, &GraphSpec)> =
            self.graphs.iter().map(|(r, g)| (format!("graphs.{}", r.as_str()), g)).collect();
        if let Some(df) = &self.dataflow {
            all.extend(df.graphs.iter().map(|(name, g)| (format!("dataflow.graphs.{name}"), g)));
        }
        all
    }

    fn validate_dataflow(&self, ctx: &Ctx) -> Result<Plan, BundleError> {
        if !self.graphs.is_empty() {
            return Err(ctx.err("graphs", "format 2 names its graphs in [dataflow.graphs]"));
        }
        if self.vocab.is_some() {
            return Err(ctx.err("vocab", "format 2 tokenizes with [text] (a tokenizer.json), not a vocabulary"));
        }
        if let Some(t) = &self.text {
            check_rel_path(ctx, "text.tokenizer", &t.tokenizer)?;
            if t.template.matches("{instruction}").count() != 1 {
                return Err(
                    ctx.err("text.template", format!("expected `{{instruction}}` once, found {:?}", t.template))
                );
            }
            match (t.template.matches("{state}").count(), t.state_bins) {
                (0, None) => {}
                (1, Some(b)) if (2..=65_536).contains(&b) => {}
                (1, Some(b)) => return Err(ctx.err("text.state_bins", format!("expected 2 to 65536, found {b}"))),
                (1, None) => return Err(ctx.err("text.state_bins", "required with `{state}` in text.template")),
                (0, Some(_)) => {
                    return Err(ctx.err("text.state_bins", "only meaningful with `{state}` in text.template"))
                }
                _ => return Err(ctx.err("text.template", "`{state}` at most once")),
            }
            if !(1..=MAX_TOKENS).contains(&t.max_tokens) {
                return Err(ctx.err("text.max_tokens", format!("expected 1 to {MAX_TOKENS}, found {}", t.max_tokens)));
            }
            if t.pad_token.is_empty() {
                return Err(ctx.err("text.pad_token", "must not be empty"));
            }
        }
        if self.surprise_threshold.is_some() {
            return Err(ctx.err("surprise_threshold", "format 2 has no world-model dynamics"));
        }
        let df = self.dataflow.as_ref().ok_or_else(|| ctx.err("dataflow", "required with format = 2"))?;
        df.resolve(self, ctx)
    }

    fn validate_joints_and_action(&self, ctx: &Ctx) -> Result<(), BundleError> {
        let n = self.joints.names.len();
        if n == 0 || n > MAX_JOINTS {
            return Err(ctx.err("joints.names", format!("expected 1 to {MAX_JOINTS} joint names, found {n}")));
        }
        for (i, name) in self.joints.names.iter().enumerate() {
            if name.is_empty() || self.joints.names[..i].contains(name) {
                return Err(ctx.err(format!("joints.names[{i}]"), "must be non-empty and unique"));
            }
        }
        check_stats(ctx, "joints", self.joints.stats(), n)?;
        if !self.joints.units.is_empty() && self.joints.units.len() != n {
            return Err(ctx
                .err("joints.units", format!("expected one unit per joint ({n}), found {}", self.joints.units.len())));
        }
        let a = &self.action;
        if a.chunk_len == 0 {
            return Err(ctx.err("action.chunk_len", "expected >= 1"));
        }
        if !(a.rate_hz.is_finite() && a.rate_hz > 0.0) {
            return Err(ctx.err("action.rate_hz", "expected a finite number > 0"));
        }
        if !a.relative_exclude.is_empty() && !a.relative {
            return Err(ctx.err("action.relative_exclude", "needs `relative = true`"));
        }
        if a.relative && self.format != FORMAT_DATAFLOW {
            return Err(ctx.err("action.relative", "format 1 bundles have no relative actions; format 2 does"));
        }
        if a.relative && a.kind != ActionKindConfig::Absolute {
            return Err(ctx.err(
                "action.relative",
                "expected `kind = \"absolute\"`: relative actions are made absolute by the runtime",
            ));
        }
        for (i, token) in a.relative_exclude.iter().enumerate() {
            let t = token.to_lowercase();
            if t.is_empty() || !self.joints.names.iter().any(|n| n.to_lowercase().contains(&t)) {
                return Err(ctx.err(
                    format!("action.relative_exclude[{i}]"),
                    format!("`{token}` names none of the joints {:?}", self.joints.names),
                ));
            }
        }
        check_stats(ctx, "action", a.stats(), n)
    }

    /// Per joint, whether its action is relative to the observed state
    /// (`[action] relative`, less `relative_exclude`); all false without.
    pub fn relative_action_mask(&self) -> Vec<bool> {
        let exclude: Vec<String> = self.action.relative_exclude.iter().map(|t| t.to_lowercase()).collect();
        self.joints
            .names
            .iter()
            .map(|n| {
                let n = n.to_lowercase();
                self.action.relative && !exclude.iter().any(|t| n == *t || n.contains(t.as_str()))
            })
            .collect()
    }

    fn validate_graphs(&self, ctx: &Ctx) -> Result<(), BundleError> {
        let g = &self.graphs;
        let n = self.n_joints();
        let h = self.action.chunk_len;
        for (role, spec) in g.iter() {
            check_graph_spec(ctx, &format!("graphs.{}", role.as_str()), spec)?;
        }
        let (obs_role, obs) = match (&g.encoder, &g.policy) {
            (Some(_), Some(_)) => {
                return Err(ctx.err("graphs.policy", "a bundle has either `policy` or `encoder` + `action_head`"))
            }
            (None, None) => {
                return Err(ctx.err("graphs", "expected `graphs.encoder` + `graphs.action_head` or `graphs.policy`"))
            }
            _ => g.observation_graph().ok_or_else(|| ctx.err("graphs", "no observation graph"))?,
        };
        if g.policy.is_some() && (g.dynamics.is_some() || g.action_head.is_some()) {
            return Err(ctx.err("graphs.policy", "`dynamics` and `action_head` need `encoder`, not `policy`"));
        }
        if g.encoder.is_some() && g.action_head.is_none() {
            return Err(ctx.err("graphs.action_head", "required with `graphs.encoder`"));
        }
        // Text encoder: token ids in, embedding out.
        let mut embedding = 0;
        if let Some(te) = &g.text_encoder {
            expect_tensors(ctx, "graphs.text_encoder.inputs", &te.inputs, &[Want::rank2(DType::I64, None)])?;
            expect_tensors(ctx, "graphs.text_encoder.outputs", &te.outputs[..1], &[Want::rank2(DType::F32, None)])?;
            embedding = te.outputs[0].shape[1];
            match &self.vocab {
                Some(v) => check_rel_path(ctx, "vocab", v)?,
                None => return Err(ctx.err("vocab", "required with `graphs.text_encoder`")),
            }
        } else if self.vocab.is_some() {
            return Err(ctx.err("vocab", "only meaningful with `graphs.text_encoder`"));
        }
        // Observation graph: one image per camera, then joints, then embedding.
        let obs_key = format!("graphs.{}.inputs", obs_role.as_str());
        let cams = self.cameras.len();
        let want = cams + 1 + usize::from(embedding > 0);
        if obs.inputs.len() != want {
            return Err(ctx.err(
                obs_key,
                format!("expected {want} inputs (one image per camera = {cams}, joint state, {}instruction embedding), found {}",
                    if embedding > 0 { "" } else { "no " }, obs.inputs.len()),
            ));
        }
        for (i, t) in obs.inputs[..cams].iter().enumerate() {
            let ok = t.shape.len() == 4
                && (t.shape[1] == 1 || t.shape[1] == 3)
                && matches!(t.dtype.host(), DType::F32 | DType::U8);
            if !ok {
                return Err(ctx.err(
                    format!("{obs_key}[{i}]"),
                    format!("expected an image [1, 1|3, H, W] of f32 or u8, found {:?} {}", t.shape, t.dtype.as_str()),
                ));
            }
        }
        expect_tensors(
            ctx,
            &format!("{obs_key}[{cams}]"),
            &obs.inputs[cams..cams + 1],
            &[Want::rank2(DType::F32, Some(n))],
        )?;
        if embedding > 0 {
            expect_tensors(
                ctx,
                &format!("{obs_key}[{}]", cams + 1),
                &obs.inputs[cams + 1..],
                &[Want::rank2(DType::F32, Some(embedding))],
            )?;
        }
        let chunk = Want { dtype: DType::F32, shape: vec![Some(1), Some(h), Some(n)] };
        if let Some(p) = &g.policy {
            expect_tensors(ctx, "graphs.policy.outputs", &p.outputs[..1], std::slice::from_ref(&chunk))?;
            if self.surprise_threshold.is_some() {
                return Err(ctx.err("surprise_threshold", "needs `graphs.dynamics`"));
            }
            return Ok(());
        }
        // World model: encoder → latent; dynamics(latent, action) → latent; head(latent[, emb]) → chunk.
        let enc = g.encoder.as_ref().ok_or_else(|| ctx.err("graphs.encoder", "missing"))?;
        expect_tensors(ctx, "graphs.encoder.outputs", &enc.outputs[..1], &[Want::rank2(DType::F32, None)])?;
        let d = enc.outputs[0].shape[1];
        if let Some(dy) = &g.dynamics {
            expect_tensors(
                ctx,
                "graphs.dynamics.inputs",
                &dy.inputs,
                &[Want::rank2(DType::F32, Some(d)), Want::rank2(DType::F32, Some(n))],
            )?;
            expect_tensors(ctx, "graphs.dynamics.outputs", &dy.outputs[..1], &[Want::rank2(DType::F32, Some(d))])?;
            match self.surprise_threshold {
                Some(t) if t.is_finite() && t > 0.0 => {}
                Some(_) => return Err(ctx.err("surprise_threshold", "expected a finite number > 0")),
                None => return Err(ctx.err("surprise_threshold", "required with `graphs.dynamics`")),
            }
        } else if self.surprise_threshold.is_some() {
            return Err(ctx.err("surprise_threshold", "needs `graphs.dynamics`"));
        }
        let head = g.action_head.as_ref().ok_or_else(|| ctx.err("graphs.action_head", "missing"))?;
        let mut head_in = vec![Want::rank2(DType::F32, Some(d))];
        if embedding > 0 {
            head_in.push(Want::rank2(DType::F32, Some(embedding)));
        }
        expect_tensors(ctx, "graphs.action_head.inputs", &head.inputs, &head_in)?;
        expect_tensors(ctx, "graphs.action_head.outputs", &head.outputs[..1], &[chunk])
    }

    fn validate_cameras(&self, ctx: &Ctx, plan: Option<&Plan>) -> Result<(), BundleError> {
        let obs = self.graphs.observation_graph().map(|(_, g)| g);
        // The image tensor camera `i` feeds: by position in format 1, by wire in format 2.
        let tensor = |i: usize| match plan {
            None => obs.and_then(|g| g.inputs.get(i)),
            Some(p) => self.camera_input(p, i),
        };
        for (i, c) in self.cameras.iter().enumerate() {
            let key = format!("cameras[{i}]");
            if c.name.is_empty() || self.cameras[..i].iter().any(|o| o.name == c.name) {
                return Err(ctx.err(format!("{key}.name"), "must be non-empty and unique"));
            }
            if c.width == 0 || c.height == 0 || c.width > 8192 || c.height > 8192 {
                return Err(ctx.err(format!("{key}.width"), "expected 1 to 8192 pixels in width and height"));
            }
            if c.format == PixelFormat::Yuyv && c.width % 2 != 0 {
                return Err(ctx.err(format!("{key}.width"), "yuyv needs an even width"));
            }
            if c.absent && plan.is_none() {
                return Err(ctx.err(format!("{key}.absent"), "an absent camera needs format = 2 (its image mask)"));
            }
            if let Some(cr) = c.crop {
                if cr.width == 0
                    || cr.height == 0
                    || u64::from(cr.x) + u64::from(cr.width) > u64::from(c.width)
                    || u64::from(cr.y) + u64::from(cr.height) > u64::from(c.height)
                {
                    return Err(ctx.err(
                        format!("{key}.crop"),
                        format!("expected a non-empty rectangle inside {}x{}", c.width, c.height),
                    ));
                }
            }
            let Some(t) = tensor(i) else { continue };
            // [.., C, H, W]: rank 4, or 5 with a history (checked by the plan).
            let Some(&[ch, th, tw]) = t.shape.len().checked_sub(3).map(|k| &t.shape[k..]) else { continue };
            if [c.resize[0] as usize, c.resize[1] as usize] != [tw, th] {
                return Err(ctx.err(
                    format!("{key}.resize"),
                    format!("expected [{tw}, {th}] (width, height of input `{}`), found {:?}", t.name, c.resize),
                ));
            }
            if c.mean.len() != ch || c.std.len() != ch {
                return Err(ctx.err(
                    format!("{key}.mean"),
                    format!("expected {ch} values for mean and std (channels of `{}`)", t.name),
                ));
            }
            if c.mean.iter().any(|m| !m.is_finite()) || c.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                return Err(ctx.err(format!("{key}.std"), "expected finite means and finite stds > 0"));
            }
        }
        Ok(())
    }

    fn validate_files(&self, ctx: &Ctx) -> Result<(), BundleError> {
        for (i, f) in self.files.iter().enumerate() {
            check_rel_path(ctx, &format!("files[{i}].path"), &f.path)?;
            if f.path == MANIFEST_FILE || f.path == SIGNATURE_FILE {
                return Err(ctx.err(format!("files[{i}].path"), "the manifest and signature are not listed"));
            }
            if self.files[..i].iter().any(|o| o.path == f.path) {
                return Err(ctx.err(format!("files[{i}].path"), "listed twice"));
            }
            let ok = f.sha256.is_empty()
                || (f.sha256.len() == 64 && f.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            if !ok {
                return Err(ctx
                    .err(format!("files[{i}].sha256"), "expected 64 lower-case hex digits (or empty before signing)"));
            }
        }
        let mut needed: Vec<(String, &str)> =
            self.all_graphs().into_iter().map(|(key, g)| (format!("{key}.file"), g.file.as_str())).collect();
        if let Some(v) = &self.vocab {
            needed.push(("vocab".to_string(), v));
        }
        if let Some(t) = &self.text {
            needed.push(("text.tokenizer".to_string(), &t.tokenizer));
        }
        for (key, path) in needed {
            if self.digest_of(path).is_none() {
                return Err(ctx.err(key, format!("`{path}` must be listed in [[files]]")));
            }
        }
        Ok(())
    }
}

impl Manifest {
    /// Format 2: the image input camera `i` feeds (through `plan`).
    pub fn camera_input(&self, plan: &Plan, i: usize) -> Option<&TensorSpec> {
        let link = plan.links.iter().find(|l| l.source == Source::Image(i))?;
        self.dataflow.as_ref()?.graphs.get(&link.graph)?.inputs.iter().find(|t| t.name == link.input)
    }
}

/// The checks every graph gets in either format: a relative file path, at
/// least one input and output, named tensors of fixed shape with batch 1.
fn check_graph_spec(ctx: &Ctx, base: &str, spec: &GraphSpec) -> Result<(), BundleError> {
    check_rel_path(ctx, &format!("{base}.file"), &spec.file)?;
    for (kind, list) in [("inputs", &spec.inputs), ("outputs", &spec.outputs)] {
        if list.is_empty() {
            return Err(ctx.err(format!("{base}.{kind}"), "expected at least one tensor"));
        }
        for (i, t) in list.iter().enumerate() {
            if t.name.is_empty() {
                return Err(ctx.err(format!("{base}.{kind}[{i}].name"), "must not be empty"));
            }
            if list[..i].iter().any(|o| o.name == t.name) {
                return Err(ctx.err(format!("{base}.{kind}[{i}].name"), format!("`{}` listed twice", t.name)));
            }
            if t.shape.is_empty() || t.shape.contains(&0) || t.shape[0] != 1 {
                return Err(ctx.err(
                    format!("{base}.{kind}[{i}].shape"),
                    format!("expected a fixed shape with batch 1 and no zero dimension, found {:?}", t.shape),
                ));
            }
        }
    }
    Ok(())
}

/// Where a manifest lives (for error messages) inside a bundle.
pub fn manifest_path(bundle: &Path) -> PathBuf {
    bundle.join(MANIFEST_FILE)
}

struct Want {
    dtype: DType,
    shape: Vec<Option<usize>>,
}

impl Want {
    fn rank2(dtype: DType, last: Option<usize>) -> Self {
        Want { dtype, shape: vec![Some(1), last] }
    }
}

fn expect_tensors(ctx: &Ctx, key: &str, got: &[TensorSpec], want: &[Want]) -> Result<(), BundleError> {
    if got.len() != want.len() {
        return Err(ctx.err(key, format!("expected {} tensor(s), found {}", want.len(), got.len())));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let k = if want.len() == 1 && key.ends_with(']') { key.to_string() } else { format!("{key}[{i}]") };
        if g.dtype.host() != w.dtype {
            return Err(
                ctx.err(format!("{k}.dtype"), format!("expected {}, found {}", w.dtype.as_str(), g.dtype.as_str()))
            );
        }
        let shape_ok =
            g.shape.len() == w.shape.len() && g.shape.iter().zip(&w.shape).all(|(a, b)| b.is_none_or(|b| *a == b));
        if !shape_ok {
            let pretty: Vec<String> = w.shape.iter().map(|d| d.map_or("*".to_string(), |d| d.to_string())).collect();
            return Err(ctx.err(format!("{k}.shape"), format!("expected [{}], found {:?}", pretty.join(", "), g.shape)));
        }
    }
    Ok(())
}

fn check_stats(ctx: &Ctx, section: &str, stats: FeatureStats<'_>, n: usize) -> Result<(), BundleError> {
    let used = FeatureStats::keys(stats.mode);
    for (key, values) in stats.stats {
        if !used.contains(&key) {
            if !values.is_empty() {
                return Err(ctx.err(
                    format!("{section}.{key}"),
                    format!("not used with normalization = \"{}\" (it uses {used:?})", stats.mode.as_str()),
                ));
            }
            continue;
        }
        if values.len() != n {
            return Err(ctx.err(
                format!("{section}.{key}"),
                format!(
                    "expected {n} values (one per joint) for normalization = \"{}\", found {}",
                    stats.mode.as_str(),
                    values.len()
                ),
            ));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(ctx.err(format!("{section}.{key}[{i}]"), "expected a finite number"));
        }
    }
    if let Some(i) = stats.get("std").iter().position(|s| *s <= 0.0) {
        return Err(ctx.err(format!("{section}.std[{i}]"), "expected a finite number > 0"));
    }
    for (lo, hi) in [("min", "max"), ("q01", "q99")] {
        if let Some(i) = stats.get(lo).iter().zip(stats.get(hi)).position(|(l, h)| h < l) {
            return Err(ctx.err(format!("{section}.{hi}[{i}]"), format!("expected >= {section}.{lo}[{i}]")));
        }
    }
    Ok(())
}

fn check_rel_path(ctx: &Ctx, key: &str, path: &str) -> Result<(), BundleError> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !p.is_absolute()
        && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))
        && !path.contains('\\');
    if ok {
        Ok(())
    } else {
        Err(ctx.err(key, format!("expected a relative path inside the bundle without `..`, found {path:?}")))
    }
}

/// Best-effort dotted key for a byte offset of a TOML document: the last
/// table header before it plus the key on that line.
fn key_at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    // The key whose value holds the offset, inside an inline table: the
    // last `name =` before it on the line (`{ name = "x", dtype = "f8" }`).
    let upto = &line[..(offset - line_start.min(offset)).min(line.len())];
    let inner = |s: &str| {
        let lhs = &s[..s.rfind('=')?];
        lhs.rsplit(|c: char| c == '{' || c == ',' || c.is_whitespace()).find(|w| !w.is_empty()).map(str::to_string)
    };
    let key = if line.trim_start().starts_with('{') {
        // One element of an array of inline tables, one per line (as
        // manifests are written): `key = [` above, counted elements.
        let mut index = 0;
        let mut array = None;
        for l in before[..line_start].lines().rev().map(str::trim) {
            if l.starts_with('{') {
                index += 1;
            } else {
                array = l.split_once('=').map(|(k, _)| k.trim().to_string());
                break;
            }
        }
        array.map(|a| match inner(upto) {
            Some(k) => format!("{a}[{index}].{k}"),
            None => format!("{a}[{index}]"),
        })
    } else {
        let head = line.split('=').next().map(str::trim).filter(|k| !k.is_empty() && !k.starts_with('['));
        head.map(|h| match inner(upto) {
            Some(k) if upto.matches('=').count() > 1 => format!("{h}.{k}"),
            _ => h.to_string(),
        })
    };
    match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (Some(t), None) => t,
        (None, Some(k)) => k,
        (None, None) => "(document)".to_string(),
    }
}
