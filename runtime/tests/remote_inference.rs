//! Remote inference over real zenoh sessions on loopback: a policy server
//! ([`ServerHandle`], what `ganglion serve` runs) and the robot's
//! [`RemotePolicy`], then the whole deployed loop with `[policy.remote]`
//! against the wire plant, the server stopped and restarted mid-run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ganglion::deploy::{PolicyChoice, Runtime, RuntimeOptions};
use ganglion::remote::{PolicyServer, RemotePolicy, ServerHandle};
use ganglion_core::{ActionChunk, Observation, Policy, PolicyError};
use ganglion_policies::BackendKind;
use ganglion_zenoh::ZenohConfig;

mod ports;
mod prereq;
use ports::free_port;

const PREFIX: &str = "test/policy";

fn reference_bundle() -> ganglion_policies::BundlePolicy {
    ganglion::eval::load_bundle(None, BackendKind::Tract, None, false).expect("reference bundle").1
}

/// A server of the reference bundle listening on `port`.
fn serve(port: u16) -> ServerHandle {
    let factory = Box::new(|| Ok(Box::new(reference_bundle()) as Box<dyn Policy>));
    let server = PolicyServer::new(factory, 4).expect("server");
    let cfg = ZenohConfig { listen: vec![format!("tcp/127.0.0.1:{port}")], ..ZenohConfig::default() };
    ServerHandle::start(server, &cfg, PREFIX, "reach", 16, ganglion_zenoh::Batching::ONE).expect("serving")
}

fn robot_session(port: u16) -> ZenohConfig {
    ZenohConfig { connect: vec![format!("tcp/127.0.0.1:{port}")], ..ZenohConfig::default() }
}

/// Robot `arm-1` asking for `reach` on `port`: 2 s per request, up to 5 s
/// for the server to answer its spec.
fn connect(port: u16) -> Result<RemotePolicy, ganglion::remote::RemoteError> {
    RemotePolicy::connect(
        &robot_session(port),
        PREFIX,
        "reach",
        "arm-1",
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
}

/// The benches' deterministic observation for `policy` (a pose, textured
/// frames, an instruction, a committed action).
fn observation(policy: &dyn Policy, request_id: u64) -> Observation {
    ganglion::bench::remote::observation(policy.spec(), request_id)
}

/// The server's chunks are the local bundle's, bit for bit, request after
/// request (its per-robot instance carries the same history).
#[test]
fn remote_chunks_are_the_local_bundles_bit_for_bit() {
    let port = free_port();
    let handle = serve(port);
    let mut remote = connect(port).expect("connects");
    let mut local = reference_bundle();
    assert_eq!(remote.spec(), local.spec());
    for id in 1..=5 {
        let obs = observation(&local, id);
        let (mut a, mut b) = (ActionChunk::for_spec(local.spec()), ActionChunk::for_spec(local.spec()));
        local.infer(&obs, &mut a).expect("local");
        remote.infer(&obs, &mut b).expect("remote");
        assert_eq!(a.as_slice(), b.as_slice(), "request {id}");
        assert_eq!((a.surprise, b.request_id, b.obs_stamp), (b.surprise, id, obs.stamp), "request {id}");
        assert!(remote.last_server_ns().1 > 0, "the server reports its compute time");
    }
    let stats = handle.stats();
    assert_eq!(stats.served.load(std::sync::atomic::Ordering::Relaxed), 5);
    assert_eq!(stats.robots.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// `[policy.remote] frames = "jpeg"`: the robot compresses, the server
/// decodes into its frame buffers, and the chunk is the local bundle's on
/// the same JPEG round trip, bit for bit; the request shrinks.
#[test]
fn jpeg_frames_reach_the_server_decoded() {
    use ganglion::remote::jpeg::{FrameCompressor, FrameDecompressor};
    let port = free_port();
    let _handle = serve(port);
    let raw_bytes = {
        let mut raw = connect(port).expect("connects");
        let obs = observation(&raw, 1);
        let mut chunk = ActionChunk::for_spec(raw.spec());
        raw.infer(&obs, &mut chunk).expect("raw");
        raw.last_request_bytes()
    };
    let mut remote = connect(port).expect("connects").with_jpeg(Some(90));
    let mut local = reference_bundle();
    let cameras = local.spec().cameras.clone();
    let (mut comp, mut dec) = (FrameCompressor::new(90, &cameras, 1), FrameDecompressor::new(&cameras));
    for id in 2..=4 {
        let obs = observation(&local, id);
        let mut seen = obs.clone();
        let jpegs = comp.compress(&obs.frames).expect("compress").to_vec();
        for (i, (jpeg, frame)) in jpegs.iter().zip(seen.frames.iter_mut()).enumerate() {
            dec.decode(i, jpeg, frame).expect("decode");
        }
        let (mut a, mut b) = (ActionChunk::for_spec(local.spec()), ActionChunk::for_spec(local.spec()));
        local.infer(&seen, &mut a).expect("local");
        remote.infer(&obs, &mut b).expect("remote");
        assert_eq!(a.as_slice(), b.as_slice(), "request {id}");
    }
    let jpeg_bytes = remote.last_request_bytes();
    println!("request: {raw_bytes} bytes raw, {jpeg_bytes} bytes with JPEG q90");
    // The bench frames are textured noise, JPEG's worst case; camera scenes
    // shrink far more (docs/BENCHMARKS.md, `ganglion bench remote`).
    assert!(jpeg_bytes < raw_bytes, "{jpeg_bytes} vs {raw_bytes} bytes");
}

/// No server: `connect` says so naming the key; a server that goes away
/// mid-run makes `infer` fail as unreachable (not as a policy error), and
/// a malformed request is refused by the server without a panic.
#[test]
fn no_server_is_named_and_a_server_gone_is_unreachable() {
    let port = free_port();
    let err = RemotePolicy::connect(
        &robot_session(port),
        PREFIX,
        "reach",
        "arm-1",
        Duration::from_millis(100),
        Duration::from_millis(300),
    )
    .err()
    .expect("no server");
    assert!(err.to_string().contains("test/policy/reach/spec"), "{err}");

    let handle = serve(port);
    let mut remote = connect(port).expect("connects");
    let obs = observation(&remote, 1);
    let mut chunk = ActionChunk::for_spec(remote.spec());
    remote.infer(&obs, &mut chunk).expect("served");

    // Garbage on the infer key: refused and counted, the server lives on.
    let requester = robot_session(port).requester().expect("session");
    let mut reply = Vec::new();
    let key = ganglion::remote::infer_key(PREFIX, "reach");
    requester.request(&key, b"\x00\x01garbage", Duration::from_secs(2), &mut reply).expect("sent").expect("answered");
    assert_eq!(handle.stats().refused.load(std::sync::atomic::Ordering::Relaxed), 1);
    remote.infer(&observation(&remote, 2), &mut chunk).expect("still served");

    drop(handle);
    std::thread::sleep(Duration::from_millis(300));
    match remote.infer(&observation(&remote, 3), &mut chunk) {
        Err(PolicyError::Unreachable(why)) => assert!(why.contains("test/policy/reach/infer"), "{why}"),
        other => panic!("expected unreachable, got {other:?}"),
    }
}

/// launch/sim-zenoh.toml on `transport_port`, its policy remote on
/// `server_port`.
fn remote_profile(dir: &Path, transport_port: u16, server_port: u16) -> PathBuf {
    remote_profile_with(dir, transport_port, server_port, "", "")
}

/// [`remote_profile`] with lines added to `[policy.remote]` and `[policy]`.
fn remote_profile_with(dir: &Path, transport_port: u16, server_port: u16, remote: &str, policy: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("launch/sim-zenoh.toml")).expect("sim-zenoh profile");
    assert!(
        text.contains("tcp/127.0.0.1:7447") && text.contains("[policy]\n"),
        "the profile changed; update this test"
    );
    let text = text.replace("tcp/127.0.0.1:7447", &format!("tcp/127.0.0.1:{transport_port}")).replace(
        "[policy]\n",
        &format!(
            "[policy.remote]\nname = \"reach\"\nprefix = \"{PREFIX}\"\nconnect = [\"tcp/127.0.0.1:{server_port}\"]\n\
             timeout_ms = 300\n{remote}\n[policy]\n{policy}"
        ),
    );
    let path = dir.join("profile.toml");
    std::fs::write(&path, text).expect("write");
    path
}

/// Runs the deployed loop of `profile` (`[policy.remote]`) for `seconds`
/// against the wire plant in a thread, calling `during(elapsed)` while it
/// runs; returns the run's report.
fn closed_loop(profile: &Path, seconds: f64, during: impl Fn(Duration)) -> ganglion::deploy::RunReport {
    use ganglion::plant::wire::{serve as serve_plant, ServeOptions};
    let plant_opts = ServeOptions::zenoh(profile.to_path_buf());
    let plant = std::thread::spawn(move || serve_plant(&plant_opts));
    let options = RuntimeOptions { seconds: Some(seconds), policy: Some(PolicyChoice::Remote), ..Default::default() };
    let mut runtime = Runtime::start(profile, options).expect("start");
    let started = std::time::Instant::now();
    runtime.run_until(|| {
        during(started.elapsed());
        false
    });
    let report = runtime.shutdown().expect("shutdown");
    let _ = plant.join();
    report
}

/// The deployed loop with `[policy.remote]` closes the loop on the wire
/// plant; the server stopped mid-run hands the arm to the fallback with
/// `policy_unreachable`, and a restarted server gets the policy driving
/// again without restarting the run.
#[test]
fn the_loop_runs_a_remote_policy_and_survives_a_server_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (transport_port, server_port) = (free_port(), free_port());
    let path = remote_profile(dir.path(), transport_port, server_port);
    let server = std::cell::RefCell::new(Some(serve(server_port)));
    let restarted = std::cell::Cell::new(false);
    let report = closed_loop(&path, 9.0, |t| {
        if t > Duration::from_secs(3) && !restarted.get() {
            server.borrow_mut().take(); // the server goes away
        }
        if t > Duration::from_secs(5) && !restarted.get() {
            *server.borrow_mut() = Some(serve(server_port));
            restarted.set(true);
        }
    });
    drop(server);

    assert!(report.policy.starts_with("reach-v1"), "{report:?}");
    assert!(report.causes.get("policy_unreachable").copied().unwrap_or(0) > 0, "{:?}", report.causes);
    assert!(report.total_fallback_ticks > 0, "{report:?}");
    assert_eq!(report.final_mode, "nominal", "the policy drives again after the restart: {report:?}");
    // The server's share of each chunk, from the replies.
    assert!(report.inference_us.contains_key("server compute"), "{:?}", report.inference_us);
    assert!(report.chunks_accepted > 50, "{report:?}");
}

/// The reference bundle's directory and development key (the robot's copy
/// of the served bundle, for a split).
fn reference_files() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    (root.join("policies/reference/reach-v1"), root.join("policies/reference/dev-key.pub"))
}

/// A split world model over real zenoh: the server runs the encoder (the
/// encode key), the robot the dynamics and head of its own copy of the
/// bundle. With the reply's arrival pinned to the span of the committed
/// actions, its chunks and surprise are the whole local bundle's, bit for
/// bit, request after request.
#[test]
fn a_split_world_model_over_zenoh_is_the_local_bundle_when_the_round_trip_is_as_expected() {
    use std::sync::Arc;
    let port = free_port();
    let handle = serve(port);
    let remote = connect(port).expect("connects");
    let (bundle, key) = reference_files();
    let tail = ganglion::eval::load_tail(&bundle, Some(&key), false).expect("tail");
    let clock = ganglion_core::SimClock::new(ganglion_core::Stamp::ZERO);
    let mut split =
        ganglion_policies::SplitPolicy::new(Box::new(remote), tail, Arc::new(clock.clone())).expect("same bundle");
    let mut local = reference_bundle();
    let step = local.spec().step_ns;
    let mut surprises = 0;
    for id in 1..=5 {
        let obs = observation(&local, id);
        let (mut a, mut b) = (ActionChunk::for_spec(local.spec()), ActionChunk::for_spec(local.spec()));
        local.infer(&obs, &mut a).expect("local");
        clock.set(obs.stamp.add_nanos(obs.committed.len() as u64 * step));
        split.infer(&obs, &mut b).expect("split");
        assert_eq!(split.last_roll(), obs.committed.len());
        assert_eq!(a.as_slice(), b.as_slice(), "request {id}");
        assert_eq!((a.surprise, a.request_id, a.obs_stamp), (b.surprise, b.request_id, b.obs_stamp), "request {id}");
        surprises += usize::from(b.surprise.is_some());
    }
    assert!(surprises >= 4, "the robot's half computes the surprise");
    let mut stages = Vec::new();
    split.stage_times(&mut |name, _| stages.push(name.to_owned()));
    assert_eq!(stages, ["server queue", "server compute", "tail"]);
    assert_eq!(handle.stats().served.load(std::sync::atomic::Ordering::Relaxed), 5);
}

/// A served bundle in LeRobot's range units (its joints relative to each
/// arm's calibration, as an SO-101 policy trained without `use_degrees`):
/// every robot sends its arm's calibrated ranges with its requests, and
/// gets the chunk its own arm's calibration gives locally, bit for bit,
/// while another robot with another calibration gets another; a robot that
/// sends none is refused, the calibration named.
#[test]
fn each_robot_gets_a_range_units_bundle_converted_with_its_own_calibration() {
    use ganglion_core::JointRange;
    use ganglion_policies::{load_policy, LoadOptions};
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir_all(&bundle).expect("mkdir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/servo/bundle");
    for f in ["policy.onnx", "policy.toml"] {
        std::fs::copy(fixture.join(f), bundle.join(f)).expect("copy");
    }
    let text = std::fs::read_to_string(bundle.join("policy.toml")).expect("manifest");
    let units = r#"units = ["range_m100_100", "range_m100_100", "range_m100_100", "range_m100_100", "range_m100_100", "range_0_100"]"#;
    let edited = text
        .replacen(
            "std = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]\n",
            &format!("std = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]\n{units}\n"),
            1,
        )
        .replacen("mean = [0.3, -0.3, 0.3, -0.3, 0.3, 0.5]", "mean = [20.0, -20.0, 15.0, -10.0, 25.0, 60.0]", 1);
    assert_eq!(edited.matches("units = ").count(), 1, "the fixture changed; update this test");
    std::fs::write(bundle.join("policy.toml"), edited).expect("write");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let secret =
        ganglion_policies::read_signing_key(&root.join("policies/fixtures/TEST-ONLY-signing.key")).expect("key");
    ganglion_policies::sign_bundle(&bundle, &secret).expect("sign");
    let public =
        ganglion_policies::read_verifying_key(&root.join("policies/fixtures/TEST-ONLY-signing.pub")).expect("key");
    let opts = LoadOptions { trusted_keys: vec![public], ..LoadOptions::default() };

    let port = free_port();
    let (served, server_opts) = (bundle.clone(), LoadOptions { ranges_per_robot: true, ..opts.clone() });
    let factory = Box::new(move || Ok(Box::new(load_policy(&served, &server_opts)?) as Box<dyn Policy>));
    let cfg = ZenohConfig { listen: vec![format!("tcp/127.0.0.1:{port}")], ..ZenohConfig::default() };
    let server = PolicyServer::new(factory, 4).expect("server");
    let _handle =
        ServerHandle::start(server, &cfg, PREFIX, "so101", 16, ganglion_zenoh::Batching::ONE).expect("serving");

    let arm = |span: f64| -> Vec<JointRange> {
        (0..6).map(|k| JointRange { min_rad: -span - 0.1 * k as f64, max_rad: span, inverted: false }).collect()
    };
    let connect = |robot: &str, ranges: Vec<JointRange>| {
        RemotePolicy::connect(
            &robot_session(port),
            PREFIX,
            "so101",
            robot,
            Duration::from_secs(2),
            Duration::from_secs(5),
        )
        .expect("connects")
        .with_joint_ranges(ranges)
    };
    let mut chunks = Vec::new();
    for (robot, span) in [("arm-a", 1.5), ("arm-b", 2.0)] {
        let mut remote = connect(robot, arm(span));
        let mut local = load_policy(&bundle, &LoadOptions { joint_ranges: arm(span), ..opts.clone() }).expect("local");
        let mut obs = Observation::for_spec(local.spec());
        obs.joints.position.copy_from_slice(&[0.1, -0.2, 0.3, -0.1, 0.2, 0.4]);
        obs.request_id = 7;
        let (mut a, mut b) = (ActionChunk::for_spec(local.spec()), ActionChunk::for_spec(local.spec()));
        local.infer(&obs, &mut a).expect("local");
        remote.infer(&obs, &mut b).expect("remote");
        assert_eq!(a.as_slice(), b.as_slice(), "{robot}: the server converted with this arm's calibration");
        chunks.push(b.as_slice().to_vec());
    }
    assert_ne!(chunks[0], chunks[1], "two arms, two calibrations, two chunks");

    let mut uncalibrated = connect("arm-c", Vec::new());
    let obs = Observation::for_spec(uncalibrated.spec());
    let mut out = ActionChunk::for_spec(uncalibrated.spec());
    match uncalibrated.infer(&obs, &mut out) {
        Err(PolicyError::BadObservation(why)) => assert!(why.contains("range units"), "{why}"),
        other => panic!("expected a refusal naming the calibration, got {other:?}"),
    }
}

/// The deployed loop with `[policy.remote] split = true` drives the wire
/// plant: the encoder on the server, the dynamics and head on the robot's
/// inference worker (its `tail` stage in the run report).
#[test]
fn the_loop_runs_a_split_world_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (transport_port, server_port) = (free_port(), free_port());
    let (bundle, key) = reference_files();
    let policy = format!("bundle = \"{}\"\ntrusted_keys = \"{}\"\n", bundle.display(), key.display());
    let path = remote_profile_with(dir.path(), transport_port, server_port, "split = true\n", &policy);
    let _server = serve(server_port);
    let report = closed_loop(&path, 4.0, |_| {});
    assert_eq!(report.final_mode, "nominal", "{report:?}");
    assert!(report.chunks_accepted > 20, "{report:?}");
    assert!(report.inference_us.contains_key("tail"), "{:?}", report.inference_us);
    assert!(report.inference_us.contains_key("server compute"), "{:?}", report.inference_us);
    assert_eq!(report.causes.get("policy_unreachable"), None, "{:?}", report.causes);
}

/// A TCP relay that holds every chunk of bytes for `delay_ms` (read at run
/// time, so a test can change it) in each direction: a slow network link
/// in user space. (`tc netem` between two network namespaces is what the
/// issue names; this machine's kernel has no `sch_netem`.)
struct DelayLink {
    port: u16,
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl DelayLink {
    fn start(upstream: u16, delay_ms: u64) -> DelayLink {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let delay = std::sync::Arc::new(AtomicU64::new(delay_ms));
        let d = delay.clone();
        std::thread::spawn(move || {
            for down in listener.incoming() {
                let Ok(down) = down else { return };
                let Ok(up) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                for (mut from, mut to) in
                    [(down.try_clone().expect("clone"), up.try_clone().expect("clone")), (up, down)]
                {
                    let (tx, rx) = std::sync::mpsc::channel::<(std::time::Instant, Vec<u8>)>();
                    let d = d.clone();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            let due = std::time::Instant::now() + Duration::from_millis(d.load(Ordering::Relaxed));
                            if n == 0 || tx.send((due, buf[..n].to_vec())).is_err() {
                                break;
                            }
                        }
                    });
                    std::thread::spawn(move || {
                        while let Ok((due, bytes)) = rx.recv() {
                            std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
                            if to.write_all(&bytes).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        DelayLink { port, delay_ms: delay }
    }

    fn set_delay_ms(&self, ms: u64) {
        self.delay_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Behind a slow link the loop keeps its rate: at 20 ms each way the remote
/// policy drives; when the link slows to 1.5 s each way (a round trip of
/// 3 s, far beyond the reference policy's 800 ms chunk) the chunk in hand
/// runs out and the fallback takes over (`inference_late`); when the link
/// recovers, the policy drives again.
#[test]
fn behind_a_slow_link_the_loop_keeps_its_rate_falls_back_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (transport_port, server_port) = (free_port(), free_port());
    let _server = serve(server_port);
    let link = DelayLink::start(server_port, 20);
    let path = remote_profile(dir.path(), transport_port, link.port);
    let text = std::fs::read_to_string(&path).expect("profile").replace("timeout_ms = 300", "timeout_ms = 5000");
    std::fs::write(&path, text).expect("write");
    let report = closed_loop(&path, 10.0, |t| {
        link.set_delay_ms(if t > Duration::from_secs(3) && t < Duration::from_secs(6) { 1500 } else { 20 });
    });

    assert_eq!(report.total_ticks, 1000, "10 s at 100 Hz, whatever the link: {report:?}");
    assert!(report.causes.get("inference_late").copied().unwrap_or(0) > 0, "{:?}", report.causes);
    assert!(!report.causes.contains_key("policy_unreachable"), "slow is not unreachable: {:?}", report.causes);
    assert!(report.total_fallback_ticks > 0 && report.total_fallback_ticks < 800, "{report:?}");
    assert_eq!(report.final_mode, "nominal", "the policy drives again once the link recovers: {report:?}");
}

/// Dynamic batching (`ganglion serve --max-batch`): four robots asking at
/// once are answered together, one engine call per graph call for all of
/// them, and each gets the chunk its own policy computes alone (same seed,
/// same request). The bundle's graphs take any batch
/// (`policies/fixtures/iterative/make_batch.py`); batching runs on ONNX
/// Runtime, which CI installs.
#[test]
fn robots_asking_together_are_served_in_one_batch() {
    use ganglion_policies::backend::batch::BatchPool;
    use ganglion_policies::{load_policy, LoadOptions};
    use std::sync::atomic::Ordering;
    if let Err(e) = ganglion_policies::backend::ort_available() {
        return prereq::missing(
            "robots_asking_together_are_served_in_one_batch",
            &format!("ONNX Runtime unusable: {e}"),
        );
    }
    let t0 = std::time::Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/fixtures");
    let dir = root.join("iterative/flow-mlp-batch");
    let key = ganglion_policies::read_verifying_key(&root.join("TEST-ONLY-signing.pub")).expect("test key");
    let load = move |batch: Option<std::sync::Arc<BatchPool>>| {
        let opts = LoadOptions { backend: BackendKind::Ort, trusted_keys: vec![key], batch, ..LoadOptions::default() };
        let mut policy = load_policy(&dir, &opts).expect("flow-mlp-batch");
        policy.set_noise_seed(7);
        policy
    };
    let pool = BatchPool::new(4).expect("pool");
    let (server_pool, local_load) = (pool.clone(), load.clone());
    let factory = Box::new(move || Ok(Box::new(load(Some(server_pool.clone()))) as Box<dyn Policy>));
    let server = PolicyServer::new(factory, 4).expect("server").batched(pool.clone());
    let port = free_port();
    let cfg = ZenohConfig { listen: vec![format!("tcp/127.0.0.1:{port}")], ..ZenohConfig::default() };
    let batching = ganglion_zenoh::Batching { max: 4, window: Duration::from_millis(200) };
    let handle = ServerHandle::start(server, &cfg, PREFIX, "batch", 16, batching).expect("serving");
    let mut local = local_load(None);
    let mut robots: Vec<RemotePolicy> = (0..4)
        .map(|i| {
            let (wait, timeout) = (Duration::from_secs(5), Duration::from_secs(5));
            let mut r =
                RemotePolicy::connect(&robot_session(port), PREFIX, "batch", &format!("arm-{i}"), timeout, wait)
                    .expect("connects");
            // The robot's policy instance is built by its first request.
            let mut chunk = ActionChunk::for_spec(r.spec());
            r.infer(&observation(&local, 1), &mut chunk).expect("first request");
            r
        })
        .collect();
    let before = pool.stats();
    eprintln!("connected after {:?}", t0.elapsed());
    for round in 0..3u64 {
        let start = std::sync::Barrier::new(4);
        let spec = local.spec().clone();
        let got: Vec<(u64, ActionChunk)> = std::thread::scope(|s| {
            let threads: Vec<_> = robots
                .iter_mut()
                .enumerate()
                .map(|(i, r)| {
                    let (start, spec) = (&start, &spec);
                    s.spawn(move || {
                        let id = 100 * (i as u64 + 1) + round;
                        let obs = ganglion::bench::remote::observation(spec, id);
                        let mut chunk = ActionChunk::for_spec(spec);
                        start.wait();
                        r.infer(&obs, &mut chunk).expect("batched request");
                        (id, chunk)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().expect("robot thread")).collect()
        });
        for (id, chunk) in &got {
            let mut alone = ActionChunk::for_spec(local.spec());
            local.infer(&observation(&local, *id), &mut alone).expect("local");
            assert_eq!(chunk.as_slice(), alone.as_slice(), "request {id}: the batch mixed up rows");
        }
        assert_ne!(got[0].1.as_slice(), got[1].1.as_slice());
        eprintln!("round {round} after {:?}", t0.elapsed());
    }
    let after = pool.stats();
    let batches = handle.stats().batches.load(Ordering::Relaxed);
    eprintln!(
        "batches {batches}; engine calls {}, rows {}, largest {}",
        after.runs - before.runs,
        after.rows - before.rows,
        after.largest
    );
    assert!(batches >= 1 && after.largest >= 2, "requests sent together were not batched: {after:?}");
    assert_eq!(after.rows - before.rows, 3 * 4 * 11, "every robot's graph calls ran, once each");
    assert!(after.runs - before.runs < after.rows - before.rows, "fewer engine calls than graph calls");
}

/// Kills the child process when dropped (a test that fails mid-way leaves
/// no server behind).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ganglion serve --noise-seed`: the server's policies draw their noise
/// from that seed and announce it in the spec reply, so the robot records
/// it (`noise_seed` metadata) and a replay re-creates the server's chunks:
/// an iterative bundle served remotely gives the local bundle's chunk,
/// bit for bit, seeded the same (the stream is the request id), and another
/// seed's chunk differs.
#[test]
fn a_servers_noise_seed_reaches_the_robot_and_recreates_its_chunks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bundle = root.join("policies/fixtures/iterative/flow-mlp");
    let key = root.join("policies/fixtures/TEST-ONLY-signing.pub");
    let port = free_port();
    let _server = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_ganglion"))
            .args(["serve", "--backend", "tract", "--noise-seed", "7", "--seconds", "60", "--prefix", PREFIX])
            .args(["--name", "flow", "--listen", &format!("tcp/127.0.0.1:{port}")])
            .arg("--bundle")
            .arg(&bundle)
            .arg("--key")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("ganglion serve"),
    );
    let mut remote = RemotePolicy::connect(
        &robot_session(port),
        PREFIX,
        "flow",
        "arm-1",
        Duration::from_secs(5),
        Duration::from_secs(30),
    )
    .expect("connects");
    assert_eq!(remote.noise_seed(), Some(7), "the spec reply carries the server's seed");
    let load = |seed: u64| {
        let (_, mut p) =
            ganglion::eval::load_bundle(Some(&bundle), BackendKind::Tract, Some(&key), false).expect("flow bundle");
        p.set_noise_seed(seed);
        p
    };
    let (mut same, mut other) = (load(7), load(8));
    for id in [3, 4] {
        let obs = observation(&same, id);
        let spec = same.spec().clone();
        let (mut a, mut b, mut c) =
            (ActionChunk::for_spec(&spec), ActionChunk::for_spec(&spec), ActionChunk::for_spec(&spec));
        remote.infer(&obs, &mut a).expect("remote");
        same.infer(&obs, &mut b).expect("local, same seed");
        other.infer(&obs, &mut c).expect("local, another seed");
        assert_eq!(a.as_slice(), b.as_slice(), "request {id}: the server's chunk is the local one with its seed");
        assert_ne!(a.as_slice(), c.as_slice(), "request {id}: the noise depends on the seed");
    }
}
