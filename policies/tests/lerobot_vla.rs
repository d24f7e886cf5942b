//! LeRobot's VLA families (issue 16) as format-2 bundles, against LeRobot's
//! own `predict_action_chunk`: SmolVLA, π0 and π0.5.
//!
//! `fixtures/lerobot-smolvla/` was written by `lerobot/export_smolvla.py`
//! from LeRobot 0.6.1's `SmolVLAPolicy` built at a small size with random
//! weights: a prefix graph (image, prompt tokens and mask, state padded to
//! `max_state_dim` → prefix mask + 8 KV tensors) and a step graph (x_t, t,
//! prefix mask, KV → velocity) run 10 times under Euler flow matching; a
//! stand-in SmolVLM `tokenizer.json`. The golden holds, per observation, the
//! instruction, joints, camera frame and noise LeRobot's path was given,
//! the tokens its processor made, and the actions it returned. Here the
//! runtime does all of it: the prompt through `[text]`, normalization,
//! padding, the prefix once, the KV cache wired to every step, the chunk
//! sliced back from `max_action_dim` to the six joints.
//!
//! `fixtures/lerobot-pi0/` and `lerobot-pi05/` (`lerobot/export_pi.py`) are
//! LeRobot's `PI0Policy` / `PI05Policy` the same way, with PaliGemma's
//! SentencePiece tokenizer (a small one, converted to `tokenizer.json`): π0
//! feeds the state to the step graph; π0.5 writes it into the prompt as 256
//! bins of its quantile-normalized value, so the prompt is tokenized anew
//! every inference.

mod common;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use common::{copy_bundle, fixtures, flip_byte, opts, ort_or_skip, test_secret_key};
use ganglion_core::{ActionChunk, Instruction, Observation, PixelFormat, Policy};
use ganglion_policies::manifest::{CommittedActions, GuidanceSpec, Manifest, Padding, TextConfig};
use ganglion_policies::tokenizer::PromptTokenizer;
use ganglion_policies::{load_policy, sign_bundle, BackendKind, BundlePolicy};

/// fp32 parity against PyTorch (issue 16's bound), in rad.
const TOLERANCE: f64 = 1e-4;

/// The families' fixtures. `lerobot-smolvla-longest` is SmolVLA with
/// LeRobot's default `pad_language_to = "longest"`: its graphs take the
/// prompt at its own length (`[text] padding = "longest"`).
const FAMILIES: [&str; 4] = ["lerobot-smolvla", "lerobot-smolvla-longest", "lerobot-pi0", "lerobot-pi05"];

fn dir() -> PathBuf {
    fixtures().join("lerobot-smolvla")
}

fn golden() -> serde_json::Value {
    golden_of("lerobot-smolvla")
}

fn golden_of(family: &str) -> serde_json::Value {
    golden_of_file(family, "golden.json")
}

fn golden_of_file(family: &str, file: &str) -> serde_json::Value {
    let path = fixtures().join(family).join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).expect("golden.json parses")
}

fn observations(g: &serde_json::Value) -> &Vec<serde_json::Value> {
    g["observations"].as_array().expect("observations")
}

/// Every number of a nested JSON array, in row-major order.
fn flat(v: &serde_json::Value) -> Vec<f64> {
    match v {
        serde_json::Value::Array(a) => a.iter().flat_map(flat).collect(),
        serde_json::Value::Bool(b) => vec![f64::from(u8::from(*b))],
        other => vec![other.as_f64().unwrap_or_else(|| panic!("a number, got {other}"))],
    }
}

/// A signed copy of the SmolVLA bundle (after `edit` changed its files).
fn signed_copy(edit: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    signed_copy_of("lerobot-smolvla", edit)
}

/// A signed copy of `family`'s bundle (after `edit` changed its files).
fn signed_copy_of(family: &str, edit: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    let (tmp, path) = copy_bundle(&format!("{family}/bundle"));
    edit(&path);
    sign_bundle(&path, &test_secret_key()).unwrap_or_else(|e| panic!("sign: {e}"));
    (tmp, path)
}

fn load(path: &Path, backend: BackendKind) -> BundlePolicy {
    load_policy(path, &opts(backend)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes golden observation `o` into `obs` (instruction numbered `seq`)
/// and its noise into `policy`.
fn golden_observation(policy: &mut BundlePolicy, obs: &mut Observation, o: &serde_json::Value, seq: u64) {
    obs.instruction = Instruction::new(seq, o["instruction"].as_str().expect("instruction"));
    for (p, v) in obs.joints.position.iter_mut().zip(flat(&o["joints"])) {
        *p = v;
    }
    let pixels =
        base64::engine::general_purpose::STANDARD.decode(o["image_rgb8_b64"].as_str().expect("image")).expect("base64");
    assert_eq!(flat(&o["image_shape"]), [64.0, 64.0, 3.0], "the golden's frames are HWC");
    obs.frames[0].set(64, 64, PixelFormat::Rgb8, &pixels).expect("frame");
    let noise: Vec<f32> = flat(&o["noise"]).into_iter().map(|v| v as f32).collect();
    policy.set_initial_noise(Some(&noise)).expect("noise of the head's sample shape");
}

/// Runs every golden observation (a new instruction each) with the golden's
/// noise; returns the largest |action − PyTorch action| in rad.
fn run_golden(policy: &mut BundlePolicy, g: &serde_json::Value) -> f64 {
    run_golden_against(policy, g, |k| flat(&observations(g)[k]["actions"]))
}

/// [`run_golden`], comparing observation `k`'s chunk with `want(k)`.
fn run_golden_against(policy: &mut BundlePolicy, g: &serde_json::Value, want: impl Fn(usize) -> Vec<f64>) -> f64 {
    run_golden_from(policy, g, 1, want)
}

/// [`run_golden_against`] with observation `k`'s instruction numbered
/// `first_seq + k` (a new number: the policy tokenizes it anew).
fn run_golden_from(
    policy: &mut BundlePolicy,
    g: &serde_json::Value,
    first_seq: u64,
    want: impl Fn(usize) -> Vec<f64>,
) -> f64 {
    let spec = policy.spec().clone();
    let mut obs = Observation::for_spec(&spec);
    let mut out = ActionChunk::for_spec(&spec);
    let mut err = 0.0f64;
    for (k, o) in observations(g).iter().enumerate() {
        golden_observation(policy, &mut obs, o, first_seq + k as u64);
        obs.request_id = k as u64;
        policy.infer(&obs, &mut out).unwrap_or_else(|e| panic!("observation {k}: {e}"));
        let want = want(k);
        assert_eq!(out.as_slice().len(), want.len(), "observation {k}: a chunk of 50 x 6");
        for (a, b) in out.as_slice().iter().zip(&want) {
            err = err.max((a - b).abs());
        }
    }
    assert_eq!(policy.instruction_errors(), 0);
    err
}

#[test]
fn the_prompt_tokens_are_lerobots() {
    for family in FAMILIES {
        let g = golden_of(family);
        let bundle = fixtures().join(family).join("bundle");
        let text = std::fs::read_to_string(bundle.join("policy.toml")).expect("manifest");
        let m = Manifest::parse(text.as_bytes(), Path::new("policy.toml")).expect("valid manifest");
        let cfg: &TextConfig = m.text.as_ref().expect("[text]");
        let json = std::fs::read(bundle.join(&cfg.tokenizer)).expect("tokenizer.json");
        let tok = PromptTokenizer::from_bytes(&json, cfg).expect("tokenizer");
        let (mut ids, mut mask) = (vec![0i64; cfg.max_tokens], vec![false; cfg.max_tokens]);
        for o in observations(&g) {
            let instruction = o["instruction"].as_str().expect("instruction");
            // π0.5's prompt holds the state LeRobot normalized.
            let state: Vec<f32> = match o.get("state_normalized") {
                Some(s) if tok.uses_state() => flat(s).into_iter().map(|v| v as f32).collect(),
                _ => Vec::new(),
            };
            if let Some(prompt) = o.get("prompt") {
                assert_eq!(tok.prompt(instruction, &state), prompt.as_str().expect("prompt"), "{family}");
            }
            let n = tok.encode_into(instruction, &state, &mut ids, &mut mask).expect("tokenizes");
            let want_ids: Vec<i64> = flat(&o["tokens"]).into_iter().map(|v| v as i64).collect();
            let want_mask: Vec<bool> = flat(&o["token_mask"]).into_iter().map(|v| v != 0.0).collect();
            // Unpadded (`longest`), LeRobot's tokens are the prompt's alone.
            let width = want_ids.len();
            match cfg.padding {
                Padding::MaxLength => assert_eq!(width, cfg.max_tokens, "{family}: padded"),
                Padding::Longest => assert!(want_mask.iter().all(|&m| m), "{family}: nothing padded"),
            }
            assert_eq!(ids[..width], want_ids, "{family}: {instruction:?}");
            assert_eq!(mask[..width], want_mask, "{family}: {instruction:?}");
            // Shorter prompts are padded; a longer one is cut.
            let real = want_mask.iter().filter(|&&m| m).count();
            assert!(n >= real && (n == real || real == cfg.max_tokens), "{family}: {n} tokens, {real} kept");
        }
    }
}

/// Every family's golden on `backend`; returns `(family, max abs error)`.
fn families_on(backend: BackendKind) -> Vec<(&'static str, f64)> {
    FAMILIES
        .iter()
        .map(|&family| {
            let g = golden_of(family);
            let (_tmp, path) = signed_copy_of(family, |_| {});
            let mut policy = load(&path, backend);
            (family, run_golden(&mut policy, &g))
        })
        .collect()
}

#[test]
fn tract_reproduces_lerobots_vla_chunks() {
    for (family, err) in families_on(BackendKind::Tract) {
        eprintln!("{family} on tract: max abs vs PyTorch {err:.2e} rad over 3 chunks");
        assert!(err <= TOLERANCE, "{family}: tract differs from PyTorch by {err:e} (tolerance {TOLERANCE:e})");
    }
}

#[test]
fn onnx_runtime_reproduces_lerobots_vla_chunks() {
    if !ort_or_skip("onnx_runtime_reproduces_lerobots_vla_chunks") {
        return;
    }
    for (family, err) in families_on(BackendKind::Ort) {
        let provider = common::ort_provider().as_str();
        eprintln!("{family} on onnx runtime ({provider}): max abs vs PyTorch {err:.2e} rad over 3 chunks");
        assert!(err <= TOLERANCE, "{family}: ONNX Runtime differs from PyTorch by {err:e} (tolerance {TOLERANCE:e})");
    }
}

/// The golden catches a prompt that is not LeRobot's: without the newline
/// SmolVLA's processor appends, every chunk moves.
#[test]
fn another_template_misses_the_golden() {
    let g = golden();
    let (_tmp, path) = signed_copy(|p| edit_manifest(p, |m| text_of(m).template = "{instruction}".into()));
    let mut policy = load(&path, BackendKind::Tract);
    let err = run_golden(&mut policy, &g);
    assert!(err > 10.0 * TOLERANCE, "the prompt without its newline still matched ({err:e})");
}

/// The SmolVLA manifest, parsed.
fn smolvla_manifest() -> Manifest {
    let text = std::fs::read_to_string(dir().join("bundle/policy.toml")).expect("manifest");
    Manifest::parse(text.as_bytes(), Path::new("policy.toml")).expect("valid manifest")
}

/// Rewrites the manifest in bundle `dir` after `edit` (canonical TOML).
fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut Manifest)) {
    let f = dir.join("policy.toml");
    let mut m = Manifest::parse(&std::fs::read(&f).expect("manifest"), &f).expect("valid manifest");
    edit(&mut m);
    std::fs::write(&f, m.to_canonical_toml()).expect("write");
}

/// The error of the SmolVLA manifest after `edit`, parsed back from TOML.
fn manifest_error(edit: impl FnOnce(&mut Manifest)) -> String {
    let mut m = smolvla_manifest();
    edit(&mut m);
    match Manifest::parse(m.to_canonical_toml().as_bytes(), Path::new("bundle/policy.toml")) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

fn text_of(m: &mut Manifest) -> &mut TextConfig {
    m.text.as_mut().expect("[text]")
}

fn graph_input<'a>(m: &'a mut Manifest, graph: &str, input: &str) -> &'a mut ganglion_policies::manifest::TensorSpec {
    let df = m.dataflow.as_mut().expect("format 2");
    let g = df.graphs.get_mut(graph).expect("graph");
    g.inputs.iter_mut().find(|t| t.name == input).expect("input")
}

#[test]
fn bad_text_wiring_is_refused_naming_the_place() {
    // The tokens into the bool mask input: the dtype mismatch, named.
    let msg = manifest_error(|m| {
        for w in &mut m.dataflow.as_mut().expect("format 2").wires {
            w.to = match w.to.as_str() {
                "prefix.lang_tokens" => "prefix.lang_masks".into(),
                "prefix.lang_masks" => "prefix.lang_tokens".into(),
                _ => w.to.clone(),
            };
        }
    });
    assert!(msg.contains("lang_masks") && msg.contains("bool") && msg.contains("obs.tokens"), "{msg}");
    // No tokenizer listed in [[files]]: unsigned, refused.
    let msg = manifest_error(|m| m.files.retain(|f| f.path != "tokenizer.json"));
    assert!(msg.contains("text.tokenizer") && msg.contains("[[files]]"), "{msg}");
    // A template without the instruction.
    let msg = manifest_error(|m| text_of(m).template = "do it".into());
    assert!(msg.contains("text.template") && msg.contains("{instruction}"), "{msg}");
    // Token wires without a [text] table.
    let msg = manifest_error(|m| m.text = None);
    assert!(msg.contains("obs.tokens") && msg.contains("[text]"), "{msg}");
    // A state wider than the joints is padding; narrower is refused.
    let msg = manifest_error(|m| graph_input(m, "prefix", "state").shape = vec![1, 4]);
    assert!(msg.contains("state") && msg.contains("[1, 4]"), "{msg}");
}

#[test]
fn a_pad_token_missing_or_a_tokenizer_changed_after_signing_is_refused() {
    let (_tmp, path) = signed_copy(|p| edit_manifest(p, |m| text_of(m).pad_token = "<pad>".into()));
    let msg = match load_policy(&path, &opts(BackendKind::Tract)) {
        Ok(_) => panic!("a pad token not in the vocabulary was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(msg.contains("text.pad_token") && msg.contains("<pad>"), "{msg}");

    let (_tmp, path) = signed_copy(|_| {});
    flip_byte(&path.join("tokenizer.json"), -3);
    let msg = match load_policy(&path, &opts(BackendKind::Tract)) {
        Ok(_) => panic!("a tokenizer changed after signing was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(msg.contains("tokenizer.json"), "{msg}");
}

/// π0.5's prompt, as its processor writes it: the instruction cleaned
/// (trimmed, `_` and newlines as spaces) and the normalized state in 256
/// bins (`np.digitize` against LeRobot's edges; the bin values themselves
/// are checked against NumPy in tests/preprocess.rs).
#[test]
fn a_state_prompt_is_written_as_pi05s_processor_writes_it() {
    let text = std::fs::read_to_string(dir().join("bundle/policy.toml")).expect("manifest");
    let m = Manifest::parse(text.as_bytes(), Path::new("policy.toml")).expect("valid manifest");
    let mut cfg: TextConfig = m.text.clone().expect("[text]");
    cfg.template = "Task: {instruction}, State: {state};\nAction: ".into();
    cfg.state_bins = Some(256);
    cfg.clean_instruction = true;
    let json = std::fs::read(dir().join("bundle").join(&cfg.tokenizer)).expect("tokenizer.json");
    let tok = PromptTokenizer::from_bytes(&json, &cfg).expect("tokenizer");
    assert!(tok.uses_state());
    let prompt = tok.prompt(" pick_up the\ncube ", &[-1.0, 0.0, 0.999, 1.0, -1.01, 0.5]);
    assert_eq!(prompt, "Task: pick up the cube, State: 0 128 255 255 -1 192;\nAction: ");
    // An instruction's own text is not a placeholder.
    let literal = tok.prompt("say {state}", &[0.0]);
    assert_eq!(literal, "Task: say {state}, State: 128;\nAction: ");
    // A manifest naming `{state}` without bins, or bins without `{state}`, is refused.
    let err = manifest_error(|m| text_of(m).template = "{instruction} {state}".into());
    assert!(err.contains("text.state_bins"), "{err}");
    let err = manifest_error(|m| text_of(m).state_bins = Some(256));
    assert!(err.contains("text.state_bins") && err.contains("{state}"), "{err}");
}

/// `ganglion policy bench` on a format-2 bundle reports each stage: the
/// prompt tokenized every inference for π0.5 (its prompt holds the state),
/// the prefix graph once, the step graph 10 times per inference.
#[test]
fn bench_reports_each_stage_of_pi05() {
    let (_tmp, path) = signed_copy_of("lerobot-pi05", |_| {});
    let r = ganglion_policies::bench_policy(&path, &opts(BackendKind::Tract), 3, "").expect("bench");
    let names: Vec<&str> = r.stages_ms.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["tokenize", "preprocess", "graph prefix", "step", "postprocess"]);
    let stage = |n: &str| &r.stages_ms.iter().find(|(s, _)| s == n).expect("stage").1;
    assert_eq!(stage("step").count, 30, "10 steps x 3 inferences");
    assert!(stage("tokenize").p50 > 0.0, "pi0.5 tokenizes every inference: {:?}", stage("tokenize"));
    assert!(stage("graph prefix").p50 > 0.0 && stage("step").p50 > 0.0);
    // The stages account for the inference (within the untimed glue).
    let sum: f64 = r.stages_ms.iter().map(|(n, s)| if n == "step" { s.mean * 10.0 } else { s.mean }).sum();
    assert!(sum <= r.inference_ms.mean * 1.05 && sum >= r.inference_ms.mean * 0.8, "{sum} vs {:?}", r.inference_ms);
}

/// Bytes the backend is handed per inference with the prompt at `tokens`
/// tokens: tract copies each graph's inputs once (the head's conditioning
/// held for every step) and the head's sample and timestep again for each
/// further step; ONNX Runtime on the CPU reads the buffers in place.
fn handed_bytes(m: &Manifest, backend: BackendKind, tokens: usize) -> u64 {
    if backend != BackendKind::Tract {
        return 0;
    }
    let df = m.dataflow.as_ref().expect("format 2");
    let head = df.head.as_ref().expect("a head");
    let once: u64 = df.graphs.values().flat_map(|g| &g.inputs).map(|t| graph_bytes_at(t, tokens)).sum();
    let per_step: u64 = df.graphs[&head.graph]
        .inputs
        .iter()
        .filter(|t| t.name == head.sample || t.name == head.timestep)
        .map(graph_bytes)
        .sum();
    once + (head.steps as u64 - 1) * per_step
}

/// Bytes one element of `d` takes in the graph's own type.
fn graph_bytes(t: &ganglion_policies::manifest::TensorSpec) -> u64 {
    use ganglion_policies::manifest::DType;
    let size = match t.dtype {
        DType::F32 | DType::I32 => 4,
        DType::F16 | DType::Bf16 => 2,
        DType::I64 => 8,
        DType::U8 | DType::Bool => 1,
    };
    (t.len() * size) as u64
}

/// The prefix's KV cache reaches every step without copies (issue 16's
/// prefix caching): each prefix output is handed to the step input it
/// feeds (the buffers swap: 0 bytes copied between the graphs), and the
/// step graph's conditioning goes to the backend once per inference, not
/// once per step. tract copies what it is handed into its own tensors: per
/// inference exactly the prefix's inputs, the step graph's inputs once, and
/// the sample and timestep again for each further step. ONNX Runtime on the
/// CPU reads every f32/i64/bool buffer in place: nothing.
#[test]
fn the_prefix_cache_reaches_every_step_without_copies() {
    for family in FAMILIES {
        let g = golden_of(family);
        let (_tmp, path) = signed_copy_of(family, |_| {});
        for backend in [BackendKind::Tract, BackendKind::Ort] {
            if backend == BackendKind::Ort && !ort_or_skip("the_prefix_cache_reaches_every_step_without_copies") {
                continue;
            }
            let mut policy = load(&path, backend);
            let m = policy.manifest().clone();
            let df = m.dataflow.as_ref().expect("format 2");
            let head = df.head.as_ref().expect("a head");
            let step = &df.graphs[&head.graph];
            let kv: u64 = step.inputs.iter().filter(|t| t.name.starts_with("past")).map(graph_bytes).sum();
            run_golden(&mut policy, &g);
            let st = policy.last_stages().expect("format 2 stages").clone();
            let want = handed_bytes(&m, backend, st.prompt_tokens);
            eprintln!(
                "{family} on {}: {} bytes handed to the backend per inference ({} steps; the KV cache is {kv} bytes), \
                 {} copied between graphs",
                backend.as_str(),
                st.input_bytes,
                head.steps,
                st.wire_bytes
            );
            assert_eq!(st.wire_bytes, 0, "{family}: a wire copied instead of handing its buffer over");
            assert_eq!(st.input_bytes, want, "{family} on {}", backend.as_str());
        }
    }
}

/// π0.5 with LeRobot's relative actions (`use_relative_actions`,
/// `relative_exclude_joints = ["gripper"]`): the committed bundle with
/// `[action] relative = true, relative_exclude = ["gripper"]` reproduces
/// LeRobot's post-processed chunks (un-normalized, the observed state added
/// to every joint but the gripper; golden-relative.json, written by
/// policies/lerobot/make_relative_golden.py) on tract and ONNX Runtime. The
/// plain golden (absolute actions) no longer matches.
#[test]
fn relative_actions_are_lerobots() {
    let g = golden_of("lerobot-pi05");
    let path = fixtures().join("lerobot-pi05/golden-relative.json");
    let rel: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    let want = |k: usize| {
        rel["observations"][k]["actions"].as_array().expect("actions").iter().flat_map(flat).collect::<Vec<f64>>()
    };
    let (_tmp, bundle) = signed_copy_of("lerobot-pi05", |dir| {
        edit_manifest(dir, |m| {
            m.action.relative = true;
            m.action.relative_exclude = vec!["gripper".into()];
        })
    });
    for backend in [BackendKind::Tract, BackendKind::Ort] {
        if backend == BackendKind::Ort && !ort_or_skip("relative_actions_are_lerobots") {
            continue;
        }
        let mut policy = load(&bundle, backend);
        assert_eq!(policy.manifest().relative_action_mask(), [true, true, true, true, true, false]);
        let err = run_golden_against(&mut policy, &g, want);
        eprintln!("pi05 relative on {}: max abs vs LeRobot {err:.2e} rad", backend.as_str());
        assert!(err <= TOLERANCE, "{}: {err:e}", backend.as_str());
        let absolute = run_golden(&mut policy, &g);
        assert!(absolute > 0.1, "the relative chunk equals the absolute golden ({absolute:e})");
    }
}

/// The committed actions a relative policy inpaints are taken relative to
/// the observed state first, so the chunk's first inpainted action comes out
/// as the executor's target itself (not the target plus the state).
#[test]
fn a_relative_policy_inpaints_the_committed_targets_themselves() {
    let g = golden_of("lerobot-pi05");
    let (_tmp, bundle) = signed_copy_of("lerobot-pi05", |dir| {
        edit_manifest(dir, |m| {
            m.action.relative = true;
            m.action.relative_exclude = vec!["gripper".into()];
        })
    });
    let mut policy = load(&bundle, BackendKind::Tract);
    let spec = policy.spec().clone();
    let mut obs = Observation::for_spec(&spec);
    let o = &observations(&g)[0];
    obs.instruction = Instruction::new(1, o["instruction"].as_str().expect("instruction"));
    for (p, v) in obs.joints.position.iter_mut().zip(flat(&o["joints"])) {
        *p = v;
    }
    let pixels =
        base64::engine::general_purpose::STANDARD.decode(o["image_rgb8_b64"].as_str().expect("image")).expect("base64");
    obs.frames[0].set(64, 64, PixelFormat::Rgb8, &pixels).expect("frame");
    let target = ganglion_core::JointVec::from_slice(&[0.3, -0.6, 0.9, 0.2, -0.1, 0.5]).expect("6 joints");
    obs.committed.push(target).expect("room");
    let mut out = ActionChunk::for_spec(&spec);
    policy.infer(&obs, &mut out).expect("infer");
    let err = out.step(1).iter().zip(target.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-4, "action 1 is {:?}, the committed target {target:?}", out.step(1));
}

/// Relative actions are refused where they cannot mean what LeRobot means.
#[test]
fn bad_relative_action_settings_are_refused_naming_the_key() {
    let msg = manifest_error(|m| m.action.relative_exclude = vec!["gripper".into()]);
    assert!(msg.contains("action.relative_exclude") && msg.contains("relative = true"), "{msg}");
    let msg = manifest_error(|m| {
        m.action.relative = true;
        m.action.relative_exclude = vec!["elbow".into(), "tail".into()];
    });
    assert!(msg.contains("action.relative_exclude[1]") && msg.contains("`tail` names none of the joints"), "{msg}");
    let msg = manifest_error(|m| {
        m.action.relative = true;
        m.action.kind = ganglion_policies::manifest::ActionKindConfig::Delta;
    });
    assert!(msg.contains("action.relative") && msg.contains("absolute"), "{msg}");
}

// ---- The prompt at its own length (`[text] padding = "longest"`) ----------

const LONGEST: &str = "lerobot-smolvla-longest";

/// The manifest of `family`'s bundle, parsed.
fn manifest_of(family: &str) -> Manifest {
    let f = fixtures().join(family).join("bundle/policy.toml");
    Manifest::parse(&std::fs::read(&f).expect("manifest"), &f).expect("valid manifest")
}

/// The error of `family`'s manifest after `edit`, parsed back from TOML.
fn manifest_error_of(family: &str, edit: impl FnOnce(&mut Manifest)) -> String {
    let mut m = manifest_of(family);
    edit(&mut m);
    match Manifest::parse(m.to_canonical_toml().as_bytes(), Path::new("bundle/policy.toml")) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

/// Every tensor of the manifest's graphs, mutably.
fn tensors(m: &mut Manifest) -> impl Iterator<Item = &mut ganglion_policies::manifest::TensorSpec> {
    let df = m.dataflow.as_mut().expect("format 2");
    df.graphs.values_mut().flat_map(|g| g.inputs.iter_mut().chain(g.outputs.iter_mut()))
}

/// Bytes `t` takes in the graph's own type for a prompt of `tokens` tokens.
fn graph_bytes_at(t: &ganglion_policies::manifest::TensorSpec, tokens: usize) -> u64 {
    graph_bytes(t) / t.len() as u64 * t.len_at(tokens) as u64
}

/// SmolVLA exported with LeRobot's default `pad_language_to = "longest"`:
/// one pair of graphs takes every prompt at its own length (here 48, 5 and
/// 32 tokens, in that order: the shapes shrink and grow between
/// inferences). Each chunk is LeRobot's; the graphs ran at the prompt's
/// length (the stage report), and tract was handed exactly the tensors of
/// that length: the prompt's tokens and mask, a prefix mask and KV cache of
/// `L + 17` positions, nothing of the 48-token buffers beyond them.
#[test]
fn an_unpadded_prompt_runs_the_graphs_at_its_own_length() {
    let g = golden_of(LONGEST);
    let (_tmp, path) = signed_copy_of(LONGEST, |_| {});
    for backend in [BackendKind::Tract, BackendKind::Ort] {
        if backend == BackendKind::Ort && !ort_or_skip("an_unpadded_prompt_runs_the_graphs_at_its_own_length") {
            continue;
        }
        let mut policy = load(&path, backend);
        let m = policy.manifest().clone();
        for k in [2, 0, 1] {
            let o = &observations(&g)[k];
            let tokens = o["n_tokens"].as_u64().expect("n_tokens") as usize;
            let one = serde_json::json!({ "observations": [o] });
            let err = run_golden_from(&mut policy, &one, 1 + k as u64, |_| flat(&o["actions"]));
            assert!(err <= TOLERANCE, "{} tokens on {}: {err:e}", tokens, backend.as_str());
            let st = policy.last_stages().expect("format 2 stages").clone();
            assert_eq!(st.prompt_tokens, tokens, "the graphs ran at the prompt's length");
            let want = handed_bytes(&m, backend, tokens);
            eprintln!(
                "{tokens} tokens on {}: max abs {err:.2e} rad, {} bytes handed over",
                backend.as_str(),
                st.input_bytes
            );
            assert_eq!(st.input_bytes, want, "{tokens} tokens on {}", backend.as_str());
        }
    }
}

/// LeRobot's padding is exact: the same dynamic graphs, run padded to 48
/// tokens (the manifest's shapes fixed at the longest prompt, padding
/// masked out), reproduce the `max_length` fixture's golden, which LeRobot
/// computed from a SmolVLA built with the same seed and config.
#[test]
fn the_same_graphs_padded_to_max_tokens_give_lerobots_padded_chunks() {
    let g = golden_of("lerobot-smolvla");
    let (_tmp, path) = signed_copy_of(LONGEST, |p| {
        edit_manifest(p, |m| {
            text_of(m).padding = Padding::MaxLength;
            tensors(m).for_each(|t| t.prompt_axes.clear());
        })
    });
    let mut policy = load(&path, BackendKind::Tract);
    let err = run_golden(&mut policy, &g);
    eprintln!("padded on tract: max abs vs PyTorch {err:.2e} rad");
    assert!(err <= TOLERANCE, "{err:e}");
    assert_eq!(policy.last_stages().expect("stages").prompt_tokens, 48);
}

#[test]
fn shapes_that_follow_the_prompt_are_refused_where_they_cannot_hold() {
    // `L` without `padding = "longest"`: nothing would set it.
    let msg = manifest_error_of(LONGEST, |m| text_of(m).padding = Padding::MaxLength);
    assert!(msg.contains("dataflow.graphs.prefix.inputs[1].shape") && msg.contains("longest"), "{msg}");
    // An expression that is not one of `L`.
    let text = std::fs::read_to_string(fixtures().join(LONGEST).join("bundle/policy.toml")).expect("manifest");
    let bad = text.replacen(r#""L + 17""#, r#""N + 17""#, 1);
    let msg = Manifest::parse(bad.as_bytes(), Path::new("policy.toml")).expect_err("N accepted").to_string();
    assert!(msg.contains("prefix_pad_masks") && msg.contains("\"N + 17\""), "{msg}");
    // The token input at a fixed 48 while the prompt is not padded.
    let msg = manifest_error_of(LONGEST, |m| graph_input(m, "prefix", "lang_tokens").prompt_axes.clear());
    assert!(msg.contains("lang_tokens") && msg.contains("[1, 48]") && msg.contains("[1, L]"), "{msg}");
    // The prefix's cache and the step's disagree on its length.
    let msg = manifest_error_of(LONGEST, |m| {
        let t = graph_input(m, "step", "past_key_2");
        t.prompt_axes[0].offset = 16;
        t.shape[2] = 64;
    });
    assert!(msg.contains("past_key_2") && msg.contains("L + 16") && msg.contains("L + 17"), "{msg}");
    // The state has a fixed shape.
    let msg = manifest_error_of(LONGEST, |m| {
        let t = graph_input(m, "prefix", "state");
        t.prompt_axes.push(ganglion_policies::manifest::PromptAxis { axis: 1, scale: 1, offset: 0 });
        t.shape[1] = 48;
    });
    assert!(msg.contains("state") && msg.contains("[1, L]"), "{msg}");
    // The head's sample has a fixed shape.
    let msg = manifest_error_of(LONGEST, |m| {
        let t = graph_input(m, "step", "x_t");
        t.prompt_axes.push(ganglion_policies::manifest::PromptAxis { axis: 1, scale: 1, offset: 2 });
    });
    assert!(msg.contains("dataflow.graphs.step.inputs[0].shape") && msg.contains("sample"), "{msg}");
}

/// Graphs exported with a fixed prompt length under a manifest that says it
/// varies are refused at load, naming the tensor and the graph's shape; so
/// is a declared output whose length is not the graph's (tract derives it).
#[test]
fn graphs_that_fix_the_prompts_length_are_refused_at_load() {
    for backend in [BackendKind::Tract, BackendKind::Ort] {
        if backend == BackendKind::Ort && !ort_or_skip("graphs_that_fix_the_prompts_length_are_refused_at_load") {
            continue;
        }
        let (_tmp, path) = signed_copy_of(LONGEST, |p| {
            for f in ["prefix.onnx", "step.onnx"] {
                std::fs::copy(dir().join("bundle").join(f), p.join(f)).expect("the fixed graphs");
            }
        });
        let msg = match load_policy(&path, &opts(backend)) {
            Ok(_) => panic!("fixed graphs accepted under a prompt-length manifest on {}", backend.as_str()),
            Err(e) => e.to_string(),
        };
        assert!(
            msg.contains("lang_tokens") && msg.contains("`L`") && msg.contains("48"),
            "{}: {msg}",
            backend.as_str()
        );
    }
    let (_tmp, path) = signed_copy_of(LONGEST, |p| {
        edit_manifest(p, |m| {
            for t in tensors(m).filter(|t| t.name.starts_with("past") || t.name == "prefix_pad_masks") {
                t.prompt_axes[0].offset = 16;
                let axis = t.prompt_axes[0].axis;
                t.shape[axis] = 64;
            }
        })
    });
    let msg = load_policy(&path, &opts(BackendKind::Tract)).map(|_| ()).expect_err("L + 16 accepted").to_string();
    assert!(msg.contains("prefix_pad_masks") && msg.contains("L + 16"), "{msg}");
}

// ---- Guided real-time chunking (LeRobot's rtc) ----------------------------

/// LeRobot's guided real-time chunking (`committed = "guided"`, LeRobot's
/// `RTCConfig` defaults: linear schedule, horizon 10, guidance capped at 10)
/// reproduces LeRobot's own `predict_action_chunk(..., inference_delay,
/// prev_chunk_left_over, execution_horizon)` (golden-rtc.json, written by
/// policies/lerobot/make_rtc_golden.py): a chunk for the golden's first
/// observation, then one for the second, `shift` policy steps later, with
/// `delay - 1` committed actions (the chunk's action 0 is the other one
/// executed during the inference), guided towards what is left of the
/// first. The same chunk unguided (`committed = "inpaint"`) is far from it.
#[test]
fn guided_real_time_chunking_is_lerobots() {
    let g = golden();
    let rtc = golden_of_file("lerobot-smolvla", "golden-rtc.json");
    let guided = |m: &mut Manifest| {
        let head = m.dataflow.as_mut().and_then(|d| d.head.as_mut()).expect("a head");
        head.committed = CommittedActions::Guided;
    };
    let (_tmp, path) = signed_copy(|p| edit_manifest(p, guided));
    let (_tmp2, plain_path) = signed_copy(|_| {});
    for backend in [BackendKind::Tract, BackendKind::Ort] {
        if backend == BackendKind::Ort && !ort_or_skip("guided_real_time_chunking_is_lerobots") {
            continue;
        }
        let mut policy = load(&path, backend);
        let mut plain = load(&plain_path, backend);
        let spec = policy.spec().clone();
        let (mut obs, mut out) = (Observation::for_spec(&spec), ActionChunk::for_spec(&spec));
        let mut seq = 1;
        for case in rtc["cases"].as_array().expect("cases") {
            let (shift, delay) = (case["shift"].as_u64().expect("shift"), case["inference_delay"].as_u64().expect("d"));
            // The first chunk: nothing executing yet (a new episode), so not guided.
            policy.reset_history();
            golden_observation(&mut policy, &mut obs, &observations(&g)[0], seq);
            obs.stamp = ganglion_core::Stamp::from_nanos(1_000_000_000);
            obs.committed.clear();
            policy.infer(&obs, &mut out).expect("first chunk");
            let first = flat(&observations(&g)[0]["actions"]);
            let err: f64 = out.as_slice().iter().zip(&first).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(err <= TOLERANCE, "the first chunk is LeRobot's plain one: {err:e}");
            assert_eq!(policy.last_stages().expect("stages").inpainted_actions, 0);
            // The second, `shift` steps later, `delay` actions executed meanwhile.
            golden_observation(&mut policy, &mut obs, &observations(&g)[1], seq + 1);
            seq += 2;
            obs.stamp = ganglion_core::Stamp::from_nanos(1_000_000_000 + shift * spec.step_ns);
            for _ in 1..delay {
                obs.committed.push(ganglion_core::JointVec::splat(spec.n_joints, 0.0)).expect("room");
            }
            policy.infer(&obs, &mut out).expect("guided chunk");
            let want = flat(&case["actions"]);
            let err: f64 = out.as_slice().iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            eprintln!("guided on {}, shift {shift}, delay {delay}: max abs vs LeRobot {err:.2e} rad", backend.as_str());
            assert!(err <= TOLERANCE, "shift {shift}, delay {delay} on {}: {err:e}", backend.as_str());
            assert_eq!(policy.last_stages().expect("stages").inpainted_actions as u64, delay);
            // Unguided, the same observation and noise land elsewhere.
            golden_observation(&mut plain, &mut obs, &observations(&g)[1], seq);
            obs.committed.clear();
            plain.infer(&obs, &mut out).expect("plain chunk");
            let off: f64 = out.as_slice().iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(off > 100.0 * TOLERANCE, "unguided matched the guided golden ({off:e})");
        }
    }
}

#[test]
fn bad_guidance_settings_are_refused_naming_the_key() {
    let head = |m: &mut Manifest| m.dataflow.as_mut().and_then(|d| d.head.as_mut()).expect("a head").clone();
    let set = |m: &mut Manifest, h: ganglion_policies::manifest::HeadSpec| {
        *m.dataflow.as_mut().and_then(|d| d.head.as_mut()).expect("a head") = h;
    };
    let msg = manifest_error(|m| {
        let mut h = head(m);
        h.guidance = Some(GuidanceSpec::default());
        set(m, h);
    });
    assert!(msg.contains("dataflow.head.guidance") && msg.contains("guided"), "{msg}");
    let msg = manifest_error(|m| {
        let mut h = head(m);
        h.committed = CommittedActions::Guided;
        h.guidance = Some(GuidanceSpec { execution_horizon: 0, ..GuidanceSpec::default() });
        set(m, h);
    });
    assert!(msg.contains("dataflow.head.guidance.execution_horizon") && msg.contains("at least 1"), "{msg}");
    let msg = manifest_error(|m| {
        let mut h = head(m);
        h.committed = CommittedActions::Guided;
        h.guidance = Some(GuidanceSpec { max_guidance_weight: 0.0, ..GuidanceSpec::default() });
        set(m, h);
    });
    assert!(msg.contains("dataflow.head.guidance.max_guidance_weight"), "{msg}");
    let msg = manifest_error(|m| {
        let mut h = head(m);
        h.committed = CommittedActions::Guided;
        set(m, h);
        m.action.relative = true;
    });
    assert!(msg.contains("dataflow.head.committed") && msg.contains("relative"), "{msg}");
}
