//! Format 2: named graphs run along the manifest's dataflow, then an
//! iterative head (a step graph run `steps` times under a schedule).
//!
//! Per observation:
//! 1. the normalized joint state and each preprocessed camera are written
//!    into the inputs the wires name (images straight into the input buffer);
//!    a `history = k` wire's input holds the last `k` states or frames one
//!    policy step apart, oldest first: the observation's `past` (the control
//!    loop's one per policy step) then itself; without `past`, the slots
//!    shift by one per call and the newest goes last (after a reset the first
//!    observation fills every slot, as LeRobot's observation queues do);
//! 2. the once-per-inference graphs run in dependency order; after each, its
//!    wired outputs go to the inputs they feed: handed over (the two buffers
//!    swap) when an output feeds one input, else copied. The head's
//!    conditioning inputs (a prefix's KV cache) are written once and handed
//!    to its engine once for every step ([`Graph::hold_inputs`]);
//! 3. with a head: x ← the injected sample or noise from the seeded stream
//!    ([`crate::noise`], stream = the observation's request id), or from the
//!    installed [`NoiseSource`]; then for
//!    each step k the committed actions are inpainted ([`Inpaint`]), the
//!    timestep is written, the step graph runs, and the
//!    schedule updates x in place from its output (DDPM draws the step's
//!    noise from the same stream);
//! 4. the result (the final x from `chunk_offset` on, or the declared
//!    `graph.output` without a head) is de-normalized into the chunk.
//!
//! With `[text] padding = "longest"` the prompt's token count sets the
//! shape of every tensor the manifest writes as an expression of `L`
//! ([`Graph::set_prompt_len`], on each new prompt); buffers are sized for the
//! longest prompt, and runs and wires use their first values.
//!
//! Every buffer is allocated at load: the graph inputs and outputs
//! ([`Graph`]), the per-step noise, ONNX Runtime's output tensors. What
//! still allocates per step is the backends' own run: tract builds the
//! sample's and timestep's tensors and its output values, ONNX Runtime its
//! input views and run bookkeeping. [`StageTimes::wire_bytes`] and
//! [`StageTimes::input_bytes`] count the bytes copied per inference.
//! Action 0 is meant for the observation's stamp; `obs.committed` (the
//! executor's targets for actions 1..=k) reaches only an iterative head,
//! through [`Inpaint`]; a head-less bundle ignores it.

use std::time::Instant;

use ganglion_core::{ActionChunk, ActionKind, Observation, PolicyError, PolicySpec, MAX_COMMITTED_STEPS};

use crate::backend::{BackendChoice, Graph, TensorBuf};
use crate::bundle::VerifiedBundle;
use crate::error::BundleError;
use crate::guidance::Guide;
use crate::manifest::{manifest_path, ActionKindConfig, CommittedActions, GraphRole, Manifest, Source};
use crate::noise::{NoiseRecord, NoiseSource, NoiseStream};
use crate::policy::check_observation;
use crate::preprocess::{ImageOut, ImagePreprocessor, Normalizer};
use crate::schedule::{Scheduler, Timestep};
use crate::tokenizer::{PromptTokenizer, TokenizeError};

/// Wall time of each stage of a format-2 inference, ns (the last one).
/// Allocated at load; an inference only overwrites the values.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StageTimes {
    /// Prompt tokenization (0 when the prompt did not change).
    pub tokenize_ns: u64,
    /// State normalization and camera preprocessing.
    pub preprocess_ns: u64,
    /// Each once-per-inference graph, in run order, with its wired copies,
    /// as (stage name `graph <name>`, ns).
    pub graphs_ns: Vec<(String, u64)>,
    /// Each step of the head: the step graph and the schedule's update.
    pub steps_ns: Vec<u64>,
    /// Slicing and de-normalizing the chunk.
    pub postprocess_ns: u64,
    /// Chunk actions held to the executing plan (real-time chunking):
    /// inpainted, 1..=this were the executor's targets; guided, the first
    /// this many had weight 1 (0: not guided).
    pub inpainted_actions: usize,
    /// Bytes the wires copied from one graph's outputs into another's
    /// inputs (a wire whose output feeds one input hands the buffer over
    /// instead: 0 bytes).
    pub wire_bytes: u64,
    /// The prompt's length the graphs ran at: its token count with
    /// `[text] padding = "longest"`, `max_tokens` with padding to it, 0
    /// without `[text]`.
    pub prompt_tokens: usize,
    /// Bytes the backends copied from the host buffers into their own input
    /// tensors (tract copies each input it is handed; ONNX Runtime on the
    /// CPU reads them in place). The head's conditioning inputs (a prefix's
    /// KV cache) are handed over once per inference, not once per step.
    pub input_bytes: u64,
}

/// Makes room for the newest of the `history` observations `buf` holds,
/// oldest first, in equal slots: shifts every slot one towards the front
/// (unless `reset`: then all are about to be the newest) and returns the
/// newest slot's range.
fn push_history<T: Copy>(buf: &mut [T], history: usize, reset: bool) -> std::ops::Range<usize> {
    let width = buf.len() / history.max(1);
    if !reset && history > 1 {
        buf.copy_within(width.., 0);
    }
    buf.len() - width..buf.len()
}

/// After a reset: every older slot becomes a copy of the newest (LeRobot
/// fills its observation queues with the first observation).
fn fill_history<T: Copy>(buf: &mut [T], history: usize) {
    let width = buf.len() / history.max(1);
    let newest = buf.len() - width;
    for k in 0..history.saturating_sub(1) {
        buf.copy_within(newest.., k * width);
    }
}

/// The observation of each of a `history`-slot input's slots, oldest first
/// (`Some(past)`, then `None` for the newest: `obs` itself), when the caller
/// handed the earlier ones over ([`Observation::past`], one per policy
/// step: the control loop); `None` when it did not, and the slots shift
/// one per call instead (a caller that calls once per policy step).
fn explicit_history(
    obs: &Observation,
    history: usize,
) -> Option<impl Iterator<Item = Option<&ganglion_core::PastObservation>>> {
    (history > 1 && obs.past.len() + 1 >= history)
        .then(|| obs.past[..history - 1].iter().rev().map(Some).chain(std::iter::once(None)))
}

fn ns_since(t: Instant) -> u64 {
    t.elapsed().as_nanos() as u64
}

/// Where a wired value goes: (graph, input index); `None` = the head.
#[derive(Debug, Clone, Copy)]
struct Dest {
    node: Option<usize>,
    input: usize,
}

/// A graph run once per inference, and where its outputs go.
struct Node {
    name: String,
    graph: Graph,
    /// `(output index, destination, hand over)`; destinations run later.
    /// Hand over: the output feeds this input alone (and is not the
    /// result), so the two buffers swap instead of copying.
    copies: Vec<(usize, Dest, bool)>,
}

/// The step graph and its schedule.
struct Head {
    name: String,
    graph: Graph,
    sample: usize,
    timestep: usize,
    output: usize,
    /// The first action of x in the chunk (`chunk_offset`).
    chunk_start: usize,
    /// Values per action of x (D >= joints; the chunk keeps the first n).
    width: usize,
    scheduler: Scheduler,
    /// `committed = "inpaint"`.
    inpaint: Option<Inpaint>,
    /// `committed = "guided"` ([`crate::guidance`]).
    guide: Option<Guide>,
    /// The inputs every step reads as the inference wrote them (all but the
    /// sample and the timestep), held by the engine for the steps
    /// ([`Graph::hold_inputs`]).
    held: Vec<bool>,
}

/// Real-time chunking by hard-masked inpainting (`dataflow.head.committed
/// = "inpaint"`).
///
/// The executor keeps running the current plan while the chunk is computed
/// and hands the policy the targets it is committed to for actions
/// `1..=k` of the new chunk (`obs.committed`, k from the expected latency).
/// Those rows of x are *known*: before every step they are set to the
/// normalized action noised to the step's level (`a·x₀ + b·ε`,
/// [`Scheduler::noise_level`]) with the row's own initial noise as ε, and
/// after the last step to the action itself. The model denoises the free
/// rows conditioned on them, so the new chunk continues the one executing
/// instead of starting wherever its noise leads (the jump at each chunk
/// boundary that the executor would otherwise have to ramp over). Rows
/// use x's first `n` values per action; padding values (D > n) are
/// inpainted as 0, as LeRobot pads actions. Buffers are sized at load for
/// [`MAX_COMMITTED_STEPS`] rows.
struct Inpaint {
    /// Rows known in this inference.
    rows: usize,
    /// The first of them in x (`chunk_offset + 1`).
    first_row: usize,
    /// Their normalized actions, `width` values per row.
    known: Vec<f32>,
    /// Their initial noise.
    eps: Vec<f32>,
    /// Most rows ever known: `min(MAX_COMMITTED_STEPS, H - first_row)`.
    max_rows: usize,
    /// Per joint: the policy's action is an offset from the observed state
    /// (every joint of a `delta` policy, the `relative` ones of a relative
    /// one), so a committed target is taken relative to it first.
    from_state: Vec<bool>,
}

impl Inpaint {
    fn new(first_row: usize, sample_rows: usize, width: usize, from_state: Vec<bool>) -> Self {
        let max_rows = MAX_COMMITTED_STEPS.min(sample_rows.saturating_sub(first_row));
        let buf = || vec![0.0; max_rows * width];
        Inpaint { rows: 0, first_row, known: buf(), eps: buf(), max_rows, from_state }
    }

    /// Takes this inference's committed actions (absolute targets, taken
    /// relative to the observed state where `from_state` says) and the
    /// initial noise of their rows from `x`. Returns how many rows are known.
    fn prepare(&mut self, obs: &Observation, norm: &Normalizer, x: &[f32], width: usize) -> usize {
        let n = obs.joints.position.len();
        self.rows = obs.committed.len().min(self.max_rows);
        let start = self.first_row * width;
        let span = self.rows * width;
        let (Some(known), Some(eps), Some(noise)) =
            (self.known.get_mut(..span), self.eps.get_mut(..span), x.get(start..start + span))
        else {
            self.rows = 0;
            return 0;
        };
        eps.copy_from_slice(noise);
        for (row, target) in known.chunks_exact_mut(width).zip(&obs.committed) {
            let mut action = *target;
            for ((a, b), &from_state) in action.iter_mut().zip(obs.joints.position.iter()).zip(&self.from_state) {
                if from_state {
                    *a -= b;
                }
            }
            norm.normalize(&action, &mut row[..n.min(width)]);
            row[n.min(width)..].fill(0.0);
        }
        self.rows
    }

    /// Sets the known rows of `x` to `a·action + b·ε`.
    fn apply(&self, x: &mut [f32], width: usize, (a, b): (f64, f64)) {
        let start = self.first_row * width;
        let span = self.rows * width;
        let Some(rows) = x.get_mut(start..start + span) else { return };
        for ((v, &known), &eps) in rows.iter_mut().zip(&self.known).zip(&self.eps) {
            *v = (a * f64::from(known) + b * f64::from(eps)) as f32;
        }
    }
}

/// A format-2 bundle ready to run.
pub(crate) struct DataflowPolicy {
    manifest: Manifest,
    state_norm: Normalizer,
    /// Per joint: its action is relative to the observed state
    /// (`[action] relative`).
    relative: Vec<bool>,
    action_norm: Normalizer,
    spec: PolicySpec,
    nodes: Vec<Node>,
    head: Option<Head>,
    /// Inputs fed the normalized state, and how many observations each holds.
    state: Vec<(Dest, usize)>,
    /// `[text]`: the tokenizer and the inputs its tokens and mask feed.
    text: Option<TextInputs>,
    /// The next inference starts the histories afresh.
    history_reset: bool,
    /// Per camera of the policy's spec (the present ones): its frame's
    /// index in `Observation::frames`, its preprocessor, where it goes, and
    /// its history length. Absent cameras were filled at load.
    images: Vec<(usize, ImagePreprocessor, Dest, usize)>,
    /// `(node, output)` holding the chunk; `None`: the head's sample.
    result: Option<(usize, usize)>,
    seed: u64,
    injected: Option<Vec<f32>>,
    source: Option<Box<dyn NoiseSource>>,
    last_noise: Option<NoiseRecord>,
    step_noise: Vec<f32>,
    stages: StageTimes,
}

/// The prompt tokenizer and where its output goes. The token inputs keep
/// their values between inferences: they are written when the instruction's
/// sequence number changes, not per inference.
struct TextInputs {
    tokenizer: PromptTokenizer,
    tokens: Dest,
    mask: Option<Dest>,
    /// The instruction now in the token inputs (`None`: none yet).
    seq: Option<u64>,
    /// Mask scratch when the mask feeds no graph.
    spare_mask: Vec<bool>,
    /// `[text] padding = "longest"`: the graphs run at the prompt's length.
    longest: bool,
    /// The normalized state for a `{state}` prompt.
    state: Vec<f32>,
    errors: u64,
    last_error: Option<TokenizeError>,
}

fn backend_err(graph: &str) -> impl Fn(crate::error::BackendError) -> PolicyError + '_ {
    move |e| PolicyError::Backend(format!("graph `{graph}`: {e}"))
}

impl DataflowPolicy {
    /// Loads every graph of the verified format-2 bundle on `choice` and
    /// wires them as the manifest's checked plan says.
    pub(crate) fn from_bundle(
        bundle: &VerifiedBundle,
        choice: &BackendChoice,
        ranges: &[crate::preprocess::JointRange],
    ) -> Result<Self, BundleError> {
        let m = bundle.manifest.clone();
        let mfile = manifest_path(&bundle.display_path(""));
        let plan = m.dataflow_plan(&mfile)?.ok_or_else(|| BundleError::Backend("not a format-2 manifest".into()))?;
        let df = m.dataflow.as_ref().ok_or_else(|| BundleError::Backend("not a format-2 manifest".into()))?;
        // The plan was checked against the declared tensors; a name it holds
        // that is not there would be a bug in the check, reported, not a panic.
        let unplaced = |what: String| BundleError::Backend(format!("dataflow plan names {what}, which is not there"));
        let spec_of = |name: &str| df.graphs.get(name).ok_or_else(|| unplaced(format!("graph `{name}`")));
        let load = |name: &str| {
            let spec = spec_of(name)?;
            let mut external = Vec::new();
            let model = bundle.graph_model(&spec.file, &mut external)?;
            Graph::load(GraphRole::Dataflow, spec, model, &bundle.display_path(&spec.file), choice)
        };
        let index = |graph: &str, name: &str, output: bool| {
            let spec = spec_of(graph)?;
            let (list, what) = if output { (&spec.outputs, "output") } else { (&spec.inputs, "input") };
            list.iter()
                .position(|t| t.name == name)
                .ok_or_else(|| unplaced(format!("{what} `{name}` of graph `{graph}`")))
        };
        let input_index = |graph: &str, input: &str| index(graph, input, false);
        let output_index = |graph: &str, output: &str| index(graph, output, true);
        let node_of = |graph: &str| plan.order.iter().position(|g| g == graph);
        let mut nodes = plan
            .order
            .iter()
            .map(|name| Ok(Node { name: name.clone(), graph: load(name)?, copies: Vec::new() }))
            .collect::<Result<Vec<_>, BundleError>>()?;
        let mut state = Vec::new();
        let (mut tokens, mut mask) = (None, None);
        let mut images: Vec<Option<(Dest, usize)>> = vec![None; m.cameras.len()];
        let mut image_masks: Vec<(usize, Dest)> = Vec::new();
        for link in &plan.links {
            let dest = Dest { node: node_of(&link.graph), input: input_index(&link.graph, &link.input)? };
            match &link.source {
                Source::State => state.push((dest, link.history)),
                Source::Tokens => tokens = Some(dest),
                Source::TokenMask => mask = Some(dest),
                Source::Image(i) => {
                    *images.get_mut(*i).ok_or_else(|| unplaced(format!("camera {i}")))? = Some((dest, link.history));
                }
                Source::ImageMask(i) => image_masks.push((*i, dest)),
                Source::Output { graph, output } => {
                    let from = node_of(graph).ok_or_else(|| unplaced(format!("graph `{graph}` in the run order")))?;
                    nodes[from].copies.push((output_index(graph, output)?, dest, false));
                }
            }
        }
        let images = m
            .cameras
            .iter()
            .zip(images)
            .enumerate()
            .map(|(i, (c, dest))| {
                let (tensor, (dest, history)) = m
                    .camera_input(&plan, i)
                    .zip(dest)
                    .ok_or_else(|| unplaced(format!("the input camera `{}` feeds", c.name)))?;
                Ok((c.absent, ImagePreprocessor::new(c, tensor), dest, history))
            })
            .collect::<Result<Vec<_>, BundleError>>()?;
        // Present cameras take the observation's frames in order; absent
        // ones are filled once, after the graphs are all in place.
        let (mut present, mut absent) = (Vec::with_capacity(images.len()), Vec::new());
        for (is_absent, pre, dest, history) in images {
            if is_absent {
                absent.push((pre, dest));
            } else {
                present.push((present.len(), pre, dest, history));
            }
        }
        let images = present;
        let text = match (&m.text, tokens) {
            (Some(t), Some(tokens)) => {
                let json = bundle.file(&t.tokenizer)?;
                let tokenizer = PromptTokenizer::from_bytes(json, t).map_err(|e| BundleError::Manifest {
                    file: mfile.clone(),
                    key: match e {
                        crate::tokenizer::PromptTokenizerError::NoPadToken(_) => "text.pad_token".into(),
                        crate::tokenizer::PromptTokenizerError::Parse(_) => "text.tokenizer".into(),
                    },
                    problem: format!("{}: {e}", bundle.display_path(&t.tokenizer).display()),
                })?;
                Some(TextInputs {
                    tokenizer,
                    tokens,
                    mask,
                    seq: None,
                    spare_mask: vec![false; t.max_tokens],
                    longest: t.padding == crate::manifest::Padding::Longest,
                    state: vec![0.0; m.n_joints()],
                    errors: 0,
                    last_error: None,
                })
            }
            _ => None,
        };
        let head = match (&df.head, plan.scheduler) {
            (Some(h), Some(scheduler)) => Some(Head {
                name: h.graph.clone(),
                graph: load(&h.graph)?,
                sample: input_index(&h.graph, &h.sample)?,
                timestep: input_index(&h.graph, &h.timestep)?,
                output: output_index(&h.graph, &h.output)?,
                chunk_start: h.chunk_offset.unwrap_or(0),
                width: spec_of(&h.graph)?
                    .inputs
                    .iter()
                    .find(|t| t.name == h.sample)
                    .and_then(|t| t.shape.last().copied())
                    .unwrap_or(0),
                inpaint: match h.committed {
                    CommittedActions::Inpaint => {
                        let sample = spec_of(&h.graph)?.inputs.iter().find(|t| t.name == h.sample);
                        let rows = sample.and_then(|t| t.shape.get(t.shape.len().wrapping_sub(2)).copied());
                        let width = sample.and_then(|t| t.shape.last().copied()).unwrap_or(0);
                        let from_state = match m.action.kind {
                            ActionKindConfig::Delta => vec![true; m.n_joints()],
                            ActionKindConfig::Absolute => m.relative_action_mask(),
                        };
                        Some(Inpaint::new(h.chunk_offset.unwrap_or(0) + 1, rows.unwrap_or(0), width, from_state))
                    }
                    CommittedActions::Guided | CommittedActions::Ignore => None,
                },
                guide: match h.committed {
                    CommittedActions::Guided => {
                        let sample = spec_of(&h.graph)?.inputs.iter().find(|t| t.name == h.sample);
                        let rows = sample.and_then(|t| t.shape.get(1).copied()).unwrap_or(0);
                        let width = sample.and_then(|t| t.shape.last().copied()).unwrap_or(0);
                        Some(Guide::new(h.guidance.unwrap_or_default(), m.n_joints(), rows, width))
                    }
                    CommittedActions::Inpaint | CommittedActions::Ignore => None,
                },
                held: {
                    let (sample, timestep) = (input_index(&h.graph, &h.sample)?, input_index(&h.graph, &h.timestep)?);
                    (0..spec_of(&h.graph)?.inputs.len()).map(|i| i != sample && i != timestep).collect()
                },
                scheduler,
            }),
            _ => None,
        };
        let result = match &plan.result {
            Some((g, o)) => Some((
                node_of(g).ok_or_else(|| unplaced(format!("result graph `{g}` in the run order")))?,
                output_index(g, o)?,
            )),
            None => None,
        };
        // An output wired to one input alone, and not the result, is handed
        // over (its buffer swapped with the input's) rather than copied.
        for (i, node) in nodes.iter_mut().enumerate() {
            let outputs: Vec<usize> = node.copies.iter().map(|c| c.0).collect();
            for c in &mut node.copies {
                c.2 = outputs.iter().filter(|&&o| o == c.0).count() == 1 && result != Some((i, c.0));
            }
        }
        // x is the head's sample: [1, H, n], H >= chunk_offset + chunk_len.
        let sample_len = match &df.head {
            Some(h) => spec_of(&h.graph)?.inputs.iter().find(|t| t.name == h.sample).map_or(0, |t| t.len()),
            None => 0,
        };
        let spec = m.policy_spec();
        let stages = StageTimes {
            graphs_ns: plan.order.iter().map(|g| (format!("graph {g}"), 0)).collect(),
            steps_ns: vec![0; df.head.as_ref().map_or(0, |h| h.steps)],
            ..StageTimes::default()
        };
        DataflowPolicy {
            state_norm: m.state_normalizer(ranges)?,
            relative: m.relative_action_mask(),
            action_norm: m.action_normalizer(ranges)?,
            manifest: m,
            spec,
            nodes,
            head,
            state,
            text,
            history_reset: true,
            images,
            result,
            seed: 0,
            injected: None,
            source: None,
            last_noise: None,
            step_noise: vec![0.0; sample_len],
            stages,
        }
        .with_constant_inputs(absent, &image_masks)
    }

    /// Writes the inputs no observation changes: a black frame (every
    /// history slot) for each absent camera, and each image mask (true for
    /// a camera on the robot, false for an absent one).
    fn with_constant_inputs(
        mut self,
        absent: Vec<(ImagePreprocessor, Dest)>,
        masks: &[(usize, Dest)],
    ) -> Result<Self, BundleError> {
        let missing = |what: &str| BundleError::Backend(format!("dataflow plan names {what}, which is not there"));
        for (pre, d) in absent {
            let input = Self::graph_at(&mut self.nodes, &mut self.head, d.node)
                .and_then(|g| g.io_mut().inputs.get_mut(d.input));
            match input {
                Some(TensorBuf::F32(v)) => pre.fill_black(ImageOut::F32(v)),
                Some(TensorBuf::U8(v)) => pre.fill_black(ImageOut::U8(v)),
                _ => return Err(missing("the image input of an absent camera")),
            }
        }
        for &(camera, d) in masks {
            let on_robot = self.manifest.cameras.get(camera).is_some_and(|c| !c.absent);
            match Self::graph_at(&mut self.nodes, &mut self.head, d.node)
                .and_then(|g| g.io_mut().inputs.get_mut(d.input))
            {
                Some(TensorBuf::Bool(v)) => v.fill(on_robot),
                _ => return Err(missing("an image mask input")),
            }
        }
        Ok(self)
    }

    pub(crate) fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub(crate) fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    pub(crate) fn execution_provider(&self) -> &str {
        self.head
            .as_ref()
            .map(|h| &h.graph)
            .or_else(|| self.nodes.first().map(|n| &n.graph))
            .map_or("", Graph::execution_provider)
    }

    pub(crate) fn set_noise_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    pub(crate) fn set_initial_noise(&mut self, noise: Option<&[f32]>) -> Result<(), PolicyError> {
        let want = self.step_noise.len();
        match noise {
            _ if self.head.is_none() => Err(PolicyError::Backend("this bundle has no iterative head".into())),
            Some(n) if n.len() != want => Err(PolicyError::BadObservation(format!(
                "initial noise has {} values, the head's sample {want}",
                n.len()
            ))),
            Some(n) => {
                self.injected = Some(n.to_vec());
                Ok(())
            }
            None => {
                self.injected = None;
                Ok(())
            }
        }
    }

    pub(crate) fn set_noise_source(&mut self, source: Option<Box<dyn NoiseSource>>) -> Result<(), PolicyError> {
        if self.head.is_none() {
            return Err(PolicyError::Backend("this bundle has no iterative head".into()));
        }
        self.source = source;
        Ok(())
    }

    pub(crate) fn stage_times(&self) -> &StageTimes {
        &self.stages
    }

    pub(crate) fn last_noise(&self) -> Option<NoiseRecord> {
        self.last_noise
    }

    pub(crate) fn instruction_errors(&self) -> u64 {
        self.text.as_ref().map_or(0, |t| t.errors)
    }

    pub(crate) fn last_instruction_error(&self) -> Option<&TokenizeError> {
        self.text.as_ref().and_then(|t| t.last_error.as_ref())
    }

    /// Tokenizes a changed instruction into the token inputs (on the
    /// inference worker: the tokenizer allocates), or every observation when
    /// the prompt holds the state (π0.5). A prompt the tokenizer refuses is
    /// counted and logged, and the previous tokens stay in force, as with
    /// format 1's text encoder.
    fn update_text(&mut self, obs: &Observation) -> Result<bool, PolicyError> {
        let Some(text) = self.text.as_mut() else { return Ok(false) };
        let with_state = text.tokenizer.uses_state();
        if text.seq == Some(obs.instruction.seq) && !with_state {
            return Ok(false);
        }
        text.seq = Some(obs.instruction.seq);
        if with_state {
            self.state_norm.normalize(&obs.joints.position, &mut text.state);
        }
        let missing = || PolicyError::Backend("a token input is missing or of another type".into());
        let ids = match Self::graph_at(&mut self.nodes, &mut self.head, text.tokens.node)
            .and_then(|g| g.io_mut().inputs.get_mut(text.tokens.input))
        {
            Some(TensorBuf::I64(v)) => v,
            _ => return Err(missing()),
        };
        let tokens = match text.tokenizer.encode_into(&obs.instruction.text, &text.state, ids, &mut text.spare_mask) {
            Ok(tokens) => {
                if tokens > text.spare_mask.len() {
                    tracing::warn!(
                        tokens,
                        max = text.spare_mask.len(),
                        seq = obs.instruction.seq,
                        "instruction cut to the policy's token slots"
                    );
                }
                text.last_error = None;
                tokens
            }
            Err(e) => {
                tracing::warn!(error = %e, seq = obs.instruction.seq, "instruction rejected; keeping the previous one");
                text.errors += 1;
                text.last_error = Some(e);
                return Ok(true);
            }
        };
        if let Some(d) = text.mask {
            match Self::graph_at(&mut self.nodes, &mut self.head, d.node)
                .and_then(|g| g.io_mut().inputs.get_mut(d.input))
            {
                Some(TensorBuf::Bool(v)) if v.len() == text.spare_mask.len() => v.copy_from_slice(&text.spare_mask),
                _ => return Err(missing()),
            }
        }
        // Unpadded, the prompt's tokens are the token input, and every
        // shape that follows them is set for this length (an empty prompt
        // keeps one pad token, masked out); padded, the graphs' shapes are
        // fixed at `max_tokens`.
        let slots = text.spare_mask.len();
        self.stages.prompt_tokens = if text.longest { tokens.clamp(1, slots) } else { slots };
        if text.longest {
            for g in self.nodes.iter_mut().map(|n| &mut n.graph).chain(self.head.as_mut().map(|h| &mut h.graph)) {
                g.set_prompt_len(self.stages.prompt_tokens);
            }
        }
        Ok(true)
    }

    /// Bytes every graph's engine copied into its input tensors since load.
    fn input_bytes_copied(&self) -> u64 {
        let nodes: u64 = self.nodes.iter().map(|n| n.graph.input_bytes_copied()).sum();
        nodes + self.head.as_ref().map_or(0, |h| h.graph.input_bytes_copied())
    }

    /// The next inference fills every history slot with its observation.
    /// Normalizers for another arm's calibrated joint ranges.
    pub(crate) fn set_joint_ranges(&mut self, ranges: &[crate::preprocess::JointRange]) -> Result<(), BundleError> {
        self.state_norm = self.manifest.state_normalizer(ranges)?;
        self.action_norm = self.manifest.action_normalizer(ranges)?;
        Ok(())
    }

    pub(crate) fn reset_history(&mut self) {
        self.history_reset = true;
        if let Some(g) = self.head.as_mut().and_then(|h| h.guide.as_mut()) {
            g.forget();
        }
    }

    /// The graph a destination names.
    fn graph_at<'a>(nodes: &'a mut [Node], head: &'a mut Option<Head>, node: Option<usize>) -> Option<&'a mut Graph> {
        match node {
            Some(i) => nodes.get_mut(i).map(|n| &mut n.graph),
            None => head.as_mut().map(|h| &mut h.graph),
        }
    }

    fn f32_input<'a>(nodes: &'a mut [Node], head: &'a mut Option<Head>, d: Dest) -> Result<&'a mut [f32], PolicyError> {
        Self::graph_at(nodes, head, d.node)
            .and_then(|g| g.input_f32(d.input))
            .ok_or_else(|| PolicyError::Backend("a wired input is missing or not f32".into()))
    }

    pub(crate) fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        let t0 = Instant::now();
        check_observation(&self.spec, obs)?;
        let t = Instant::now();
        let tokenized = self.update_text(obs)?;
        self.stages.tokenize_ns = if tokenized { ns_since(t) } else { 0 };
        let t_pre = Instant::now();
        let m = &self.manifest;
        let n = self.spec.n_joints;
        for &(d, history) in &self.state {
            let dst = Self::f32_input(&mut self.nodes, &mut self.head, d)?;
            // Each observation takes `width` >= n values: the state, then
            // zeros (LeRobot's padding to the model's `max_state_dim`).
            let width = dst.len() / history.max(1);
            if width < n || dst.len() != history * width {
                return Err(PolicyError::Backend(format!(
                    "a state input holds {} values, expected {history} x (>= {n})",
                    dst.len()
                )));
            }
            if let Some(slots) = explicit_history(obs, history) {
                for (s, joints) in slots.map(|o| o.map_or(&obs.joints.position, |p| &p.joints.position)).enumerate() {
                    let slot = &mut dst[s * width..(s + 1) * width];
                    self.state_norm.normalize(joints, &mut slot[..n]);
                    slot[n..].fill(0.0);
                }
                continue;
            }
            let newest = push_history(dst, history, self.history_reset);
            self.state_norm.normalize(&obs.joints.position, &mut dst[newest.clone()][..n]);
            dst[newest][n..].fill(0.0);
            if self.history_reset {
                fill_history(dst, history);
            }
        }
        for (frame_index, pre, d, history) in self.images.iter_mut() {
            let i = *frame_index;
            let frame = obs.frames.get(i).ok_or_else(|| PolicyError::BadObservation(format!("no frame {i}")))?;
            let g = Self::graph_at(&mut self.nodes, &mut self.head, d.node)
                .ok_or_else(|| PolicyError::Backend("image destination missing".into()))?;
            let reset = self.history_reset;
            if let Some(slots) = explicit_history(obs, *history) {
                // One frame per slot, oldest first, from the loop's per-step history.
                let width = match g.io_mut().inputs.get(d.input) {
                    Some(b) => b.len() / (*history).max(1),
                    None => 0,
                };
                for (s, o) in slots.enumerate() {
                    let frame = match o {
                        Some(p) => p.frames.get(i),
                        None => Some(frame),
                    }
                    .ok_or_else(|| PolicyError::BadObservation(format!("no frame {i} in a past observation")))?;
                    let out = match g.io_mut().inputs.get_mut(d.input) {
                        Some(TensorBuf::F32(v)) => v.get_mut(s * width..(s + 1) * width).map(ImageOut::F32),
                        Some(TensorBuf::U8(v)) => v.get_mut(s * width..(s + 1) * width).map(ImageOut::U8),
                        _ => None,
                    }
                    .ok_or_else(|| PolicyError::Backend("image input is neither f32 nor u8".into()))?;
                    pre.run(frame, out).map_err(|e| {
                        PolicyError::BadObservation(format!(
                            "camera {}: {e}",
                            self.spec.cameras.get(i).map_or("?", |c| c.name.as_str())
                        ))
                    })?;
                }
                continue;
            }
            let result = match g.io_mut().inputs.get_mut(d.input) {
                Some(TensorBuf::F32(v)) => {
                    let newest = push_history(v, *history, reset);
                    let r = pre.run(frame, ImageOut::F32(&mut v[newest]));
                    if reset {
                        fill_history(v, *history);
                    }
                    r
                }
                Some(TensorBuf::U8(v)) => {
                    let newest = push_history(v, *history, reset);
                    let r = pre.run(frame, ImageOut::U8(&mut v[newest]));
                    if reset {
                        fill_history(v, *history);
                    }
                    r
                }
                _ => return Err(PolicyError::Backend("image input is neither f32 nor u8".into())),
            };
            result.map_err(|e| {
                PolicyError::BadObservation(format!(
                    "camera {}: {e}",
                    self.spec.cameras.get(i).map_or("?", |c| c.name.as_str())
                ))
            })?;
        }
        self.history_reset = false;
        self.stages.preprocess_ns = ns_since(t_pre);
        self.stages.wire_bytes = 0;
        let copied_before = self.input_bytes_copied();
        for i in 0..self.nodes.len() {
            let t_graph = Instant::now();
            let (done, later) = self.nodes.split_at_mut(i + 1);
            let node = &mut done[i];
            node.graph.run().map_err(backend_err(&node.name))?;
            for &(output, d, hand_over) in &node.copies {
                let src =
                    node.graph.io_mut().outputs.get_mut(output).ok_or_else(|| {
                        PolicyError::Backend(format!("graph `{}`: output {output} missing", node.name))
                    })?;
                // Destinations run later in the order: index > i, or the head.
                let dst = match d.node {
                    Some(j) => j.checked_sub(i + 1).and_then(|j| later.get_mut(j)).map(|n| &mut n.graph),
                    None => self.head.as_mut().map(|h| &mut h.graph),
                }
                .and_then(|g| g.io_mut().inputs.get_mut(d.input))
                .ok_or_else(|| PolicyError::Backend(format!("graph `{}`: a wired input is missing", node.name)))?;
                if hand_over && src.dtype() == dst.dtype() && src.len() == dst.len() {
                    std::mem::swap(src, dst);
                    continue;
                }
                // The values this run wrote: fewer than the buffer holds
                // when the output follows a prompt shorter than the longest.
                let n = node.graph.io_mut().output_len(output);
                let src =
                    node.graph.io_mut().outputs.get(output).ok_or_else(|| {
                        PolicyError::Backend(format!("graph `{}`: output {output} missing", node.name))
                    })?;
                dst.copy_from(src, n).map_err(|e| {
                    PolicyError::Backend(format!("graph `{}`: output {output} to its destination: {e}", node.name))
                })?;
                self.stages.wire_bytes += (dst.byte_len() / dst.len().max(1) * n) as u64;
            }
            if let Some(slot) = self.stages.graphs_ns.get_mut(i) {
                slot.1 = ns_since(t_graph);
            }
        }
        let from_source = self.source.is_some();
        if let Some(h) = self.head.as_mut() {
            let mut stream = NoiseStream::new(self.seed, obs.request_id);
            let noise: &mut dyn NoiseSource = match self.source.as_mut() {
                Some(s) => s.as_mut(),
                None => &mut stream,
            };
            let noise_err = |e: crate::noise::NoiseError| PolicyError::Backend(format!("graph `{}`: {e}", h.name));
            let io = h.graph.io_mut();
            let Some(TensorBuf::F32(x)) = io.inputs.get_mut(h.sample) else {
                return Err(PolicyError::Backend(format!("graph `{}`: the sample input is not f32", h.name)));
            };
            match &self.injected {
                Some(x0) => x.copy_from_slice(x0),
                None => noise.fill(x).map_err(noise_err)?,
            }
            self.stages.inpainted_actions = match (h.inpaint.as_mut(), h.guide.as_mut()) {
                (Some(p), _) => p.prepare(obs, &self.action_norm, x, h.width),
                (None, Some(g)) => g.prepare(obs, self.spec.step_ns),
                (None, None) => 0,
            };
            self.last_noise = Some(NoiseRecord {
                seed: self.seed,
                stream: obs.request_id,
                injected: self.injected.is_some() || from_source,
            });
            let sample_err = || PolicyError::Backend(format!("graph `{}`: the sample input is not f32", h.name));
            // The conditioning was written above: every step reads it as is.
            h.graph.hold_inputs(&h.held).map_err(backend_err(&h.name))?;
            for k in 0..h.scheduler.steps() {
                let t_step = Instant::now();
                if let Some(p) = h.inpaint.as_ref().filter(|p| p.rows > 0) {
                    let x = h.graph.input_f32(h.sample).ok_or_else(sample_err)?;
                    p.apply(x, h.width, h.scheduler.noise_level(k));
                }
                let t = h.scheduler.timestep(k);
                match (h.graph.io_mut().inputs.get_mut(h.timestep), t) {
                    (Some(TensorBuf::F32(v)), t) => v.fill(t.as_f32()),
                    (Some(TensorBuf::I64(v)), Timestep::Discrete(t)) => v.fill(t),
                    _ => return Err(PolicyError::Backend(format!("graph `{}`: bad timestep input", h.name))),
                }
                h.graph.run().map_err(backend_err(&h.name))?;
                let draws = h.scheduler.draws_noise(k);
                if draws {
                    noise.fill(&mut self.step_noise).map_err(noise_err)?;
                }
                let io = h.graph.io_mut();
                let (Some(TensorBuf::F32(x)), Some(TensorBuf::F32(v))) =
                    (io.inputs.get_mut(h.sample), io.outputs.get_mut(h.output))
                else {
                    return Err(PolicyError::Backend(format!("graph `{}`: sample or output missing", h.name)));
                };
                if let (Some(g), Timestep::Continuous(t)) = (h.guide.as_ref(), h.scheduler.timestep(k)) {
                    g.apply(x, v, t);
                }
                h.scheduler.step(k, v, x, draws.then_some(self.step_noise.as_slice()));
                if let Some(slot) = self.stages.steps_ns.get_mut(k) {
                    *slot = ns_since(t_step);
                }
            }
            if let Some(p) = h.inpaint.as_ref().filter(|p| p.rows > 0) {
                let x = h.graph.input_f32(h.sample).ok_or_else(sample_err)?;
                p.apply(x, h.width, (1.0, 0.0));
            }
            if let Some(g) = h.guide.as_mut() {
                let x = h.graph.input_f32(h.sample).ok_or_else(sample_err)?;
                g.remember(x, obs.stamp);
            }
            h.graph.hold_inputs(&[]).map_err(backend_err(&h.name))?;
        }
        self.stages.input_bytes = self.input_bytes_copied() - copied_before;
        let t_post = Instant::now();
        // The normalized chunk: `steps` actions of `n` values, `stride` apart.
        let (chunk_norm, stride): (&[f32], usize) = match (self.result, self.head.as_mut()) {
            (Some((n_, o)), _) => (self.nodes.get(n_).map_or(&[], |node| node.graph.output(o)), n),
            (None, Some(h)) => {
                let (start, w) = (h.chunk_start * h.width, h.width);
                let end = start + self.spec.chunk_len * w;
                (h.graph.input_f32(h.sample).and_then(|x| x.get(start..end)).unwrap_or(&[]), w)
            }
            (None, None) => (&[], n),
        };
        let steps = out.set_steps(self.spec.chunk_len);
        if out.n_joints() != n || steps != self.spec.chunk_len || stride < n || chunk_norm.len() != steps * stride {
            return Err(PolicyError::BadObservation(format!(
                "action buffer holds {steps}x{}, policy produces {}x{n}",
                out.n_joints(),
                self.spec.chunk_len
            )));
        }
        for i in 0..steps {
            let action = &chunk_norm[i * stride..i * stride + n];
            let dst = out.step_mut(i);
            self.action_norm.denormalize(action, dst);
            // Relative actions: offsets from the observed state (LeRobot's
            // AbsoluteActionsProcessorStep, after unnormalizing).
            for ((v, &relative), p) in dst.iter_mut().zip(&self.relative).zip(obs.joints.position.iter()) {
                if relative {
                    *v += p;
                }
            }
        }
        out.request_id = obs.request_id;
        out.obs_stamp = obs.stamp;
        out.step_ns = self.spec.step_ns;
        out.kind = ActionKind::from(m.action.kind);
        out.surprise = None;
        out.compute_ns = t0.elapsed().as_nanos() as u64;
        self.stages.postprocess_ns = ns_since(t_post);
        Ok(())
    }
}
