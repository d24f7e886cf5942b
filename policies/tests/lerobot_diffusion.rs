//! LeRobot's Diffusion Policy (issue 16) as a format-2 bundle, against
//! LeRobot's own sampling loop.
//!
//! `fixtures/lerobot-diffusion/pretrained_model` is a small `DiffusionPolicy`
//! built from LeRobot 0.6.1's config classes (`lerobot/make_diffusion_fixture.py`);
//! `bundle/` and `golden.json` were written from it by
//! `lerobot/export_diffusion.py` (encoder + UNet step graphs, DDPM with
//! LeRobot's scheduler keys, 2-observation history, chunk from action 1) and
//! signed with the TEST key. The golden holds, per observation of two
//! episodes, every noise tensor LeRobot's loop drew (x_T and DDPM's per-step
//! noise) and the actions of its `select_action` path. Here the bundle runs
//! the same observations in the same order with that noise replayed
//! ([`RecordedNoise`] behind the pipeline's `NoiseSource`), by the same
//! function `ganglion policy import`'s parity gate uses
//! ([`parity::run_golden`]).

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{copy_bundle, fixtures, opts, ort_or_skip, test_secret_key};
use ganglion_core::alloc_count::{thread_allocations, CountingAlloc};
use ganglion_core::stats::Summary;
use ganglion_core::{ActionChunk, Observation, Policy};
use ganglion_policies::backend::{BackendChoice, Graph, GraphModel, TensorBuf};
use ganglion_policies::import::parity::{self, DiffusionGolden, GoldenEpisode, GoldenObservation};
use ganglion_policies::manifest::{GraphRole, ScheduleKind};
use ganglion_policies::noise::RecordedNoise;
use ganglion_policies::schedule::{Scheduler, Timestep};
use ganglion_policies::{load_policy, sign_bundle, BackendKind, BundleError, BundlePolicy};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations `f` makes on this thread.
fn allocations(f: &mut dyn FnMut()) -> u64 {
    let before = thread_allocations();
    f();
    thread_allocations() - before
}

/// fp32 parity against PyTorch (issue 16's bound), in rad.
const TOLERANCE: f64 = 1e-4;

fn dir() -> PathBuf {
    fixtures().join("lerobot-diffusion")
}

fn golden() -> serde_json::Value {
    let path = dir().join("golden.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).expect("golden.json parses")
}

fn f32s(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

fn episodes(g: &serde_json::Value) -> &Vec<serde_json::Value> {
    g["episodes"].as_array().expect("episodes")
}

fn observations(e: &serde_json::Value) -> &Vec<serde_json::Value> {
    e["observations"].as_array().expect("observations")
}

/// The golden as the import's parity gate reads it.
fn typed_golden() -> DiffusionGolden {
    let path = dir().join("golden.json");
    DiffusionGolden::parse(&std::fs::read(&path).expect("read"), &path).expect("golden")
}

/// How the golden's observations are fed. The gate feeds them as recorded
/// (history reset at each episode start); the wrong feeds are the same
/// observations regrouped into other episodes.
#[derive(Clone, Copy, PartialEq)]
enum Feed {
    /// History never reset (episode 2 starts with episode 1's last state).
    NoResetBetweenEpisodes,
    /// History reset before every observation (no history at all).
    ResetEveryObservation,
}

fn regrouped(g: &DiffusionGolden, feed: Feed) -> DiffusionGolden {
    let all: Vec<GoldenObservation> = g.observations().cloned().collect();
    let episodes = match feed {
        Feed::NoResetBetweenEpisodes => vec![GoldenEpisode { observations: all }],
        Feed::ResetEveryObservation => all.into_iter().map(|o| GoldenEpisode { observations: vec![o] }).collect(),
    };
    DiffusionGolden { episodes, ..g.clone() }
}

/// Every golden observation through `policy` with the golden's noise (the
/// import's parity gate, which also checks the bundle drew exactly the
/// recorded tensors): the largest |action − PyTorch action| (rad) and the
/// chunks run.
fn run_golden(policy: &mut BundlePolicy, g: &DiffusionGolden) -> (f64, usize) {
    let r = parity::run_golden(policy, g, &dir().join("golden.json")).expect("golden replay");
    (r.max_abs_error, r.samples)
}

fn load(path: &Path, backend: BackendKind) -> BundlePolicy {
    load_policy(path, &opts(backend)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_bundle_is_signed_and_carries_lerobots_scheduler() {
    let policy = load(&dir().join("bundle"), BackendKind::Tract);
    assert!(policy.load_report().signature.starts_with("valid"), "{}", policy.load_report().signature);
    let g = golden();
    let m = policy.manifest();
    let df = m.dataflow.as_ref().expect("format 2");
    let head = df.head.as_ref().expect("head");
    // Every scheduler key LeRobot configured, as its DDPMScheduler holds it.
    let sc = &g["scheduler_config"];
    let s = &head.schedule;
    assert_eq!(g["scheduler"], "DDPMScheduler");
    assert_eq!(s.kind, ScheduleKind::Ddpm);
    assert_eq!(s.num_train_timesteps, sc["num_train_timesteps"].as_u64().map(|v| v as usize));
    assert_eq!(s.beta_schedule.map(|b| serde_json::to_value(b).expect("json")), Some(sc["beta_schedule"].clone()));
    assert_eq!(s.prediction_type.map(|p| serde_json::to_value(p).expect("json")), Some(sc["prediction_type"].clone()));
    assert_eq!(s.clip_sample, sc["clip_sample"].as_bool());
    assert_eq!(s.clip_sample_range, sc["clip_sample_range"].as_f64());
    assert_eq!(s.steps_offset, sc["steps_offset"].as_u64().map(|v| v as usize));
    // What schedule.rs implements and LeRobot's scheduler uses.
    assert_eq!((sc["variance_type"].as_str(), sc["timestep_spacing"].as_str()), (Some("fixed_small"), Some("leading")));
    assert_eq!(sc["thresholding"], false);
    assert_eq!(head.steps as u64, g["num_inference_steps"].as_u64().expect("steps"));
    // n_obs_steps as history on both state wires, the chunk from n_obs_steps - 1.
    let s_obs = g["n_obs_steps"].as_u64().expect("n_obs_steps") as usize;
    assert!(df.wires.iter().filter(|w| w.from == "obs.state").all(|w| w.history == Some(s_obs)));
    assert_eq!(head.chunk_offset, Some(s_obs - 1));
    assert_eq!(policy.spec().chunk_len as u64, g["n_action_steps"].as_u64().expect("n_action_steps"));
}

#[test]
fn tract_reproduces_lerobots_actions_with_the_golden_noise() {
    let g = typed_golden();
    let mut policy = load(&dir().join("bundle"), BackendKind::Tract);
    let (err, chunks) = run_golden(&mut policy, &g);
    eprintln!("lerobot diffusion on tract: max abs vs PyTorch {err:.2e} rad over {chunks} chunks");
    assert_eq!(chunks, 8);
    assert!(err <= TOLERANCE, "tract differs from PyTorch by {err:e} (tolerance {TOLERANCE:e})");
}

#[test]
fn onnx_runtime_reproduces_lerobots_actions_with_the_golden_noise() {
    if !ort_or_skip("onnx_runtime_reproduces_lerobots_actions_with_the_golden_noise") {
        return;
    }
    let g = typed_golden();
    let mut policy = load(&dir().join("bundle"), BackendKind::Ort);
    let (err, chunks) = run_golden(&mut policy, &g);
    let provider = common::ort_provider().as_str();
    eprintln!("lerobot diffusion on onnx runtime ({provider}): max abs vs PyTorch {err:.2e} rad over {chunks} chunks");
    assert!(err <= TOLERANCE, "ONNX Runtime differs from PyTorch by {err:e}");
}

/// The golden catches a wrong history: no reset at an episode start, or no
/// history at all.
#[test]
fn a_wrong_history_fails_the_golden() {
    let g = typed_golden();
    let mut policy = load(&dir().join("bundle"), BackendKind::Tract);
    for (feed, what) in
        [(Feed::NoResetBetweenEpisodes, "no reset between episodes"), (Feed::ResetEveryObservation, "no history")]
    {
        let (err, _) = run_golden(&mut policy, &regrouped(&g, feed));
        eprintln!("{what}: max abs vs PyTorch {err:.2e}");
        assert!(err > 100.0 * TOLERANCE, "{what}: the golden did not notice ({err:e})");
    }
}

/// Copies the bundle, edits its manifest, signs it with the TEST key.
fn edited(edit: impl FnOnce(&mut toml::Table)) -> (tempfile::TempDir, PathBuf) {
    let (tmp, path) = copy_bundle("lerobot-diffusion/bundle");
    let file = path.join("policy.toml");
    let mut t: toml::Table = std::fs::read_to_string(&file).expect("read").parse().expect("toml");
    edit(&mut t);
    std::fs::write(&file, toml::to_string(&t).expect("toml")).expect("write");
    sign_bundle(&path, &test_secret_key()).expect("sign");
    (tmp, path)
}

fn table<'a>(t: &'a mut toml::Table, path: &[&str]) -> &'a mut toml::Table {
    path.iter().fold(t, |t, k| t.get_mut(*k).and_then(|v| v.as_table_mut()).expect("table"))
}

/// Each wrong schedule parameter or wiring still loads (it is a valid
/// bundle) but no longer computes what LeRobot computes: the golden fails.
#[test]
fn a_wrong_schedule_parameter_or_chunk_offset_fails_the_golden() {
    let g = typed_golden();
    const SCHEDULE: &[&str] = &["dataflow", "head", "schedule"];
    let cases: [(&[&str], &str, toml::Value); 6] = [
        (SCHEDULE, "clip_sample", false.into()),
        (SCHEDULE, "beta_schedule", "linear".into()),
        (SCHEDULE, "prediction_type", "sample".into()),
        (SCHEDULE, "num_train_timesteps", 1000.into()),
        (SCHEDULE, "clip_sample_range", 0.5.into()),
        (&["dataflow", "head"], "chunk_offset", 0.into()),
    ];
    for (at, key, value) in cases {
        let what = format!("{key} = {value}");
        let (_tmp, path) = edited(|t| {
            table(t, at).insert(key.into(), value);
        });
        let mut policy = load(&path, BackendKind::Tract);
        let (err, _) = run_golden(&mut policy, &g);
        eprintln!("{what}: max abs vs PyTorch {err:.2e}");
        assert!(err > 100.0 * TOLERANCE, "{what}: the golden did not notice ({err:e})");
    }
}

/// Wiring mistakes that change a shape are refused at load, naming the key.
#[test]
fn a_wiring_without_the_history_is_refused_at_load() {
    let (_tmp, path) = copy_bundle("lerobot-diffusion/bundle");
    let file = path.join("policy.toml");
    let text = std::fs::read_to_string(&file).expect("read");
    let once = text.replacen("history = 2\n", "", 1);
    assert_ne!(once, text);
    std::fs::write(&file, once).expect("write");
    let err = match sign_bundle(&path, &test_secret_key()) {
        Err(e) => e,
        Ok(_) => panic!("signed a bundle whose state wire lacks its history"),
    };
    let msg = err.to_string();
    assert!(matches!(err, BundleError::Manifest { .. }), "{msg}");
    assert!(
        msg.contains("dataflow.wires[0].to")
            && msg.contains("observation.state")
            && msg.contains("[1, 2, 3] f32")
            && msg.contains("[1, 3] f32"),
        "{msg}"
    );
    for (bad, key) in [("history = 2\n", "history = 0\n"), ("chunk_offset = 1\n", "chunk_offset = 9\n")] {
        std::fs::write(&file, text.replacen(bad, key, 1)).expect("write");
        let msg = sign_bundle(&path, &test_secret_key()).map(|_| ()).expect_err("refused").to_string();
        let want = if key.starts_with("history") { "dataflow.wires[0].history" } else { "dataflow.head.chunk_offset" };
        assert!(msg.contains(want), "{msg}");
    }
}

/// Recorded noise that runs out, or does not fit, fails the inference with
/// the reason; it never draws silently from the seed instead.
#[test]
fn recorded_noise_that_does_not_fit_fails_the_inference() {
    let mut policy = load(&dir().join("bundle"), BackendKind::Tract);
    let spec = policy.spec().clone();
    let obs = Observation::for_spec(&spec);
    let mut out = ActionChunk::for_spec(&spec);
    policy.set_noise_source(Some(Box::new(RecordedNoise::new(vec![vec![0.0; 48]; 3])))).expect("source");
    let err = policy.infer(&obs, &mut out).expect_err("exhausted");
    assert!(err.to_string().contains("recorded noise exhausted: all 3 tensors used"), "{err}");
    policy.set_noise_source(Some(Box::new(RecordedNoise::new(vec![vec![0.0; 24]])))).expect("source");
    let err = policy.infer(&obs, &mut out).expect_err("wrong size");
    assert!(err.to_string().contains("has 24 values, the head asks for 48"), "{err}");
    // Back to the seeded stream.
    policy.set_noise_source(None).expect("source");
    policy.infer(&obs, &mut out).expect("seeded");
    assert!(!policy.last_noise().expect("record").injected);
}

fn percentiles(mut v: Vec<f64>) -> Summary {
    v.sort_by(f64::total_cmp);
    Summary::of(&v)
}

/// Per-step and per-chunk time on tract (this build's profile: dependencies
/// at opt-level 2, as `cargo nextest` builds them). Numbers are printed for
/// docs/POLICIES.md; only sanity is asserted.
#[test]
fn timing_on_tract() {
    let path = dir().join("bundle");
    let mut policy = load(&path, BackendKind::Tract);
    let spec = policy.spec().clone();
    let m = policy.manifest().clone();
    let step_spec = m.dataflow.as_ref().and_then(|d| d.graphs.get("step")).expect("step graph").clone();
    let bytes = std::fs::read(path.join(&step_spec.file)).expect("step.onnx");
    let mut step = Graph::load(
        GraphRole::Dataflow,
        &step_spec,
        GraphModel::inline(&bytes),
        &path.join("step.onnx"),
        &BackendChoice::Tract,
    )
    .expect("step graph on tract");
    // The golden's first observation: its x_T, timestep 90, its global_cond.
    let g = golden();
    let o = &observations(&episodes(&g)[0])[0];
    if let Some(TensorBuf::F32(x)) = step.io_mut().inputs.get_mut(0) {
        x.copy_from_slice(&f32s(&o["noise"][0]));
    }
    if let Some(TensorBuf::I64(t)) = step.io_mut().inputs.get_mut(1) {
        t.fill(90);
    }
    if let Some(TensorBuf::F32(c)) = step.io_mut().inputs.get_mut(2) {
        c.copy_from_slice(&f32s(&o["global_cond"]));
    }
    let time = |n: usize, f: &mut dyn FnMut()| {
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect::<Vec<f64>>()
    };
    time(20, &mut || step.run().expect("step"));
    let per_step = percentiles(time(300, &mut || step.run().expect("step")));
    let mut obs = Observation::for_spec(&spec);
    for (p, v) in obs.joints.position.iter_mut().zip(f32s(&o["joints"])) {
        *p = f64::from(v);
    }
    let mut out = ActionChunk::for_spec(&spec);
    time(5, &mut || policy.infer(&obs, &mut out).expect("infer"));
    let per_chunk = percentiles(time(100, &mut || policy.infer(&obs, &mut out).expect("infer")));
    eprintln!(
        "tract step graph: median {:.3} ms, p99 {:.3} ms; whole chunk (encoder + 10 steps + DDPM): median {:.3} ms, p99 {:.3} ms",
        per_step.median, per_step.p99, per_chunk.median, per_chunk.p99
    );
    assert!(per_step.median > 0.0 && per_chunk.median >= per_step.median);
}

/// Ganglion's DDPM (schedule.rs), built from the bundle's keys, against the
/// `DDPMScheduler` object LeRobot's policy holds: its betas,
/// `alphas_cumprod` and timesteps, and its trajectory for the first golden
/// observation (fed the UNet outputs and the noise PyTorch used) — the
/// schedule alone, without the graphs.
#[test]
fn the_schedule_is_lerobots_ddpm_scheduler() {
    let g = golden();
    let policy = load(&dir().join("bundle"), BackendKind::Tract);
    let head = policy.manifest().dataflow.as_ref().and_then(|d| d.head.clone()).expect("head");
    let scheduler = head.schedule.build(head.steps).expect("schedule");
    let Scheduler::Diffusion(d) = &scheduler else { panic!("expected DDPM") };
    let f64s = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
    };
    let max_diff = |a: &[f64], b: &[f64]| {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
    };
    let betas = max_diff(&ganglion_policies::schedule::betas(d.config()), &f64s(&g["betas"]));
    let acp = max_diff(d.alphas_cumprod(), &f64s(&g["alphas_cumprod"]));
    let ts: Vec<i64> = d.steps().iter().map(|s| s.timestep).collect();
    let want: Vec<i64> = g["timesteps"].as_array().expect("timesteps").iter().map(|t| t.as_i64().expect("t")).collect();
    assert_eq!(ts, want);
    assert!(
        betas <= 1e-7 && acp <= 1e-7,
        "tables differ from LeRobot's scheduler: betas {betas:e}, alphas_cumprod {acp:e}"
    );
    let o = &observations(&episodes(&g)[0])[0];
    let noise: Vec<Vec<f32>> = o["noise"].as_array().expect("noise").iter().map(f32s).collect();
    let mut x = noise[0].clone();
    let mut err = 0.0f64;
    for (k, s) in o["trajectory"].as_array().expect("trajectory").iter().enumerate() {
        assert_eq!(Timestep::Discrete(s["timestep"].as_i64().expect("t")), scheduler.timestep(k));
        let z = scheduler.draws_noise(k).then(|| noise[1 + k].as_slice());
        assert_eq!(z.is_some(), k + 1 < head.steps, "DDPM draws noise at every t > 0");
        scheduler.step(k, &f32s(&s["model_output"]), &mut x, z);
        for (a, b) in x.iter().zip(f32s(&s["prev_sample"])) {
            err = err.max((f64::from(*a) - f64::from(b)).abs());
        }
    }
    eprintln!("schedule vs LeRobot's DDPMScheduler: tables {:.1e}, trajectory max abs {err:.2e}", betas.max(acp));
    assert!(err <= 1e-5, "trajectory differs from DDPMScheduler.step by {err:e}");
}

/// History is kept for `obs.state` and cameras (graph outputs: not yet): a
/// camera history into an input without the history dimension is refused
/// naming the shape it needs, and a history on a graph output naming the
/// wire.
#[test]
fn history_where_it_cannot_be_kept_is_refused() {
    let edit = |from: &str| {
        let (tmp, path) = copy_bundle("iterative/flow-mlp");
        let file = path.join("policy.toml");
        let mut t: toml::Table = std::fs::read_to_string(&file).expect("read").parse().expect("toml");
        let wires = table(&mut t, &["dataflow"]).get_mut("wires").and_then(|w| w.as_array_mut()).expect("wires");
        let (i, wire) = wires
            .iter_mut()
            .enumerate()
            .find(|(_, w)| w.get("from").and_then(|f| f.as_str()) == Some(from))
            .expect("wire");
        wire.as_table_mut().expect("wire").insert("history".into(), 2.into());
        std::fs::write(&file, toml::to_string(&t).expect("toml")).expect("write");
        let msg = sign_bundle(&path, &test_secret_key()).map(|_| ()).expect_err("refused").to_string();
        drop(tmp);
        (i, msg)
    };
    let (i, msg) = edit("obs.image.front");
    assert!(msg.contains(&format!("dataflow.wires[{i}].to")) && msg.contains("[1, 2, 1|3, H, W]"), "{msg}");
    let (i, msg) = edit("encoder.cond");
    assert!(msg.contains(&format!("dataflow.wires[{i}].history")) && msg.contains("not yet graph outputs"), "{msg}");
}

fn load_graph(path: &Path, name: &str, m: &ganglion_policies::Manifest) -> Graph {
    let spec = m.dataflow.as_ref().and_then(|d| d.graphs.get(name)).expect("graph").clone();
    let bytes = std::fs::read(path.join(&spec.file)).expect("onnx");
    Graph::load(GraphRole::Dataflow, &spec, GraphModel::inline(&bytes), &path.join(&spec.file), &BackendChoice::Tract)
        .expect("graph on tract")
}

/// What one Diffusion inference allocates on tract, and where: the
/// pipeline's own work (history shift, noise, DDPM update, slicing,
/// de-normalization) allocates nothing, with the seeded stream and with
/// recorded noise; every allocation is inside the backend: the encoder's
/// run, the step graph's conditioning handed over once
/// (`Graph::hold_inputs`), and its 10 runs.
#[test]
fn the_pipeline_allocates_nothing_beyond_the_graph_runs_on_tract() {
    let path = dir().join("bundle");
    let mut policy = load(&path, BackendKind::Tract);
    let m = policy.manifest().clone();
    let spec = policy.spec().clone();
    let mut obs = Observation::for_spec(&spec);
    obs.joints.position.iter_mut().enumerate().for_each(|(i, p)| *p = 0.1 * i as f64);
    let mut out = ActionChunk::for_spec(&spec);
    let mut encoder = load_graph(&path, "encoder", &m);
    let mut step = load_graph(&path, "step", &m);
    encoder.run().expect("encoder");
    step.run().expect("step");
    let head = m.dataflow.as_ref().and_then(|d| d.head.as_ref()).expect("head");
    let held: Vec<bool> = step.spec().inputs.iter().map(|t| t.name != head.sample && t.name != head.timestep).collect();
    assert_eq!(held.iter().filter(|&&h| h).count(), 1, "global_cond");
    let enc = allocations(&mut || encoder.run().expect("encoder"));
    let hold = allocations(&mut || step.hold_inputs(&held).expect("hold"));
    let one_step = allocations(&mut || step.run().expect("step"));
    let release = allocations(&mut || step.hold_inputs(&[]).expect("release"));
    let graphs = enc + hold + 10 * one_step + release;
    policy.infer(&obs, &mut out).expect("warm");
    let seeded = allocations(&mut || policy.infer(&obs, &mut out).expect("infer"));
    let seeded_again = allocations(&mut || policy.infer(&obs, &mut out).expect("infer"));
    let tensors = vec![vec![0.5f32; 48]; 30];
    policy.set_noise_source(Some(Box::new(RecordedNoise::new(tensors)))).expect("source");
    let recorded = allocations(&mut || policy.infer(&obs, &mut out).expect("infer"));
    eprintln!(
        "tract: {seeded} allocations per chunk (seeded), {recorded} (recorded noise); encoder run {enc}, \
         conditioning held {hold}, step run {one_step}: graphs {graphs}"
    );
    assert_eq!(
        (seeded, seeded_again, recorded),
        (graphs, graphs, graphs),
        "the pipeline allocates beyond the graph runs"
    );
}

/// The LeRobot-trained reach Diffusion (imported by `ganglion policy
/// import --weights int8`; fixtures/lerobot-diffusion/reach/README.md)
/// reproduces LeRobot's `select_action` on its signed golden (dataset
/// frames, the recorded noise) within the tolerance its provenance states,
/// on tract and ONNX Runtime: what `ganglion policy check` replays.
#[test]
fn the_trained_reach_bundle_reproduces_its_golden() {
    let bundle = dir().join("reach/bundle");
    for backend in [BackendKind::Tract, BackendKind::Ort] {
        if backend == BackendKind::Ort && !ort_or_skip("the_trained_reach_bundle_reproduces_its_golden (ort)") {
            continue;
        }
        let mut policy = load(&bundle, backend);
        let tolerance = policy.manifest().provenance.as_ref().expect("imported").parity.tolerance;
        let r = parity::recheck(&mut policy, &bundle).expect("replay").expect("a parity reference");
        eprintln!("reach Diffusion on {}: max abs {:.2e} over {} chunks", backend.as_str(), r.max_abs_error, r.samples);
        assert_eq!(r.samples, 8);
        assert!(r.max_abs_error <= tolerance, "{}: {:e} > {tolerance:e}", backend.as_str(), r.max_abs_error);
    }
}

/// LeRobot Diffusion with a camera and `n_obs_steps = 2` (random weights,
/// fixtures/lerobot-diffusion/image-history/README.md): the image wire
/// keeps two frames, and the bundle reproduces LeRobot's `select_action`
/// over two episodes of five different frames with the recorded noise, on
/// tract and ONNX Runtime. Fed without the history, the same observations
/// miss by far more: the golden tells a runtime that drops it.
#[test]
fn image_history_matches_lerobot_with_two_observation_steps() {
    let base = dir().join("image-history");
    let path = base.join("golden.json");
    let golden = DiffusionGolden::parse(&std::fs::read(&path).expect("read"), &path).expect("golden");
    for backend in [BackendKind::Tract, BackendKind::Ort] {
        if backend == BackendKind::Ort && !ort_or_skip("image_history_matches_lerobot (ort)") {
            continue;
        }
        let mut policy = load(&base.join("bundle"), backend);
        let r = parity::run_golden(&mut policy, &golden, &path).expect("golden replay");
        eprintln!("image history on {}: max abs {:.2e} over {} chunks", backend.as_str(), r.max_abs_error, r.samples);
        assert_eq!(r.samples, 10);
        assert!(r.max_abs_error <= 1e-4, "{}: {:e}", backend.as_str(), r.max_abs_error);
    }
    let mut policy = load(&base.join("bundle"), BackendKind::Tract);
    let r = parity::run_golden(&mut policy, &regrouped(&golden, Feed::ResetEveryObservation), &path)
        .expect("replay without history");
    assert!(r.max_abs_error > 1e-2, "without the history: {:e}", r.max_abs_error);
}

/// Replays `golden` with each observation's history handed over as the
/// control loop hands it ([`Observation::past`]): `past[0]` is the golden
/// observation `gap` steps before (the episode's first where there is none,
/// as LeRobot fills its queue), with the recorded noise. Returns the largest
/// |action − PyTorch action|.
fn replay_with_past(policy: &mut BundlePolicy, golden: &DiffusionGolden, gap: usize) -> f64 {
    use base64::Engine as _;
    use ganglion_core::{PixelFormat, Stamp};
    let spec = policy.spec().clone();
    assert_eq!(spec.history, 2, "the bundle reads two observations");
    let tensors: Vec<Vec<f32>> = golden.observations().flat_map(|o| o.noise.iter().cloned()).collect();
    policy.set_noise_source(Some(Box::new(RecordedNoise::new(tensors)))).expect("noise source");
    let cam = &spec.cameras[0];
    let pixels = |o: &GoldenObservation| {
        base64::engine::general_purpose::STANDARD.decode(o.image_rgb8_b64.as_deref().expect("image")).expect("base64")
    };
    let mut obs = Observation::with_history(&spec);
    let mut out = ActionChunk::for_spec(&spec);
    let mut worst = 0.0f64;
    let mut id = 0;
    for e in &golden.episodes {
        for (k, o) in e.observations.iter().enumerate() {
            let before = &e.observations[k.saturating_sub(gap)];
            let p = &mut obs.past[0];
            p.stamp = Stamp(id * 100);
            p.joints.position.iter_mut().zip(&before.joints).for_each(|(d, s)| *d = *s);
            p.frames[0].set(cam.width, cam.height, PixelFormat::Rgb8, &pixels(before)).expect("frame");
            obs.stamp = Stamp(id * 100 + 100);
            obs.joints.position.iter_mut().zip(&o.joints).for_each(|(d, s)| *d = *s);
            obs.frames[0].set(cam.width, cam.height, PixelFormat::Rgb8, &pixels(o)).expect("frame");
            obs.request_id = id;
            id += 1;
            policy.infer(&obs, &mut out).expect("infer");
            for (i, row) in o.actions.iter().enumerate() {
                for (a, b) in out.step(i).iter().zip(row) {
                    worst = worst.max((a - b).abs());
                }
            }
        }
    }
    policy.set_noise_source(None).expect("own noise again");
    worst
}

/// The control loop's history (one observation per policy step, handed over
/// with the newest: `Observation::past`) is LeRobot's queue: with the golden
/// observation one step before as `past`, the bundle reproduces LeRobot's
/// `select_action` chunks on both backends, however the policy was called
/// before (no reset between the episodes here: `past` alone decides). With
/// the one two steps before, the same observations miss by far more.
#[test]
fn the_loops_per_step_history_is_lerobots_queue() {
    let base = dir().join("image-history");
    let path = base.join("golden.json");
    let golden = DiffusionGolden::parse(&std::fs::read(&path).expect("read"), &path).expect("golden");
    for backend in [BackendKind::Tract, BackendKind::Ort] {
        if backend == BackendKind::Ort && !ort_or_skip("the_loops_per_step_history_is_lerobots_queue (ort)") {
            continue;
        }
        let mut policy = load(&base.join("bundle"), backend);
        let err = replay_with_past(&mut policy, &golden, 1);
        eprintln!("explicit past on {}: max abs vs PyTorch {err:.2e}", backend.as_str());
        assert!(err <= 1e-4, "{}: {err:e}", backend.as_str());
    }
    let mut policy = load(&base.join("bundle"), BackendKind::Tract);
    let err = replay_with_past(&mut policy, &golden, 2);
    assert!(err > 1e-2, "a past two steps back: {err:e}");
}
