//! Format 2: named graphs, the dataflow between them, and an iterative head.
//!
//! ```toml
//! [dataflow]
//! wires = [
//!     { from = "obs.state", to = "encoder.state" },          # normalized joints [1, n]
//!     { from = "obs.state", to = "encoder.hist", history = 2 }, # the last 2: [1, 2, n]
//!     { from = "obs.image.front", to = "encoder.image" },    # a camera, preprocessed
//!     { from = "encoder.kv_*", to = "step.past_*" },         # a group by name pattern
//! ]
//! [dataflow.graphs.encoder]   # run once per inference, in wiring order
//! [dataflow.graphs.step]      # the head's step graph, run `steps` times
//! [dataflow.head]
//! graph = "step"
//! sample = "x_t"      # input that receives x (noise first); [1, H, n] f32
//! timestep = "t"      # input that receives t: [1] or [1, 1], f32 or i64
//! output = "v"        # output the schedule consumes (velocity, ε or x₀)
//! steps = 10
//! chunk_offset = 1    # the chunk is x[1 .. 1 + action.chunk_len] (default 0)
//! [dataflow.head.schedule]
//! kind = "flow_euler" # | "ddpm" | "ddim" (+ diffusers' scheduler parameters)
//! ```
//!
//! [`Dataflow::resolve`] checks the wiring against the graphs' declared
//! tensors (which `Graph::load` holds to the ONNX files) and turns it into a
//! [`Plan`]; every refusal names the key, the graph, the tensor and what was
//! expected.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Ctx, DType, GraphSpec, Manifest, Padding, PromptAxis, TensorSpec};
use crate::error::BundleError;
use crate::schedule::{
    BetaSchedule, Diffusion, DiffusionConfig, DiffusionKind, FlowEuler, Prediction, ScheduleError, Scheduler,
};

/// Named graphs, the wires between them, and the iterative head.
///
/// Field order matters for the canonical TOML (plain values first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataflow {
    /// `graph.output` holding the normalized chunk `[1, H, n]`, for
    /// pipelines without a head (with a head the final sample is the chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Which tensor feeds which graph input.
    #[serde(default)]
    pub wires: Vec<Wire>,
    /// The graphs by name (letters, digits, `_`, `-`; not `obs`).
    pub graphs: BTreeMap<String, GraphSpec>,
    /// The iterative head, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<HeadSpec>,
}

/// One wire: `from` feeds `to`.
///
/// `from` is `obs.state` (normalized joint positions `[1, n]` f32),
/// `obs.image.<camera>` (the camera after the manifest's preprocessing) or
/// `<graph>.<output>`; `to` is `<graph>.<input>`. The tensor part of both
/// may hold one `*` (a group: every output matching `from` feeds the input
/// named by `to` with the same text in place of `*`).
///
/// `history = k` (`obs.state` and `obs.image.<camera>`): the destination
/// holds the last `k` observations one policy step apart, oldest first,
/// `[1, k, n]` for the state, `[1, k, C, H, W]` for a camera — LeRobot's
/// `n_obs_steps` queues, which take one observation per `select_action`
/// call, one per policy step. The control loop keeps one per policy step and
/// hands the `k - 1` before the newest over with it
/// (`ganglion_core::Observation::past`); a caller that hands none over
/// calls once per policy step itself (a parity replay), and the slots hold
/// the observations of its last `k` calls: after a reset (load,
/// `reset_history`) the first fills every slot, then each call shifts one in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wire {
    /// Source.
    pub from: String,
    /// Destination.
    pub to: String,
    /// Observations kept (`obs.state`, `obs.image.<camera>`), >= 1; absent:
    /// the current one, `[1, n]` / `[1, C, H, W]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<usize>,
}

/// A step graph run `steps` times under a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSpec {
    /// Name of the step graph in `dataflow.graphs`.
    pub graph: String,
    /// Its input receiving the sample x (`[1, H, n]` f32).
    pub sample: String,
    /// Its input receiving the timestep (one element, f32 or i64).
    pub timestep: String,
    /// Its output the schedule consumes (same shape as the sample).
    pub output: String,
    /// Step-graph runs per inference, >= 1.
    pub steps: usize,
    /// First action of the final sample that goes into the chunk: the chunk
    /// is `x[chunk_offset .. chunk_offset + action.chunk_len]` of a sample
    /// `[1, H, n]` with `H >= chunk_offset + chunk_len` (LeRobot's Diffusion
    /// keeps actions from `n_obs_steps - 1` on). Absent: the sample is the
    /// chunk, `H = chunk_len`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_offset: Option<usize>,
    /// What the head does with the actions the robot is committed to while
    /// the inference runs (`Observation::committed`). Default: inpaint.
    #[serde(default, skip_serializing_if = "CommittedActions::is_default")]
    pub committed: CommittedActions,
    /// `committed = "guided"`: LeRobot's `RTCConfig` (defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance: Option<GuidanceSpec>,
    /// The schedule.
    pub schedule: ScheduleSpec,
}

/// `dataflow.head.committed`: real-time chunking for an iterative head.
///
/// While a chunk is being computed the robot keeps executing the previous
/// plan; the executor hands the policy the targets it is committed to for
/// the policy steps after the observation (`Observation::committed`, as
/// many as the expected latency covers). Without them a new chunk is
/// sampled independently of the one executing and may start elsewhere: a
/// jump at every chunk boundary, which the executor can only ramp over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommittedActions {
    /// Hard-masked inpainting (real-time chunking's training-free variant):
    /// before every step, the sample's rows for the committed actions
    /// (chunk actions 1..=k) are set to those actions, normalized, noised to
    /// the step's level with the rows' own initial noise; after the last
    /// step they are the actions exactly. The free rows are denoised
    /// conditioned on them, so the new chunk continues the executing one.
    #[default]
    Inpaint,
    /// Real-time chunking's guided variant as LeRobot 0.6.1 runs it
    /// (`lerobot.policies.rtc`, flow matching only): the policy keeps its
    /// previous chunk (normalized) and, at every step, pulls the predicted
    /// clean sample `x₁ = x − t·v` towards what is left of it, weighted per
    /// action by the prefix schedule (1 for the actions executed while the
    /// inference runs, then decaying to 0 at the execution horizon):
    /// `v ← v − g(t)·(prev − x₁)·w`, `g` LeRobot's guidance weight. The
    /// committed actions say only how many actions run during the inference
    /// (their count + 1: the chunk's action 0 is past too when it arrives).
    /// LeRobot evaluates the velocity before it asks for gradients, so its
    /// correction is the weighted error itself, not its product with the
    /// model's Jacobian; this is that.
    Guided,
    /// Not used: every chunk is sampled from noise alone.
    Ignore,
}

/// `[dataflow.head.guidance]`: LeRobot's `RTCConfig` for
/// `committed = "guided"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuidanceSpec {
    /// Actions of the previous chunk the new one is guided towards
    /// (`execution_horizon`, LeRobot's default 10), >= 1; clamped to what is
    /// left of the previous chunk.
    #[serde(default = "default_execution_horizon")]
    pub execution_horizon: usize,
    /// Cap on the guidance weight (`max_guidance_weight`, default 10), > 0.
    #[serde(default = "default_max_guidance_weight")]
    pub max_guidance_weight: f32,
    /// How the weights fall between the delay and the horizon
    /// (`prefix_attention_schedule`, default linear).
    #[serde(default)]
    pub schedule: PrefixSchedule,
}

impl Default for GuidanceSpec {
    fn default() -> Self {
        GuidanceSpec {
            execution_horizon: default_execution_horizon(),
            max_guidance_weight: default_max_guidance_weight(),
            schedule: PrefixSchedule::default(),
        }
    }
}

fn default_execution_horizon() -> usize {
    10
}

fn default_max_guidance_weight() -> f32 {
    10.0
}

/// LeRobot's `RTCAttentionSchedule`: the weight of each action of the
/// previous chunk, 1 for the `d` executed during the inference, then up to
/// the horizon `e`, 0 after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixSchedule {
    /// 1 for the first `d`, then `linspace(1, 0, e - d + 2)[1..-1]`.
    #[default]
    Linear,
    /// The linear weights `w` as `w·(e^w − 1)/(e − 1)`.
    Exp,
    /// 1 up to the horizon.
    Ones,
    /// 1 for the first `d` only.
    Zeros,
}

impl CommittedActions {
    fn is_default(&self) -> bool {
        *self == CommittedActions::default()
    }
}

/// Which schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Flow matching, Euler, t from 1 to 0 (π0 / SmolVLA).
    FlowEuler,
    /// diffusers' `DDPMScheduler`.
    Ddpm,
    /// diffusers' `DDIMScheduler`.
    Ddim,
}

/// A schedule's parameters, spelled as diffusers' scheduler config keys;
/// absent keys take diffusers' defaults. `flow_euler` takes none; `eta` and
/// `set_alpha_to_one` are DDIM's only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// The schedule.
    pub kind: ScheduleKind,
    /// Training timesteps T (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_train_timesteps: Option<usize>,
    /// `linear` (default) or `squaredcos_cap_v2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_schedule: Option<BetaSchedule>,
    /// First beta of `linear` (default 0.0001).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_start: Option<f64>,
    /// Last beta of `linear` (default 0.02).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_end: Option<f64>,
    /// `epsilon` (default) or `sample`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_type: Option<Prediction>,
    /// Clamp the predicted x₀ (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_sample: Option<bool>,
    /// The clamp's bound (default 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_sample_range: Option<f64>,
    /// Added to every timestep (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_offset: Option<usize>,
    /// DDIM: ᾱ past the last step is 1 (default true) or `alphas_cumprod[0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_alpha_to_one: Option<bool>,
    /// DDIM: noise weight η (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<f64>,
}

impl ScheduleSpec {
    /// The schedule for `steps` steps; errors name the parameter.
    pub fn build(&self, steps: usize) -> Result<Scheduler, ScheduleError> {
        let kind = match self.kind {
            ScheduleKind::FlowEuler => {
                if let Some(key) = self.set_keys().first() {
                    return Err(ScheduleError::Parameter {
                        key,
                        problem: "flow_euler takes no parameters besides `kind`".into(),
                    });
                }
                return FlowEuler::new(steps).map(Scheduler::FlowEuler);
            }
            ScheduleKind::Ddpm => {
                for key in ["set_alpha_to_one", "eta"] {
                    if self.set_keys().contains(&key) {
                        return Err(ScheduleError::Parameter {
                            key,
                            problem: "a DDIM parameter (kind = \"ddpm\")".into(),
                        });
                    }
                }
                DiffusionKind::Ddpm
            }
            ScheduleKind::Ddim => DiffusionKind::Ddim,
        };
        let d = DiffusionConfig::diffusers_default(kind);
        let cfg = DiffusionConfig {
            kind,
            num_train_timesteps: self.num_train_timesteps.unwrap_or(d.num_train_timesteps),
            beta_start: self.beta_start.unwrap_or(d.beta_start),
            beta_end: self.beta_end.unwrap_or(d.beta_end),
            beta_schedule: self.beta_schedule.unwrap_or(d.beta_schedule),
            prediction: self.prediction_type.unwrap_or(d.prediction),
            clip_sample: self.clip_sample.unwrap_or(d.clip_sample),
            clip_sample_range: self.clip_sample_range.unwrap_or(d.clip_sample_range),
            steps_offset: self.steps_offset.unwrap_or(d.steps_offset),
            set_alpha_to_one: self.set_alpha_to_one.unwrap_or(d.set_alpha_to_one),
            eta: self.eta.unwrap_or(d.eta),
        };
        Diffusion::new(&cfg, steps).map(Scheduler::Diffusion)
    }

    fn set_keys(&self) -> Vec<&'static str> {
        [
            ("num_train_timesteps", self.num_train_timesteps.is_some()),
            ("beta_schedule", self.beta_schedule.is_some()),
            ("beta_start", self.beta_start.is_some()),
            ("beta_end", self.beta_end.is_some()),
            ("prediction_type", self.prediction_type.is_some()),
            ("clip_sample", self.clip_sample.is_some()),
            ("clip_sample_range", self.clip_sample_range.is_some()),
            ("steps_offset", self.steps_offset.is_some()),
            ("set_alpha_to_one", self.set_alpha_to_one.is_some()),
            ("eta", self.eta.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }
}

/// Where a wired tensor comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Normalized joint positions (zero-padded when the input is wider).
    State,
    /// The prompt's token ids `[1, max_tokens]` i64 (`[text]`).
    Tokens,
    /// Which token slots hold the prompt `[1, max_tokens]` bool (`[text]`).
    TokenMask,
    /// Camera `i` of `cameras`, preprocessed.
    Image(usize),
    /// Whether camera `i` of `cameras` is on the robot (bool, every element:
    /// false for an `absent` camera).
    ImageMask(usize),
    /// An output of a graph run before.
    Output {
        /// Graph name.
        graph: String,
        /// Output name.
        output: String,
    },
}

/// One resolved wire: a source feeds one graph input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Where the values come from.
    pub source: Source,
    /// Graph fed.
    pub graph: String,
    /// Its input.
    pub input: String,
    /// The `wires` entry it came from.
    pub wire: usize,
    /// Observations the input holds (`history`; 1 without).
    pub history: usize,
}

/// The checked wiring, patterns expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Graphs run once per inference, in this order (the head's excluded).
    pub order: Vec<String>,
    /// Every graph input except the head's sample and timestep, fed once.
    pub links: Vec<Link>,
    /// `(graph, output)` holding the chunk, or `None`: the head's sample.
    pub result: Option<(String, String)>,
    /// The head's schedule, built.
    pub scheduler: Option<Scheduler>,
}

fn describe(t: &TensorSpec) -> String {
    format!("{} {}", t.shape_text(), t.dtype.as_str())
}

fn split_endpoint<'a>(ctx: &Ctx, key: &str, s: &'a str) -> Result<(&'a str, &'a str), BundleError> {
    match s.split_once('.') {
        Some((g, t)) if !g.is_empty() && !t.is_empty() => Ok((g, t)),
        _ => Err(ctx.err(key, format!("expected `<graph>.<tensor>`, found {s:?}"))),
    }
}

/// `Some(captured text)` when `name` matches `pattern` (one `*` at most).
fn capture<'a>(pattern: &str, name: &'a str) -> Option<&'a str> {
    match pattern.split_once('*') {
        None => (pattern == name).then_some(""),
        Some((pre, post)) => (name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post))
            .then(|| &name[pre.len()..name.len() - post.len()]),
    }
}

impl Dataflow {
    /// Checks the wiring of `m` (format 2) and returns the plan.
    pub(super) fn resolve(&self, m: &Manifest, ctx: &Ctx) -> Result<Plan, BundleError> {
        for (name, spec) in &self.graphs {
            let ok = !name.is_empty()
                && name != "obs"
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err(ctx.err(
                    format!("dataflow.graphs.{name}"),
                    "graph names are letters, digits, `_` and `-`, and not `obs`",
                ));
            }
            super::check_graph_spec(ctx, &format!("dataflow.graphs.{name}"), spec)?;
        }
        if self.graphs.is_empty() {
            return Err(ctx.err("dataflow.graphs", "expected at least one graph"));
        }
        let head = self.head.as_ref();
        let head_graph = match head {
            Some(h) if self.graphs.contains_key(&h.graph) => Some(h.graph.as_str()),
            Some(h) => return Err(ctx.err("dataflow.head.graph", format!("no graph `{}` in dataflow.graphs", h.graph))),
            None => None,
        };
        let links = self.expand_wires(m, ctx, head)?;
        self.check_fixed_where_needed(ctx, &links, head)?;
        if m.text.is_some() && !links.iter().any(|l| l.source == Source::Tokens) {
            return Err(ctx.err("text", "the tokens feed no graph (wire `obs.tokens`)"));
        }
        // Every input fed exactly once (the head's sample and timestep by the schedule).
        for (name, spec) in &self.graphs {
            for (i, t) in spec.inputs.iter().enumerate() {
                let by_head = head.is_some_and(|h| h.graph == *name && (h.sample == t.name || h.timestep == t.name));
                if !by_head && !links.iter().any(|l| l.graph == *name && l.input == t.name) {
                    return Err(ctx.err(
                        format!("dataflow.graphs.{name}.inputs[{i}]"),
                        format!("input `{}` of graph `{name}` is fed by no wire", t.name),
                    ));
                }
            }
        }
        for (i, c) in m.cameras.iter().enumerate() {
            if !links.iter().any(|l| l.source == Source::Image(i)) {
                return Err(ctx.err(
                    format!("cameras[{i}]"),
                    format!("camera `{}` feeds no graph (wire `obs.image.{}`)", c.name, c.name),
                ));
            }
        }
        let scheduler = match head {
            Some(h) => Some(self.check_head(m, ctx, h)?),
            None => None,
        };
        let result = self.check_result(m, ctx, head.is_some())?;
        let order = self.order(ctx, &links, head_graph, result.as_ref())?;
        Ok(Plan { order, links, result, scheduler })
    }

    /// Only the prompt's tensors and what a graph computes from them may
    /// follow the prompt's length: the state, the cameras and their masks,
    /// the head's sample, timestep and output have fixed shapes.
    fn check_fixed_where_needed(&self, ctx: &Ctx, links: &[Link], head: Option<&HeadSpec>) -> Result<(), BundleError> {
        let refuse = |key: String, name: &str, what: &str| {
            ctx.err(key, format!("`{name}` is {what}: its shape is fixed, not an expression of the prompt's length"))
        };
        let input_at = |graph: &str, name: &str| {
            self.graphs
                .get(graph)
                .and_then(|g| g.inputs.iter().enumerate().find(|(_, t)| t.name == name))
                .map(|(i, t)| (format!("dataflow.graphs.{graph}.inputs[{i}].shape"), t))
        };
        for l in links {
            let what = match l.source {
                Source::State => "fed the joint state",
                Source::Image(_) => "fed a camera",
                Source::ImageMask(_) => "fed a camera's mask",
                _ => continue,
            };
            if let Some((key, t)) = input_at(&l.graph, &l.input).filter(|(_, t)| t.follows_prompt()) {
                return Err(refuse(key, &t.name, what));
            }
        }
        if let Some(h) = head {
            for (name, what) in [(&h.sample, "the head's sample"), (&h.timestep, "the head's timestep")] {
                if let Some((key, t)) = input_at(&h.graph, name).filter(|(_, t)| t.follows_prompt()) {
                    return Err(refuse(key, &t.name, what));
                }
            }
            let output = self
                .graphs
                .get(&h.graph)
                .and_then(|g| g.outputs.iter().position(|t| t.name == h.output && t.follows_prompt()));
            if let Some(i) = output {
                return Err(refuse(
                    format!("dataflow.graphs.{}.outputs[{i}].shape", h.graph),
                    &h.output,
                    "the head's output",
                ));
            }
        }
        Ok(())
    }

    fn expand_wires(&self, m: &Manifest, ctx: &Ctx, head: Option<&HeadSpec>) -> Result<Vec<Link>, BundleError> {
        let n = m.n_joints();
        let mut links: Vec<Link> = Vec::new();
        for (w, wire) in self.wires.iter().enumerate() {
            let key = format!("dataflow.wires[{w}]");
            let (to_graph, to_pat) = split_endpoint(ctx, &format!("{key}.to"), &wire.to)?;
            let dst = self
                .graphs
                .get(to_graph)
                .ok_or_else(|| ctx.err(format!("{key}.to"), format!("no graph `{to_graph}` in dataflow.graphs")))?;
            if to_pat.matches('*').count() > 1 || wire.from.matches('*').count() > 1 {
                return Err(ctx.err(key, "a pattern holds one `*` at most"));
            }
            // (source, its tensor spec or None for an image, destination input name)
            let mut pairs: Vec<(Source, Option<TensorSpec>, String)> = Vec::new();
            let history = wire.history.unwrap_or(1);
            if wire.history == Some(0) {
                return Err(ctx.err(format!("{key}.history"), "expected at least 1 observation"));
            }
            if wire.history.is_some() && wire.from != "obs.state" && !wire.from.starts_with("obs.image.") {
                return Err(ctx.err(
                    format!("{key}.history"),
                    format!(
                        "only `obs.state` and `obs.image.<camera>` keep a history (not yet graph outputs), found {:?}",
                        wire.from
                    ),
                ));
            }
            if let Some(rest) = wire.from.strip_prefix("obs.") {
                if to_pat.contains('*') || wire.from.contains('*') {
                    return Err(ctx.err(format!("{key}.from"), "observation sources take no pattern"));
                }
                let src = if rest == "state" {
                    let shape = if wire.history.is_some() { vec![1, history, n] } else { vec![1, n] };
                    let t = TensorSpec::fixed("state", shape, DType::F32);
                    (Source::State, Some(t))
                } else if let Some(cam) = rest.strip_prefix("image.") {
                    let i =
                        m.cameras.iter().position(|c| c.name == cam).ok_or_else(|| {
                            ctx.err(format!("{key}.from"), format!("no camera `{cam}` in [[cameras]]"))
                        })?;
                    // One preprocessed tensor per camera: a second consumer
                    // would need a copy the loader does not make.
                    if let Some(prev) = links.iter().find(|l| l.source == Source::Image(i)) {
                        return Err(ctx.err(
                            format!("{key}.from"),
                            format!(
                                "camera `{cam}` already feeds graph `{}` (dataflow.wires[{}])",
                                prev.graph, prev.wire
                            ),
                        ));
                    }
                    (Source::Image(i), None)
                } else if let Some(cam) = rest.strip_prefix("image_mask.") {
                    let i =
                        m.cameras.iter().position(|c| c.name == cam).ok_or_else(|| {
                            ctx.err(format!("{key}.from"), format!("no camera `{cam}` in [[cameras]]"))
                        })?;
                    (Source::ImageMask(i), None)
                } else if rest == "tokens" || rest == "token_mask" {
                    let text = m.text.as_ref().ok_or_else(|| {
                        ctx.err(format!("{key}.from"), format!("{:?} needs a [text] table (the tokenizer)", wire.from))
                    })?;
                    let (source, dtype) =
                        if rest == "tokens" { (Source::Tokens, DType::I64) } else { (Source::TokenMask, DType::Bool) };
                    if let Some(prev) = links.iter().find(|l| l.source == source) {
                        return Err(ctx.err(
                            format!("{key}.from"),
                            format!(
                                "{:?} already feeds graph `{}` (dataflow.wires[{}])",
                                wire.from, prev.graph, prev.wire
                            ),
                        ));
                    }
                    // `[1, max_tokens]`, or `[1, L]` when the prompt is not padded.
                    let mut t = TensorSpec::fixed(rest, vec![1, text.max_tokens], dtype);
                    if text.padding == Padding::Longest {
                        t.prompt_axes.push(PromptAxis { axis: 1, scale: 1, offset: 0 });
                    }
                    (source, Some(t))
                } else {
                    return Err(ctx.err(
                        format!("{key}.from"),
                        format!(
                            "expected `obs.state`, `obs.tokens`, `obs.token_mask`, `obs.image.<camera>` or `obs.image_mask.<camera>`, found {:?}",
                            wire.from
                        ),
                    ));
                };
                pairs.push((src.0, src.1, to_pat.to_string()));
            } else {
                let (from_graph, from_pat) = split_endpoint(ctx, &format!("{key}.from"), &wire.from)?;
                let src = self.graphs.get(from_graph).ok_or_else(|| {
                    ctx.err(format!("{key}.from"), format!("no graph `{from_graph}` in dataflow.graphs"))
                })?;
                if head.is_some_and(|h| h.graph == from_graph) {
                    return Err(ctx.err(
                        format!("{key}.from"),
                        format!("graph `{from_graph}` is the head: its output feeds the schedule, not other graphs"),
                    ));
                }
                if from_pat.contains('*') != to_pat.contains('*') {
                    return Err(ctx.err(key, "`from` and `to` both hold a `*` or neither does"));
                }
                for t in &src.outputs {
                    if let Some(cap) = capture(from_pat, &t.name) {
                        let source = Source::Output { graph: from_graph.to_string(), output: t.name.clone() };
                        pairs.push((source, Some(t.clone()), to_pat.replacen('*', cap, 1)));
                    }
                }
                if pairs.is_empty() {
                    let names: Vec<&str> = src.outputs.iter().map(|t| t.name.as_str()).collect();
                    return Err(ctx.err(
                        format!("{key}.from"),
                        format!("graph `{from_graph}` has no output matching `{from_pat}` (outputs: {names:?})"),
                    ));
                }
            }
            for (source, spec, input) in pairs {
                let Some((i, dt)) = dst.inputs.iter().enumerate().find(|(_, t)| t.name == input) else {
                    let names: Vec<&str> = dst.inputs.iter().map(|t| t.name.as_str()).collect();
                    return Err(ctx.err(
                        format!("{key}.to"),
                        format!("graph `{to_graph}` has no input `{input}` (inputs: {names:?})"),
                    ));
                };
                let at = format!("dataflow.graphs.{to_graph}.inputs[{i}]");
                if head.is_some_and(|h| h.graph == to_graph && (h.sample == input || h.timestep == input)) {
                    return Err(ctx.err(
                        format!("{key}.to"),
                        format!("input `{input}` of graph `{to_graph}` is fed by the schedule (head sample/timestep)"),
                    ));
                }
                if let Some(prev) = links.iter().find(|l| l.graph == to_graph && l.input == input) {
                    return Err(ctx.err(
                        format!("{key}.to"),
                        format!(
                            "input `{input}` of graph `{to_graph}` is already fed by dataflow.wires[{}]",
                            prev.wire
                        ),
                    ));
                }
                if let Source::Output { graph, .. } = &source {
                    if graph == to_graph {
                        return Err(ctx.err(key, format!("graph `{to_graph}` feeds itself")));
                    }
                }
                // The state may feed a wider input: LeRobot pads it to the
                // model's `max_state_dim` with zeros after normalizing.
                // An observation is made in the runtime's host type (f32,
                // i64) and converted by the backend to the graph's (f16,
                // bf16, i32); a graph output feeds only its own type.
                let same_type = |s: &TensorSpec| match source {
                    Source::Output { .. } => s.dtype == dt.dtype,
                    _ => s.dtype.host() == dt.dtype.host(),
                };
                let padded_state = |s: &TensorSpec| {
                    source == Source::State
                        && same_type(s)
                        && !dt.follows_prompt()
                        && s.shape.len() == dt.shape.len()
                        && s.shape.iter().zip(&dt.shape).rev().skip(1).all(|(a, b)| a == b)
                        && dt.shape.last() >= s.shape.last()
                };
                let same_shape = |s: &TensorSpec| s.shape == dt.shape && s.prompt_axes == dt.prompt_axes;
                match &spec {
                    Some(s) if (!same_shape(s) || !same_type(s)) && !padded_state(s) => {
                        return Err(ctx.err(
                            format!("{key}.to"),
                            format!(
                                "input `{input}` of graph `{to_graph}` ({at}) is {}, its source `{}` is {}",
                                describe(dt),
                                match &source {
                                    Source::Output { graph, output } => format!("{graph}.{output}"),
                                    _ => wire.from.clone(),
                                },
                                describe(s),
                            ) + if source == Source::State {
                                " (or wider in the last dimension: zero-padded)"
                            } else {
                                ""
                            },
                        ));
                    }
                    Some(_) => {}
                    None if matches!(source, Source::ImageMask(_)) => {
                        if dt.dtype != DType::Bool {
                            return Err(ctx.err(
                                format!("{key}.to"),
                                format!(
                                    "input `{input}` of graph `{to_graph}` ({at}) is {}: an image mask is bool",
                                    describe(dt)
                                ),
                            ));
                        }
                    }
                    None => {
                        // [1, C, H, W], or [1, k, C, H, W] with `history = k`.
                        let lead: &[usize] = if wire.history.is_some() { &[1, history] } else { &[1] };
                        let ok = dt.shape.len() == lead.len() + 3
                            && dt.shape.starts_with(lead)
                            && matches!(dt.shape[lead.len()], 1 | 3)
                            && matches!(dt.dtype.host(), DType::F32 | DType::U8);
                        if !ok {
                            let want = if wire.history.is_some() {
                                format!("[1, {history}, 1|3, H, W]")
                            } else {
                                "[1, 1|3, H, W]".to_string()
                            };
                            return Err(ctx.err(
                                format!("{key}.to"),
                                format!(
                                    "input `{input}` of graph `{to_graph}` ({at}) is {}: an image is {want} f32 (or f16, bf16) or u8",
                                    describe(dt)
                                ),
                            ));
                        }
                    }
                }
                links.push(Link { source, graph: to_graph.to_string(), input, wire: w, history });
            }
        }
        Ok(links)
    }

    fn check_head(&self, m: &Manifest, ctx: &Ctx, h: &HeadSpec) -> Result<Scheduler, BundleError> {
        let g = self
            .graphs
            .get(&h.graph)
            .ok_or_else(|| ctx.err("dataflow.head.graph", format!("no graph `{}` in dataflow.graphs", h.graph)))?;
        let find = |list: &[TensorSpec], name: &str, what: &str, key: &str| {
            list.iter().find(|t| t.name == name).cloned().ok_or_else(|| {
                let names: Vec<&str> = list.iter().map(|t| t.name.as_str()).collect();
                ctx.err(
                    format!("dataflow.head.{key}"),
                    format!("graph `{}` has no {what} `{name}` ({what}s: {names:?})", h.graph),
                )
            })
        };
        let sample = find(&g.inputs, &h.sample, "input", "sample")?;
        let (n, len) = (m.n_joints(), m.action.chunk_len);
        // x is [1, H, D]: H actions from `chunk_offset` on make the chunk; D
        // may exceed the joints (LeRobot pads actions to `max_action_dim`),
        // the chunk keeps the first n of each action.
        let off = h.chunk_offset.unwrap_or(0);
        let fits = sample.dtype.host() == DType::F32
            && sample.shape.len() == 3
            && sample.shape[2] >= n
            && match h.chunk_offset {
                None => sample.shape[1] == len,
                Some(_) => sample.shape[1] >= off + len,
            };
        if !fits {
            let (key, rows) = match h.chunk_offset {
                None => ("sample", format!("{len} (action.chunk_len)")),
                Some(_) => ("chunk_offset", format!(">= chunk_offset + action.chunk_len = {}", off + len)),
            };
            return Err(ctx.err(
                format!("dataflow.head.{key}"),
                format!(
                    "input `{}` of graph `{}` is {}, expected [1, H, D] f32, f16 or bf16 with H {rows} and D >= {n} (joints)",
                    sample.name,
                    h.graph,
                    describe(&sample),
                ),
            ));
        }
        let t = find(&g.inputs, &h.timestep, "input", "timestep")?;
        if t.name == sample.name {
            return Err(ctx.err("dataflow.head.timestep", "the timestep and the sample are different inputs"));
        }
        let flow = h.schedule.kind == ScheduleKind::FlowEuler;
        if t.len() != 1 || !(t.dtype.host() == DType::F32 || (t.dtype.host() == DType::I64 && !flow)) {
            return Err(ctx.err(
                "dataflow.head.timestep",
                format!(
                    "input `{}` of graph `{}` is {}, expected one element of f32, f16, bf16{}",
                    t.name,
                    h.graph,
                    describe(&t),
                    if flow { " (flow matching time is continuous)" } else { ", i64 or i32" }
                ),
            ));
        }
        let out = find(&g.outputs, &h.output, "output", "output")?;
        if out.shape != sample.shape || out.dtype.host() != DType::F32 {
            return Err(ctx.err(
                "dataflow.head.output",
                format!(
                    "output `{}` of graph `{}` is {}, expected the sample's {}",
                    out.name,
                    h.graph,
                    describe(&out),
                    describe(&sample)
                ),
            ));
        }
        self.check_guidance(m, ctx, h)?;
        h.schedule.build(h.steps).map_err(|e| match e {
            ScheduleError::NoSteps | ScheduleError::TooManySteps { .. } => {
                ctx.err("dataflow.head.steps", e.to_string())
            }
            ScheduleError::Parameter { key, problem } => ctx.err(format!("dataflow.head.schedule.{key}"), problem),
        })
    }

    /// `committed = "guided"` and its `[dataflow.head.guidance]`.
    fn check_guidance(&self, m: &Manifest, ctx: &Ctx, h: &HeadSpec) -> Result<(), BundleError> {
        if h.committed != CommittedActions::Guided {
            return match h.guidance {
                Some(_) => Err(ctx.err("dataflow.head.guidance", "only with dataflow.head.committed = \"guided\"")),
                None => Ok(()),
            };
        }
        if h.schedule.kind != ScheduleKind::FlowEuler {
            return Err(ctx.err(
                "dataflow.head.committed",
                "\"guided\" is real-time chunking for flow matching (LeRobot's rtc): needs schedule kind = \"flow_euler\"",
            ));
        }
        if h.chunk_offset.unwrap_or(0) != 0 {
            return Err(
                ctx.err("dataflow.head.committed", "\"guided\" needs the sample to be the chunk (no chunk_offset)")
            );
        }
        // The previous chunk is kept normalized; relative or delta actions
        // would need it re-expressed from the new state.
        if m.action.kind == super::ActionKindConfig::Delta || m.relative_action_mask().iter().any(|&r| r) {
            return Err(ctx.err(
                "dataflow.head.committed",
                "\"guided\" guides towards the previous chunk as it was computed: absolute actions only (not delta or relative)",
            ));
        }
        // A horizon beyond the sample is clamped at run time to what is
        // left of the previous chunk, as LeRobot clamps it.
        let g = h.guidance.unwrap_or_default();
        if g.execution_horizon == 0 {
            return Err(ctx.err("dataflow.head.guidance.execution_horizon", "expected at least 1 action"));
        }
        if !(g.max_guidance_weight.is_finite() && g.max_guidance_weight > 0.0) {
            return Err(ctx.err(
                "dataflow.head.guidance.max_guidance_weight",
                format!("expected a finite number > 0, found {}", g.max_guidance_weight),
            ));
        }
        Ok(())
    }

    fn check_result(&self, m: &Manifest, ctx: &Ctx, has_head: bool) -> Result<Option<(String, String)>, BundleError> {
        let r = match (&self.result, has_head) {
            (Some(_), true) => {
                return Err(ctx.err("dataflow.result", "with a head the final sample is the result; remove `result`"))
            }
            (None, true) => return Ok(None),
            (None, false) => return Err(ctx.err("dataflow.result", "required without `dataflow.head`")),
            (Some(r), false) => r,
        };
        let (g, t) = split_endpoint(ctx, "dataflow.result", r)?;
        let spec = self.graphs.get(g).and_then(|s| s.outputs.iter().find(|o| o.name == t)).ok_or_else(|| {
            ctx.err("dataflow.result", format!("no output `{t}` of a graph `{g}` in dataflow.graphs"))
        })?;
        let chunk = [1, m.action.chunk_len, m.n_joints()];
        if spec.shape != chunk || spec.follows_prompt() || spec.dtype.host() != DType::F32 {
            return Err(
                ctx.err("dataflow.result", format!("`{r}` is {}, expected {chunk:?} f32, f16 or bf16", describe(spec)))
            );
        }
        Ok(Some((g.to_string(), t.to_string())))
    }

    /// The once-per-inference graphs in dependency order (Kahn, ties by name).
    fn order(
        &self,
        ctx: &Ctx,
        links: &[Link],
        head: Option<&str>,
        result: Option<&(String, String)>,
    ) -> Result<Vec<String>, BundleError> {
        let deps = |g: &str| -> Vec<&str> {
            links
                .iter()
                .filter(|l| l.graph == g)
                .filter_map(|l| match &l.source {
                    Source::Output { graph, .. } => Some(graph.as_str()),
                    _ => None,
                })
                .collect()
        };
        let mut pending: Vec<&str> = self.graphs.keys().map(String::as_str).filter(|g| Some(*g) != head).collect();
        let mut order: Vec<String> = Vec::with_capacity(pending.len());
        while !pending.is_empty() {
            let Some(i) = pending.iter().position(|g| deps(g).iter().all(|d| order.iter().any(|o| o == d))) else {
                return Err(ctx.err("dataflow.wires", format!("the graphs {pending:?} feed each other in a cycle")));
            };
            order.push(pending.remove(i).to_string());
        }
        for g in &order {
            let feeds = links.iter().any(|l| matches!(&l.source, Source::Output { graph, .. } if graph == g));
            if !feeds && result.is_none_or(|(r, _)| r != g) {
                return Err(ctx
                    .err(format!("dataflow.graphs.{g}"), format!("graph `{g}` feeds no graph and is not the result")));
            }
        }
        Ok(order)
    }
}
