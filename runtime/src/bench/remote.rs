//! `ganglion bench remote`: a policy server and N robots on this machine
//! over loopback zenoh, side by side with the same bundle run locally in
//! the same invocation: round trip, the server's queue and compute time,
//! and what transport plus serialization add (round trip − queue −
//! compute), per robot count.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ganglion_core::stats::Percentiles;
use ganglion_core::{ActionChunk, Instruction, JointVec, Observation, Policy, PolicySpec, Stamp};
use ganglion_policies::BackendKind;

use ganglion_codec::remote::FramePayload;

use crate::remote::{PolicyServer, RemotePolicy, ServerHandle};

/// What to measure.
#[derive(Debug, Clone)]
pub struct RemoteBench {
    /// Bundle (default: the reference bundle).
    pub bundle: Option<PathBuf>,
    /// Backend on the server and for the local run.
    pub backend: BackendKind,
    /// Robot counts, one row each.
    pub robots: Vec<usize>,
    /// Requests per robot.
    pub requests: usize,
    /// Serve a stand-in policy instead of the bundle: this many RGB cameras
    /// of this size (e.g. 2 × 224²), 6 joints, negligible compute, to
    /// measure what frames of that size cost on the wire.
    pub stand_in: Option<(usize, u32)>,
    /// Robots send their frames JPEG-compressed at this quality.
    pub jpeg: Option<u8>,
    /// The server batches up to this many robots' requests (1: none); the
    /// bundle must allow it (`max_batch`) and run on ONNX Runtime.
    pub max_batch: usize,
    /// How long the server waits for more requests after a batch's first.
    pub batch_window: Duration,
}

/// The stand-in: reads every pixel (as a network's input copy would) and
/// answers a constant chunk.
struct StandIn {
    spec: PolicySpec,
}

impl StandIn {
    fn new(cameras: usize, size: u32) -> StandIn {
        let cameras = (0..cameras)
            .map(|i| ganglion_core::CameraSpec {
                name: format!("cam{i}"),
                width: size,
                height: size,
                format: ganglion_core::PixelFormat::Rgb8,
            })
            .collect();
        StandIn {
            spec: PolicySpec {
                name: format!("stand-in {size}x{size}"),
                n_joints: 6,
                chunk_len: 16,
                step_ns: 20_000_000,
                action_kind: ganglion_core::ActionKind::AbsolutePosition,
                cameras,
                expected_latency_ns: 1_000_000,
                surprise_threshold: None,
                history: 1,
                rolls_at_reply: false,
            },
        }
    }
}

impl Policy for StandIn {
    fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), ganglion_core::PolicyError> {
        let level: u64 = obs.frames.iter().flat_map(|f| f.data().iter()).map(|&b| u64::from(b)).sum();
        out.set_steps(self.spec.chunk_len);
        let target = (level % 100) as f64 * 1e-3;
        out.as_mut_slice().fill(target);
        out.request_id = obs.request_id;
        out.obs_stamp = obs.stamp;
        Ok(())
    }
}

/// One robot count.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemoteRow {
    /// Robots sending at once (each waits for its reply before the next request).
    pub robots: usize,
    /// Replies per second, all robots together.
    pub requests_per_s: f64,
    /// Request sent → chunk decoded, ms.
    pub round_trip_ms: Percentiles,
    /// Waiting on the server before its policy ran, ms.
    pub server_queue_ms: Percentiles,
    /// The policy's compute on the server, ms.
    pub server_compute_ms: Percentiles,
    /// Round trip − queue − compute: zenoh, serialization, copies, ms.
    pub transport_ms: Percentiles,
}

/// The whole measurement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemoteReport {
    /// The policy.
    pub policy: String,
    /// Bytes of one infer request.
    pub request_bytes: usize,
    /// The same bundle in this process, one `infer`, ms.
    pub local_infer_ms: Percentiles,
    /// Per robot count.
    pub rows: Vec<RemoteRow>,
}

/// A deterministic observation for `spec`: a pose, a frame per camera (the
/// simulated arm's scene rendered at the camera's size, episode =
/// `request_id`; textured noise for a camera the renderer cannot draw), an
/// instruction, a committed action and, for a policy with a history, copies
/// of itself as the earlier observations (benches and tests).
pub fn observation(spec: &PolicySpec, request_id: u64) -> Observation {
    let mut obs = Observation::for_spec(spec);
    obs.request_id = request_id;
    obs.stamp = Stamp(1_000_000_000 + request_id * 20_000_000);
    obs.instruction = Instruction::new(1, "reach the red target");
    for (i, p) in obs.joints.position.iter_mut().enumerate() {
        *p = 0.1 * (i as f64 + 1.0) + 0.01 * (request_id % 17) as f64;
    }
    for (cam, frame) in spec.cameras.iter().zip(obs.frames.iter_mut()) {
        if render_scene(cam, request_id, frame) {
            continue;
        }
        let (w, h, f) = (cam.width, cam.height, cam.format);
        let seed = request_id as usize * 13;
        let _ = frame.set_with(w, h, f, |px| {
            for (i, b) in px.iter_mut().enumerate() {
                *b = ((i * 7 + seed) % 251) as u8;
            }
        });
    }
    let _ = obs.committed.push(JointVec::splat(spec.n_joints, 0.2));
    // A history policy's earlier observations: this one, a step before each.
    let (stamp, joints) = (obs.stamp, obs.joints);
    let mut past = Observation::with_history(spec).past;
    for (k, p) in past.iter_mut().enumerate() {
        let _ = p.copy_from(Stamp(stamp.0.saturating_sub((k as u64 + 1) * spec.step_ns)), &joints, &obs.frames);
    }
    obs.past = past;
    obs
}

/// The simulated arm's camera view for RGB cameras the renderer can draw.
fn render_scene(cam: &ganglion_core::CameraSpec, episode: u64, frame: &mut ganglion_core::Frame) -> bool {
    if cam.format != ganglion_core::PixelFormat::Rgb8 {
        return false;
    }
    let cfg = ganglion_sim::SimConfig { camera_width: cam.width, camera_height: cam.height, ..Default::default() };
    let Ok(mut arm) = ganglion_sim::SimArm::new(&cfg, 0) else { return false };
    arm.reset_episode(episode);
    arm.render_into(frame).is_ok()
}

fn ms(mut v: Vec<f64>) -> Percentiles {
    Percentiles::of(&mut v).scaled(1e-6).rounded()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs the measurement.
pub fn measure(a: &RemoteBench) -> anyhow::Result<RemoteReport> {
    let (bundle, backend, stand_in, jpeg) = (a.bundle.clone(), a.backend, a.stand_in, a.jpeg);
    let pool = match a.max_batch {
        0 | 1 => None,
        n => Some(ganglion_policies::backend::batch::BatchPool::new(n)?),
    };
    let server_pool = pool.clone();
    let load = move |batch: Option<std::sync::Arc<ganglion_policies::backend::batch::BatchPool>>| {
        let bundle = bundle.clone();
        move || -> anyhow::Result<Box<dyn Policy>> {
            Ok(match stand_in {
                Some((cameras, size)) => Box::new(StandIn::new(cameras, size)),
                None => Box::new(
                    crate::eval::load_bundle_batched(bundle.as_deref(), backend, None, false, batch.clone())?.1,
                ),
            })
        }
    };
    let mut local = load(None)()?;
    let spec = local.spec().clone();
    let mut request = Vec::new();
    let first = observation(&spec, 1);
    let mut compressor = jpeg.map(|q| crate::remote::jpeg::FrameCompressor::new(q, &spec.cameras, spec.history));
    let frames = match compressor.as_mut() {
        Some(c) => FramePayload::Jpeg(c.compress_observation(&first).map_err(|e| anyhow::anyhow!("JPEG: {e}"))?),
        None => FramePayload::Raw,
    };
    ganglion_codec::remote::encode_request("robot-0", &first, frames, &mut request);

    let mut chunk = ActionChunk::for_spec(&spec);
    let mut local_ns = Vec::with_capacity(a.requests);
    for i in 0..a.requests as u64 {
        let obs = observation(&spec, i + 1);
        let t = Instant::now();
        local.infer(&obs, &mut chunk).map_err(|e| anyhow::anyhow!("local inference: {e}"))?;
        local_ns.push(t.elapsed().as_nanos() as f64);
    }

    let port = free_port()?;
    let max_robots = a.robots.iter().copied().max().unwrap_or(1);
    let mut server = PolicyServer::new(Box::new(load(server_pool)), max_robots)?;
    if let Some(pool) = pool {
        server = server.batched(pool);
    }
    let batching = ganglion_zenoh::Batching { max: a.max_batch.max(1), window: a.batch_window };
    let listen = ganglion_zenoh::ZenohConfig {
        listen: vec![format!("tcp/127.0.0.1:{port}")],
        ..ganglion_zenoh::ZenohConfig::default()
    };
    let prefix = "bench/policy";
    let _handle = ServerHandle::start(server, &listen, prefix, "bench", 4 * max_robots, batching)?;
    let connect = ganglion_zenoh::ZenohConfig {
        connect: vec![format!("tcp/127.0.0.1:{port}")],
        ..ganglion_zenoh::ZenohConfig::default()
    };

    let mut rows = Vec::new();
    for &n in &a.robots {
        // Throughput counts from when every robot is connected.
        let ready = std::sync::Arc::new(std::sync::Barrier::new(n + 1));
        let threads: Vec<_> = (0..n)
            .map(|r| {
                let (connect, spec, requests, ready) = (connect.clone(), spec.clone(), a.requests, ready.clone());
                std::thread::spawn(move || -> anyhow::Result<Vec<[f64; 3]>> {
                    let robot = format!("robot-{r}");
                    let mut chunk = ActionChunk::for_spec(&spec);
                    // Connected, and the robot's policy instance built on
                    // the server (one untimed request), before the clock starts.
                    let remote = RemotePolicy::connect(
                        &connect,
                        prefix,
                        "bench",
                        &robot,
                        Duration::from_secs(5),
                        Duration::from_secs(10),
                    )
                    .map(|remote| remote.with_jpeg(jpeg))
                    .map_err(anyhow::Error::from)
                    .and_then(|mut remote| {
                        remote
                            .infer(&observation(&spec, 0), &mut chunk)
                            .map_err(|e| anyhow::anyhow!("{robot}: {e}"))?;
                        Ok(remote)
                    });
                    ready.wait();
                    let mut remote = remote?;
                    let mut out = Vec::with_capacity(requests);
                    for i in 0..requests as u64 {
                        let obs = observation(&spec, i + 1);
                        let t = Instant::now();
                        remote.infer(&obs, &mut chunk).map_err(|e| anyhow::anyhow!("{robot}: {e}"))?;
                        let rtt = t.elapsed().as_nanos() as f64;
                        let (queue, compute) = remote.last_server_ns();
                        out.push([rtt, queue as f64, compute as f64]);
                    }
                    Ok(out)
                })
            })
            .collect();
        ready.wait();
        let started = Instant::now();
        let mut samples = Vec::new();
        for t in threads {
            samples.extend(t.join().map_err(|_| anyhow::anyhow!("a robot thread panicked"))??);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let col = |i: usize| samples.iter().map(|s| s[i]).collect::<Vec<f64>>();
        let transport = samples.iter().map(|s| (s[0] - s[1] - s[2]).max(0.0)).collect();
        rows.push(RemoteRow {
            robots: n,
            requests_per_s: (samples.len() as f64 / elapsed * 10.0).round() / 10.0,
            round_trip_ms: ms(col(0)),
            server_queue_ms: ms(col(1)),
            server_compute_ms: ms(col(2)),
            transport_ms: ms(transport),
        });
    }
    Ok(RemoteReport { policy: spec.name.clone(), request_bytes: request.len(), local_infer_ms: ms(local_ns), rows })
}
