//! Iterative heads (issue 16) against implementations Ganglion did not write:
//! diffusers' schedulers (tables and trajectories in
//! `fixtures/iterative/schedulers.json`) and Python reference loops over the
//! same ONNX step graphs (`fixtures/iterative/*.golden.json`), all written by
//! `fixtures/iterative/make_iterative.py`. Plus seeded-noise replay and the
//! bad-bundle cases of `fixtures/iterative/bad.toml`.

mod common;

use std::path::{Path, PathBuf};

use common::{fixtures, opts, ort_or_skip};
use ganglion_core::{ActionChunk, JointVec, Observation, PixelFormat, Policy};
use ganglion_policies::manifest::ScheduleSpec;
use ganglion_policies::schedule::{Scheduler, Timestep};
use ganglion_policies::{load_policy, BackendKind, BundleError, BundlePolicy, LoadOptions};
use serde::Deserialize;

fn iterative() -> PathBuf {
    fixtures().join("iterative")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read golden")).expect("parse golden")
}

fn f32s(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn max_abs_f32(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs()).fold(0.0, f64::max)
}

/// Tables (betas, alphas_cumprod, flow times) against diffusers' float32
/// tensors: measured 0 for the cosine schedule, one f32 ulp (6e-8) for
/// `linear` (torch.linspace's vectorized rounding).
const TABLE_TOL: f64 = 1e-7;
/// Trajectories: per-element arithmetic in f64 here, f32 tensors in
/// diffusers; measured 2.4e-7 (flow, 10 steps) to 6.7e-6 (DDPM linear,
/// `sample` prediction, 50 steps).
const TRAJECTORY_TOL: f64 = 1e-5;

#[test]
fn schedulers_match_diffusers() {
    let golden = json(&iterative().join("schedulers.json"));
    let cases = golden["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let steps = case["steps"].as_u64().expect("steps") as usize;
        let kind = case["kind"].as_str().expect("kind");
        // The manifest's keys are diffusers' config keys: build through them.
        let mut spec = case["config"].clone();
        spec["kind"] = kind.into();
        if kind == "ddim" {
            spec["eta"] = case["eta"].clone();
        }
        let spec: ScheduleSpec = serde_json::from_value(spec).expect("schedule spec");
        let scheduler = spec.build(steps).expect("schedule");
        let mut table_err = 0.0f64;
        match &scheduler {
            Scheduler::Diffusion(d) => {
                for (a, b) in d.alphas_cumprod().iter().zip(f64s(&case["alphas_cumprod"])) {
                    table_err = table_err.max((a - b).abs());
                }
                let betas = ganglion_policies::schedule::betas(d.config());
                for (a, b) in betas.iter().zip(f64s(&case["betas"])) {
                    table_err = table_err.max((a - b).abs());
                }
                let ts: Vec<i64> = d.steps().iter().map(|s| s.timestep).collect();
                let want: Vec<i64> =
                    case["timesteps"].as_array().expect("ts").iter().map(|t| t.as_i64().expect("t")).collect();
                assert_eq!(ts, want, "{name}: timesteps");
            }
            Scheduler::FlowEuler(f) => {
                // diffusers' sigmas are linspace(1, 1/N) in f64 rounded to f32;
                // ours accumulate dt in f32 as LeRobot/openpi do: two f32
                // ulps apart at most (measured 1.2e-7).
                let mut time_err = 0.0f64;
                for (a, b) in f.times().iter().zip(f32s(&case["sigmas"])) {
                    time_err = time_err.max((f64::from(*a) - f64::from(b)).abs());
                }
                assert!(time_err <= 2.5e-7, "{name}: times differ from diffusers' sigmas by {time_err:e}");
                assert_eq!(scheduler.timestep(0), Timestep::Continuous(1.0));
            }
        }
        assert!(table_err <= TABLE_TOL, "{name}: tables differ from diffusers by {table_err:e}");
        let mut x = f32s(&case["sample"]);
        let outputs = case["model_outputs"].as_array().expect("outputs");
        let noises = case["noises"].as_array().expect("noises");
        let mut traj_err = 0.0f64;
        for (k, want) in case["trajectory"].as_array().expect("trajectory").iter().enumerate() {
            let noise = noises.get(k).map(f32s);
            let noise = noise.as_deref().filter(|_| scheduler.draws_noise(k));
            scheduler.step(k, &f32s(&outputs[k]), &mut x, noise);
            traj_err = traj_err.max(max_abs_f32(&x, &f32s(want)));
        }
        assert!(traj_err <= TRAJECTORY_TOL, "{name}: trajectory differs from diffusers by {traj_err:e}");
        eprintln!("{name}: tables max abs {table_err:.2e}, trajectory max abs {traj_err:.2e} ({steps} steps)");
    }
}

/// The golden's observation: its joint positions, and for each camera the
/// frame the generator used (rgb8, pixel (x, y, ch) = (29x + 53y + 71ch) mod 256).
fn golden_observation(policy: &BundlePolicy, golden: &serde_json::Value) -> Observation {
    let spec = policy.spec().clone();
    let mut obs = Observation::for_spec(&spec);
    for (p, v) in obs.joints.position.iter_mut().zip(f64s(&golden["positions"])) {
        *p = v;
    }
    for (frame, cam) in obs.frames.iter_mut().zip(&spec.cameras) {
        assert_eq!(cam.format, PixelFormat::Rgb8);
        let w = cam.width as usize;
        frame
            .set_with(cam.width, cam.height, cam.format, |b| {
                for (i, px) in b.iter_mut().enumerate() {
                    let (pixel, ch) = (i / 3, i % 3);
                    let (x, y) = (pixel % w, pixel / w);
                    *px = ((29 * x + 53 * y + 71 * ch) % 256) as u8;
                }
            })
            .expect("frame");
    }
    obs.request_id = golden["request_id"].as_u64().expect("request id");
    obs
}

fn run(policy: &mut BundlePolicy, obs: &Observation) -> ActionChunk {
    let mut out = ActionChunk::for_spec(policy.spec());
    policy.infer(obs, &mut out).expect("infer");
    out
}

/// The bundle's chunk, from the golden's initial noise, against the Python
/// reference loop; returns the max abs difference.
fn parity(bundle: &str, backend: BackendKind) -> f64 {
    let golden = json(&iterative().join(format!("{bundle}.golden.json")));
    let mut policy = load_policy(&iterative().join(bundle), &opts(backend)).expect("load");
    policy.set_initial_noise(Some(&f32s(&golden["initial_noise"]))).expect("inject");
    let obs = golden_observation(&policy, &golden);
    let out = run(&mut policy, &obs);
    let want = f64s(&golden["chunk"]);
    assert_eq!(out.as_slice().len(), want.len());
    let err = out.as_slice().iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let noise = policy.last_noise().expect("noise record");
    assert!(noise.injected && noise.stream == obs.request_id);
    eprintln!("{bundle} on {}: max abs vs the Python reference {err:.2e}", backend.as_str());
    assert!(err <= 1e-4, "{bundle} on {}: chunk differs from the golden by {err:e}", backend.as_str());
    err
}

#[test]
fn flow_bundle_matches_python_reference_on_tract() {
    parity("flow-mlp", BackendKind::Tract);
}

#[test]
fn ddim_bundle_matches_python_reference_on_tract() {
    parity("ddim-mlp", BackendKind::Tract);
}

#[test]
fn flow_bundle_matches_python_reference_on_ort() {
    if ort_or_skip("flow_bundle_matches_python_reference_on_ort") {
        parity("flow-mlp", BackendKind::Ort);
    }
}

#[test]
fn ddim_bundle_matches_python_reference_on_ort() {
    if ort_or_skip("ddim_bundle_matches_python_reference_on_ort") {
        parity("ddim-mlp", BackendKind::Ort);
    }
}

#[test]
fn the_seed_recreates_the_chunk_bit_for_bit() {
    let golden = json(&iterative().join("flow-mlp.golden.json"));
    let mut policy = load_policy(&iterative().join("flow-mlp"), &opts(BackendKind::Tract)).expect("load");
    let obs = golden_observation(&policy, &golden);
    let bits = |c: &ActionChunk| c.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
    policy.set_noise_seed(42);
    let a = run(&mut policy, &obs);
    let record = policy.last_noise().expect("record");
    assert_eq!((record.seed, record.stream, record.injected), (42, obs.request_id, false));
    let b = run(&mut policy, &obs);
    assert_eq!(bits(&a), bits(&b), "same seed, same request: same chunk");
    // A fresh load with the same seed re-creates it (replay).
    let mut again = load_policy(&iterative().join("flow-mlp"), &opts(BackendKind::Tract)).expect("load");
    again.set_noise_seed(42);
    assert_eq!(bits(&a), bits(&run(&mut again, &obs)));
    policy.set_noise_seed(43);
    assert_ne!(bits(&a), bits(&run(&mut policy, &obs)), "another seed, another chunk");
    policy.set_noise_seed(42);
    let mut next = obs.clone();
    next.request_id += 1;
    assert_ne!(bits(&a), bits(&run(&mut policy, &next)), "another request, another stream");
    // Injected noise wins over the seed and is recorded as such.
    policy.set_initial_noise(Some(&f32s(&golden["initial_noise"]))).expect("inject");
    let _ = run(&mut policy, &obs);
    assert!(policy.last_noise().expect("record").injected);
    assert!(policy.set_initial_noise(Some(&[0.0; 3])).is_err(), "wrong length refused");
}

/// A copy of a fixture bundle whose manifest has `replace` replaced (the
/// first occurrence, or all), unsigned: the edit breaks the signature, so
/// it is dropped and the bundle loaded with [`unsigned`].
fn edited_bundle(bundle: &str, replace: &str, with: &str, all: bool) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = common::copy_bundle(&format!("iterative/{bundle}"));
    let text = std::fs::read_to_string(dir.join("policy.toml")).expect("manifest");
    assert!(text.contains(replace), "`{replace}` not in the manifest of {bundle}");
    let edited = if all { text.replace(replace, with) } else { text.replacen(replace, with, 1) };
    std::fs::write(dir.join("policy.toml"), edited).expect("write");
    std::fs::remove_file(dir.join("signature.ed25519")).expect("unsign");
    (tmp, dir)
}

fn unsigned() -> LoadOptions {
    LoadOptions { allow_unsigned: true, ..LoadOptions::default() }
}

#[test]
fn ddpm_draws_step_noise_from_the_seed() {
    let golden = json(&iterative().join("ddim-mlp.golden.json"));
    let noise = f32s(&golden["initial_noise"]);
    let bits = |c: &ActionChunk| c.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
    // The DDIM bundle's step graph under DDPM (same parameters).
    let (_tmp, dir) = edited_bundle("ddim-mlp", r#"kind = "ddim""#, r#"kind = "ddpm""#, false);
    let mut ddpm = load_policy(&dir, &unsigned()).expect("load ddpm");
    let obs = golden_observation(&ddpm, &golden);
    ddpm.set_initial_noise(Some(&noise)).expect("inject");
    ddpm.set_noise_seed(5);
    let a = run(&mut ddpm, &obs);
    assert_eq!(bits(&a), bits(&run(&mut ddpm, &obs)), "same seed: same DDPM chunk");
    ddpm.set_noise_seed(6);
    assert_ne!(bits(&a), bits(&run(&mut ddpm, &obs)), "DDPM's step noise comes from the seed");
    // DDIM (eta = 0) draws none: with x_T injected the seed changes nothing.
    let mut ddim = load_policy(&iterative().join("ddim-mlp"), &opts(BackendKind::Tract)).expect("load ddim");
    ddim.set_initial_noise(Some(&noise)).expect("inject");
    ddim.set_noise_seed(5);
    let b = run(&mut ddim, &obs);
    ddim.set_noise_seed(6);
    assert_eq!(bits(&b), bits(&run(&mut ddim, &obs)));
    assert_ne!(bits(&a), bits(&b), "DDPM and DDIM differ");
}

#[derive(Deserialize)]
struct BadCases {
    case: Vec<BadCase>,
}

#[derive(Deserialize)]
struct BadCase {
    name: String,
    bundle: String,
    replace: String,
    with: String,
    #[serde(default)]
    all: bool,
    key: Option<String>,
    file: Option<String>,
    expect: String,
}

#[test]
fn bad_bundles_are_refused_with_the_place_named() {
    let cases: BadCases =
        toml::from_str(&std::fs::read_to_string(iterative().join("bad.toml")).expect("read")).expect("parse");
    assert!(cases.case.len() >= 10);
    for case in &cases.case {
        let (_tmp, dir) = edited_bundle(&case.bundle, &case.replace, &case.with, case.all);
        let err = load_policy(&dir, &unsigned()).expect_err(&case.name);
        let msg = err.to_string();
        match (&case.key, &case.file, &err) {
            (Some(key), _, BundleError::Manifest { key: k, problem, .. }) => {
                assert_eq!(k, key, "{}: {msg}", case.name);
                assert!(problem.contains(&case.expect), "{}: {msg}", case.name);
            }
            (None, Some(file), BundleError::Model { file: f, reason }) => {
                assert!(f.ends_with(file), "{}: {msg}", case.name);
                assert!(reason.contains(&case.expect), "{}: {msg}", case.name);
            }
            _ => panic!("{}: unexpected error {msg}", case.name),
        }
        eprintln!("{}: {msg}", case.name);
    }
}

#[test]
fn a_format_2_bundle_signs_and_reloads() {
    let (_tmp, dir) = common::copy_bundle("iterative/ddim-mlp");
    let m = ganglion_policies::sign_bundle(&dir, &common::test_secret_key()).expect("sign");
    assert_eq!(m.format, 2);
    let policy = load_policy(&dir, &opts(BackendKind::Tract)).expect("reload the canonical form");
    assert!(policy.manifest().dataflow.as_ref().is_some_and(|d| d.head.is_some()));
}

#[test]
fn format_1_bundles_have_no_noise() {
    let mut policy = load_policy(&fixtures().join("single"), &opts(BackendKind::Tract)).expect("load");
    assert!(policy.last_noise().is_none());
    assert!(policy.set_initial_noise(Some(&[0.0])).is_err());
}

/// Real-time chunking (`dataflow.head.committed = "inpaint"`, the default):
/// the actions the executor committed to come back as chunk actions
/// 1..=k, and the free actions are denoised conditioned on them; `ignore`
/// leaves the chunk as if nothing were committed. Flow matching and DDIM.
#[test]
fn committed_actions_are_inpainted_into_the_chunk() {
    for bundle in ["flow-mlp", "ddim-mlp"] {
        let golden = json(&iterative().join(format!("{bundle}.golden.json")));
        let noise = f32s(&golden["initial_noise"]);
        let mut policy = load_policy(&iterative().join(bundle), &opts(BackendKind::Tract)).expect("load");
        policy.set_initial_noise(Some(&noise)).expect("inject");
        let mut obs = golden_observation(&policy, &golden);
        let free = run(&mut policy, &obs);
        assert_eq!(policy.last_stages().expect("format 2").inpainted_actions, 0);
        let (steps, n) = (free.steps(), free.n_joints());
        // Committed targets away from what the policy would do alone.
        let k = 3;
        for i in 1..=k {
            let mut target = JointVec::zeros(n);
            for (j, t) in target.iter_mut().enumerate() {
                *t = free.step(i)[j] + 0.05 * (1.0 + j as f64) * if i % 2 == 0 { 1.0 } else { -1.0 };
            }
            obs.committed.push(target).expect("room");
        }
        let pinned = run(&mut policy, &obs);
        assert_eq!(policy.last_stages().expect("format 2").inpainted_actions, k, "{bundle}");
        for (i, target) in obs.committed.iter().enumerate() {
            let err = pinned.step(i + 1).iter().zip(target.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err < 1e-5, "{bundle}: action {} is {err:e} from the committed one", i + 1);
        }
        // The free actions saw the known ones (the step graph mixes actions).
        let moved = (k + 1..steps)
            .map(|i| pinned.step(i).iter().zip(free.step(i)).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max))
            .fold(0.0, f64::max);
        assert!(moved > 1e-4, "{bundle}: the free actions ignored the committed ones ({moved:e})");
        let bits = |c: &ActionChunk| c.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
        assert_eq!(bits(&pinned), bits(&run(&mut policy, &obs)), "{bundle}: same inputs, same chunk");
        // More committed actions than the chunk holds: all but action 0 are known.
        while obs.committed.push(JointVec::splat(n, 0.1)).is_ok() {}
        let _ = run(&mut policy, &obs);
        assert_eq!(policy.last_stages().expect("format 2").inpainted_actions, steps - 1, "{bundle}");

        // committed = "ignore": the chunk is the one sampled without them.
        let (_tmp, dir) = edited_bundle(bundle, "steps = 10\n", "steps = 10\ncommitted = \"ignore\"\n", false);
        let mut ignoring = load_policy(&dir, &unsigned()).expect("load ignore");
        ignoring.set_initial_noise(Some(&noise)).expect("inject");
        assert_eq!(bits(&free), bits(&run(&mut ignoring, &obs)), "{bundle}: ignore");
        assert_eq!(ignoring.last_stages().expect("format 2").inpainted_actions, 0);
    }
}

/// The flow fixture restated in other joint units: its `[joints]` and
/// `[action]` statistics mapped per joint by `(a, b)` (value = a·rad + b;
/// a std by a alone) and `units` declared, unsigned, in a fresh directory.
fn flow_bundle_in_units(affine: [(f64, f64); 3], units: &str) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = common::copy_bundle("iterative/flow-mlp");
    let stat = |v: [f64; 3], mean: bool| {
        let out: [f64; 3] = std::array::from_fn(|k| {
            let (a, b) = affine[k];
            f64::from((a * v[k] + if mean { b } else { 0.0 }) as f32)
        });
        format!("{out:?}")
    };
    let text = std::fs::read_to_string(dir.join("policy.toml")).expect("manifest");
    let edited = text
        .replacen(
            "mean = [0.1, -0.2, 0.3]\nstd = [0.5, 0.6, 0.7]",
            &format!(
                "mean = {}\nstd = {}\nunits = {units}",
                stat([0.1, -0.2, 0.3], true),
                stat([0.5, 0.6, 0.7], false)
            ),
            1,
        )
        .replacen(
            "mean = [0.0, 0.1, -0.1]\nstd = [0.8, 0.4, 0.5]",
            &format!("mean = {}\nstd = {}", stat([0.0, 0.1, -0.1], true), stat([0.8, 0.4, 0.5], false)),
            1,
        );
    assert_eq!(edited.matches("units = ").count(), 1, "the edit applied");
    std::fs::write(dir.join("policy.toml"), edited).expect("write");
    std::fs::remove_file(dir.join("signature.ed25519")).expect("unsign");
    (tmp, dir)
}

/// The flow fixture's chunk for its golden observation with a committed
/// action to inpaint, loaded from `dir` with `opts`.
fn flow_chunk(dir: &Path, opts: &LoadOptions) -> ActionChunk {
    let golden = json(&iterative().join("flow-mlp.golden.json"));
    let mut policy = load_policy(dir, opts).expect("load");
    policy.set_initial_noise(Some(&f32s(&golden["initial_noise"]))).expect("inject");
    let mut obs = golden_observation(&policy, &golden);
    obs.committed.push(JointVec::splat(3, 0.2)).expect("room");
    run(&mut policy, &obs)
}

/// `got` is the radian bundle's chunk `want`, inpainted action included.
fn assert_same_chunk(what: &str, got: &ActionChunk, want: &ActionChunk) {
    let err = got.as_slice().iter().zip(want.as_slice()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    eprintln!("{what} vs radians bundle: max abs {err:.2e} rad");
    assert!(err < 1e-5, "{what} bundle differs by {err:e} rad");
    assert!((got.step(1)[0] - 0.2).abs() < 1e-5, "the inpainted action in radians: {}", got.step(1)[0]);
}

/// `[joints] units = "deg"`: a policy trained in degrees (LeRobot's SO-101
/// with `use_degrees`) sees the robot's radians converted before
/// normalization and its actions converted back. The flow bundle with its
/// statistics restated in degrees gives the radian bundle's chunk, the
/// inpainted committed actions included.
#[test]
fn joint_units_are_converted_at_the_normalizer() {
    let want = flow_chunk(&iterative().join("flow-mlp"), &opts(BackendKind::Tract));
    let deg = (180.0 / std::f64::consts::PI, 0.0);
    let (_tmp, dir) = flow_bundle_in_units([deg; 3], r#"["deg", "deg", "deg"]"#);
    assert_same_chunk("degrees", &flow_chunk(&dir, &unsigned()), &want);
}

/// LeRobot's range units (`range_m100_100`, `range_0_100`: its SO-101
/// body joints without `use_degrees`, and its gripper always) are relative
/// to the arm's calibration: given the arm's calibrated ranges
/// (`LoadOptions::joint_ranges`, from the servo driver), the flow bundle
/// with its statistics restated in those units gives the radian bundle's
/// chunk, inpainted committed action included; without them the bundle is
/// refused, naming `joints.units`.
#[test]
fn range_units_are_converted_with_the_arms_calibration() {
    use ganglion_policies::preprocess::JointRange;
    let want = flow_chunk(&iterative().join("flow-mlp"), &opts(BackendKind::Tract));
    // Joint 0 in -100..100 over [-2, 2.5] rad, joint 1 in 0..100 over
    // [-1.5, 1] rad, joint 2 in degrees.
    let ranges = [
        JointRange { min_rad: -2.0, max_rad: 2.5, inverted: false },
        JointRange { min_rad: -1.5, max_rad: 1.0, inverted: false },
        JointRange { min_rad: -3.0, max_rad: 3.0, inverted: false },
    ];
    let affine = [
        (200.0 / 4.5, 2.0 * 200.0 / 4.5 - 100.0),
        (100.0 / 2.5, 1.5 * 100.0 / 2.5),
        (180.0 / std::f64::consts::PI, 0.0),
    ];
    let (_tmp, dir) = flow_bundle_in_units(affine, r#"["range_m100_100", "range_0_100", "deg"]"#);
    let err = load_policy(&dir, &unsigned()).expect_err("no calibration").to_string();
    assert!(err.contains("joints.units") && err.contains("calibration"), "{err}");
    let with_arm = LoadOptions { joint_ranges: ranges.to_vec(), ..unsigned() };
    assert_same_chunk("range units", &flow_chunk(&dir, &with_arm), &want);
}

/// `history = 2` on a camera wire and on the state wire (LeRobot's
/// `n_obs_steps = 2` queues): the inputs hold the last two observations,
/// oldest first; the first after a load or `reset_history` fills both
/// slots. The fixture's graph weighs slot 0 by 1 and slot 1 by 10 (images)
/// and 100 / 1000 (state), so every action says which observation sits
/// where (`fixtures/iterative/make_image_history.py`).
#[test]
fn image_and_state_histories_hold_the_last_observations_oldest_first() {
    let (_tmp, dir) = common::copy_bundle("iterative/image-history");
    ganglion_policies::sign_bundle(&dir, &common::test_secret_key()).expect("sign");
    for backend in [BackendKind::Tract, BackendKind::Ort] {
        if backend == BackendKind::Ort && !ort_or_skip("image_and_state_histories (ort)") {
            continue;
        }
        let mut policy = load_policy(&dir, &opts(backend)).expect("load");
        let mut obs = Observation::for_spec(policy.spec());
        // Observation k: every pixel (10k, 20k, 30k), joints 0.01k.
        let mut run_k = |policy: &mut BundlePolicy, k: u32| {
            let px = [10 * k, 20 * k, 30 * k].map(|v| v as u8);
            obs.frames[0]
                .set_with(4, 4, PixelFormat::Rgb8, |b| b.chunks_exact_mut(3).for_each(|p| p.copy_from_slice(&px)))
                .expect("frame");
            obs.joints.position.fill(0.01 * f64::from(k));
            run(policy, &obs).step(0).to_vec()
        };
        let want = |old: u32, new: u32| -> Vec<f64> {
            (1..=3)
                .map(|c| {
                    let image = f64::from(10 * c * old) / 255.0 + 10.0 * f64::from(10 * c * new) / 255.0;
                    image + 100.0 * 0.01 * f64::from(old) + 1000.0 * 0.01 * f64::from(new)
                })
                .collect()
        };
        let close =
            |got: &[f64], want: &[f64]| got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-3 * b.abs().max(1.0));
        for (k, (old, new)) in [(1, (1, 1)), (2, (1, 2)), (3, (2, 3))] {
            let got = run_k(&mut policy, k);
            assert!(close(&got, &want(old, new)), "{backend:?} observation {k}: {got:?} vs {:?}", want(old, new));
        }
        policy.reset_history();
        let got = run_k(&mut policy, 5);
        assert!(close(&got, &want(5, 5)), "{backend:?} after the reset: {got:?} vs {:?}", want(5, 5));
    }
}

/// `[[cameras]] absent = true` (a camera the policy was trained with but the
/// robot lacks) and `obs.image_mask.<camera>`: the absent camera is not in
/// the policy's spec, its input holds a black frame normalized like any
/// pixel (−1 with SigLIP's mean/std 0.5), and the masks say which camera is
/// real (`fixtures/iterative/make_image_history.py`, absent-camera).
#[test]
fn an_absent_camera_is_a_black_frame_with_its_mask_false() {
    let (_tmp, dir) = common::copy_bundle("iterative/absent-camera");
    ganglion_policies::sign_bundle(&dir, &common::test_secret_key()).expect("sign");
    for backend in [BackendKind::Tract, BackendKind::Ort] {
        if backend == BackendKind::Ort && !ort_or_skip("an_absent_camera (ort)") {
            continue;
        }
        let mut policy = load_policy(&dir, &opts(backend)).expect("load");
        let names: Vec<&str> = policy.spec().cameras.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["front"], "the robot delivers the front camera only");
        let mut obs = Observation::for_spec(policy.spec());
        for k in [1u8, 2] {
            let px = [10 * k, 20 * k, 30 * k];
            obs.frames[0]
                .set_with(4, 4, PixelFormat::Rgb8, |b| b.chunks_exact_mut(3).for_each(|p| p.copy_from_slice(&px)))
                .expect("frame");
            let got = run(&mut policy, &obs).step(0).to_vec();
            // front normalized + 10 × wrist (black: −1) + 100 × front mask (true) + 1000 × wrist mask (false)
            let want: Vec<f64> = px.iter().map(|&v| (f64::from(v) / 255.0 - 0.5) / 0.5 - 10.0 + 100.0).collect();
            assert!(
                got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4),
                "{backend:?} frame {k}: {got:?} vs {want:?}"
            );
        }
    }
    // Format 1 has no image masks: an absent camera there is refused.
    let (_tmp, single) = common::copy_bundle("single");
    let text = std::fs::read_to_string(single.join("policy.toml")).expect("manifest");
    let i = text.find("[[cameras]]").expect("a camera in the format-1 fixture");
    let edited = format!("{}[[cameras]]\nabsent = true\n{}", &text[..i], &text[i + "[[cameras]]\n".len()..]);
    std::fs::write(single.join("policy.toml"), edited).expect("write");
    let _ = std::fs::remove_file(single.join("signature.ed25519"));
    let err = load_policy(&single, &unsigned()).expect_err("refused").to_string();
    assert!(err.contains("cameras[0].absent") && err.contains("format = 2"), "{err}");
}

// Graph tensors of f16, bf16 and i32 (fixtures/iterative/make_dtypes.py):
// held as f32/i64 by the runtime, narrowed and widened by the backend.

#[test]
fn half_precision_and_i32_tensors_match_python_on_tract() {
    parity("ddim-mlp-half", BackendKind::Tract);
}

#[test]
fn half_precision_and_i32_tensors_match_python_on_ort() {
    if ort_or_skip("half_precision_and_i32_tensors_match_python_on_ort") {
        parity("ddim-mlp-half", BackendKind::Ort);
    }
}

#[test]
fn a_bf16_kv_cache_matches_python_on_ort() {
    if ort_or_skip("a_bf16_kv_cache_matches_python_on_ort") {
        parity("ddim-mlp-bf16", BackendKind::Ort);
    }
}

#[test]
fn tract_refuses_bf16_naming_the_tensor_and_the_way_out() {
    let err = load_policy(&iterative().join("ddim-mlp-bf16"), &opts(BackendKind::Tract)).expect_err("bf16 on tract");
    let msg = err.to_string();
    assert!(matches!(err, BundleError::Model { .. }), "{msg}");
    assert!(msg.contains("tensor `kv_0`: tract has no bf16: run this bundle with `--backend ort`"), "{msg}");
}

#[test]
fn an_i32_input_out_of_range_is_an_error_not_a_wrapped_value() {
    use ganglion_policies::backend::{Graph, TensorBuf};
    use ganglion_policies::manifest::{DType, GraphRole, GraphSpec, TensorSpec};
    let dir = iterative().join("ddim-mlp-half");
    let bytes = std::fs::read(dir.join("step.onnx")).expect("read");
    let t = |name: &str, shape: &[usize], dtype| TensorSpec::fixed(name, shape.to_vec(), dtype);
    let spec = GraphSpec {
        file: "step.onnx".into(),
        inputs: vec![
            t("sample", &[1, 8, 3], DType::F16),
            t("timestep", &[1], DType::I32),
            t("past_0", &[1, 4, 8], DType::F16),
            t("past_1", &[1, 4, 8], DType::F16),
        ],
        outputs: vec![t("eps", &[1, 8, 3], DType::F16)],
    };
    let model = ganglion_policies::backend::GraphModel::inline(&bytes);
    let mut g = Graph::load(
        GraphRole::Dataflow,
        &spec,
        model,
        &dir.join("step.onnx"),
        &ganglion_policies::backend::BackendChoice::Tract,
    )
    .expect("load");
    g.run().expect("in range");
    let Some(TensorBuf::I64(ts)) = g.io_mut().inputs.get_mut(1) else { panic!("timestep held as i64") };
    ts[0] = i64::from(i32::MAX) + 1;
    let err = g.run().expect_err("out of range");
    assert!(err.to_string().contains("input `timestep`: 2147483648 does not fit the graph's i32"), "{err}");
}

// Dynamic batching (issue 19): robots of a policy server share the graphs'
// engines through a `BatchPool` (fixtures/iterative/make_batch.py).

/// Robot `i`'s observation: its own joint positions, frame and request id.
fn robot_observation(policy: &BundlePolicy, i: usize) -> Observation {
    let golden = json(&iterative().join("flow-mlp.golden.json"));
    let mut obs = golden_observation(policy, &golden);
    for (k, p) in obs.joints.position.iter_mut().enumerate() {
        *p += 0.1 * i as f64 - 0.05 * k as f64;
    }
    for frame in obs.frames.iter_mut() {
        let (w, h, f) = (frame.width, frame.height, frame.format);
        let data = frame.data().to_vec();
        frame
            .set_with(w, h, f, |b| b.iter_mut().zip(&data).for_each(|(d, s)| *d = s.wrapping_add(37 * i as u8)))
            .expect("frame");
    }
    obs.request_id = 100 + i as u64;
    obs
}

#[test]
fn robots_batched_together_get_the_chunks_they_get_alone() {
    use ganglion_policies::backend::batch::BatchPool;
    if !ort_or_skip("robots_batched_together_get_the_chunks_they_get_alone") {
        return;
    }
    let dir = iterative().join("flow-mlp-batch");
    let pool = BatchPool::new(4).expect("pool");
    let batched = LoadOptions { batch: Some(pool.clone()), ..opts(BackendKind::Ort) };
    let mut robots: Vec<BundlePolicy> = (0..4).map(|_| load_policy(&dir, &batched).expect("load")).collect();
    let provider = &robots[0].load_report().execution_provider;
    assert!(provider.ends_with("(batched)"), "{provider}");
    // Alone: the same bundle on its own engines, ONNX Runtime and tract.
    let mut alone = load_policy(&dir, &opts(BackendKind::Ort)).expect("load");
    let mut on_tract = load_policy(&dir, &opts(BackendKind::Tract)).expect("load");
    let observations: Vec<Observation> = (0..4).map(|i| robot_observation(&alone, i)).collect();
    for p in robots.iter_mut().chain([&mut alone, &mut on_tract]) {
        p.set_noise_seed(7);
    }
    let want: Vec<ActionChunk> = observations.iter().map(|o| run(&mut alone, o)).collect();
    let before = pool.stats();
    // Every robot is counted in before any starts, as the server does.
    let entered: Vec<_> = (0..4).map(|_| pool.enter()).collect();
    let got: Vec<ActionChunk> = std::thread::scope(|s| {
        let threads: Vec<_> = robots
            .iter_mut()
            .zip(&observations)
            .zip(entered)
            .map(|((r, o), guard)| {
                s.spawn(move || {
                    let chunk = run(r, o);
                    drop(guard);
                    chunk
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("robot thread")).collect()
    });
    let after = pool.stats();
    for (i, ((g, w), o)) in got.iter().zip(&want).zip(&observations).enumerate() {
        let err = g.as_slice().iter().zip(w.as_slice()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let tract_err =
            g.as_slice().iter().zip(run(&mut on_tract, o).as_slice()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        eprintln!("robot {i}: batched vs alone (ORT) {err:.1e}, vs tract {tract_err:.1e}");
        assert!(err <= 1e-5 && tract_err <= 1e-4, "robot {i}: {err:e} / {tract_err:e}");
    }
    assert_ne!(got[0].as_slice(), got[1].as_slice(), "different robots, different chunks");
    // One engine call per graph call for all four: the encoder once, the
    // step graph 10 times.
    assert_eq!((after.runs - before.runs, after.rows - before.rows, after.largest), (11, 44, 4));
}

#[test]
fn batching_is_refused_where_it_cannot_work() {
    use ganglion_policies::backend::batch::BatchPool;
    if !ort_or_skip("batching_is_refused_where_it_cannot_work") {
        return;
    }
    let pool = BatchPool::new(4).expect("pool");
    let msg = |dir: &Path, backend| {
        let o = LoadOptions { batch: Some(pool.clone()), ..opts(backend) };
        load_policy(dir, &o).expect_err("refused").to_string()
    };
    // flow-mlp declares no max_batch.
    let m = msg(&iterative().join("flow-mlp"), BackendKind::Ort);
    assert!(m.contains("the bundle's manifest allows 1 (`max_batch`)"), "{m}");
    // tract has fixed shapes.
    let m = msg(&iterative().join("flow-mlp-batch"), BackendKind::Tract);
    assert!(m.contains("dynamic batching needs ONNX Runtime"), "{m}");
    // A graph exported with a fixed batch of 1, though the manifest claims more.
    let (_tmp, dir) =
        edited_bundle("flow-mlp", "parity_tolerance = 0.0001", "parity_tolerance = 0.0001\nmax_batch = 4", false);
    let o = LoadOptions { batch: Some(pool.clone()), allow_unsigned: true, ..opts(BackendKind::Ort) };
    let m = load_policy(&dir, &o).expect_err("fixed batch").to_string();
    assert!(m.contains("has a fixed first dimension") && m.contains("dynamic batch dimension"), "{m}");
    assert!(BatchPool::new(0).is_err() && BatchPool::new(100_000).is_err());
}
