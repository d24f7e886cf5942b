//! Starts the plant and the controller as separate processes for one
//! scenario episode, applies the kill, and collects their files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::scenario::Scenario;

/// Which controller drives the plant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Controller {
    /// `ganglion run`.
    Ganglion,
    /// `hil-tests/baseline/loop.py`.
    Baseline,
}

impl Controller {
    /// Directory / column name.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Ganglion => "ganglion",
            Controller::Baseline => "baseline",
        }
    }
}

/// Where the tools are.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The `ganglion` binary.
    pub ganglion: PathBuf,
    /// Python with onnxruntime and eclipse-zenoh (the baseline).
    pub python: PathBuf,
    /// The workspace root (profiles, bundle, baseline script).
    pub root: PathBuf,
    /// Whether `ganglion run` has `--record-dir`.
    pub has_record_dir: bool,
    /// SCHED_FIFO priority for the plant and the controller processes
    /// (through `chrt -f`), and `[realtime] enabled` for Ganglion's own
    /// threads; `None`: default scheduler.
    pub rt_priority: Option<u8>,
}

impl Tools {
    /// Finds `ganglion` (`explicit`, else `GANGLION_BIN`, else next to this
    /// executable or one directory up, as cargo lays out test binaries).
    pub fn find(explicit: Option<PathBuf>, python: Option<PathBuf>, root: PathBuf) -> anyhow::Result<Tools> {
        let ganglion = match explicit.or_else(|| std::env::var_os("GANGLION_BIN").map(PathBuf::from)) {
            Some(p) => p,
            None => {
                let exe = std::env::current_exe().context("locating this executable")?;
                let dir = exe.parent().context("executable has no directory")?;
                [dir.join("ganglion"), dir.join("../ganglion")]
                    .into_iter()
                    .find(|p| p.is_file())
                    .with_context(|| format!("no `ganglion` binary next to {} (build it: cargo build -p ganglion, or pass --ganglion / GANGLION_BIN)", exe.display()))?
            }
        };
        anyhow::ensure!(ganglion.is_file(), "ganglion binary {} does not exist", ganglion.display());
        let python = python
            .or_else(|| std::env::var_os("GANGLION_PYTHON").map(PathBuf::from))
            .or_else(|| Some(root.join(".venv/bin/python")).filter(|p| p.is_file()))
            .unwrap_or_else(|| PathBuf::from("python3"));
        let help = Command::new(&ganglion).args(["run", "--help"]).output().context("running ganglion run --help")?;
        let has_record_dir = String::from_utf8_lossy(&help.stdout).contains("--record-dir");
        Ok(Tools { ganglion, python, root, has_record_dir, rt_priority: None })
    }
}

/// What one plant + controller run left behind.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// The run's directory.
    pub dir: PathBuf,
    /// The profile both sides used.
    pub profile: PathBuf,
    /// `plant.jsonl`.
    pub plant_log: PathBuf,
    /// `plant.json` (the plant's report).
    pub plant_report: PathBuf,
    /// `run.json` / `baseline.json`.
    pub controller_report: PathBuf,
    /// `events.jsonl` (ganglion) / `baseline.jsonl`.
    pub controller_log: PathBuf,
    /// Flight recordings (ganglion, when supported).
    pub record_dir: Option<PathBuf>,
    /// The controller's stderr.
    pub controller_stderr: PathBuf,
    /// Controller exit (None: killed by the rig or timed out).
    pub controller_status: Option<ExitStatus>,
    /// Whether the rig killed the controller on purpose.
    pub killed: bool,
    /// Monotonic ns when the rig sent SIGKILL.
    pub killed_at_ns: Option<u64>,
    /// Plant exit.
    pub plant_status: Option<ExitStatus>,
    /// Control period of the profile, ns.
    pub period_ns: u64,
}

/// A free TCP port on loopback (the OS picks; a tiny race remains).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(l.local_addr()?.port())
}

/// `CLOCK_MONOTONIC` in ns: the clock both the plant log and Ganglion's
/// event log use.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Merges `over` into `base` (tables recursively, other values replaced).
pub fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Writes the scenario's profile: the base profile, the scenario's
/// overrides, a unique loopback port, a heartbeat after every command (so
/// the plant learns each command's mode), and the bundle path.
pub fn write_profile(sc: &Scenario, tools: &Tools, bundle: &Path, dir: &Path) -> anyhow::Result<(PathBuf, u64)> {
    let base = tools.root.join("launch/sim-zenoh.toml");
    let text = std::fs::read_to_string(&base).with_context(|| format!("reading {}", base.display()))?;
    let mut t: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", base.display()))?;
    merge(&mut t, &sc.profile);
    let port = free_port()?;
    let rig: toml::Table = toml::from_str(&format!(
        "[transport]\nheartbeat_period_ms = 0\n[transport.zenoh]\nlisten = [\"tcp/127.0.0.1:{port}\"]\nconnect = []\n\
         multicast_scouting = false\n[policy]\nbundle = {:?}\n",
        bundle.display().to_string()
    ))?;
    merge(&mut t, &rig);
    if tools.rt_priority.is_some() {
        // Ganglion's control thread and worker get their own SCHED_FIFO
        // priorities (80 / 70 by default), above the process's.
        let rt: toml::Table = toml::from_str("[realtime]\nenabled = true\nrequired = []\n")?;
        merge(&mut t, &rt);
    }
    let rate = t
        .get("control")
        .and_then(|c| c.get("rate_hz"))
        .and_then(|r| r.as_float().or_else(|| r.as_integer().map(|i| i as f64)))
        .context("profile has no control.rate_hz")?;
    let path = dir.join("profile.toml");
    std::fs::write(&path, toml::to_string(&t)?).with_context(|| format!("writing {}", path.display()))?;
    Ok((path, (1e9 / rate).round() as u64))
}

/// Copies the bundle and flips one byte in the middle of its first model
/// file (the signature then no longer matches).
pub fn tampered_bundle(bundle: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let out = dir.join("tampered-bundle");
    std::fs::create_dir_all(&out)?;
    let mut flipped = false;
    let mut entries: Vec<_> = std::fs::read_dir(bundle)
        .with_context(|| format!("reading bundle {}", bundle.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let mut bytes = std::fs::read(e.path())?;
        if !flipped && e.path().extension().is_some_and(|x| x == "onnx") && !bytes.is_empty() {
            let i = bytes.len() / 2;
            bytes[i] ^= 0x01;
            flipped = true;
        }
        std::fs::write(out.join(e.file_name()), bytes)?;
    }
    anyhow::ensure!(flipped, "bundle {} has no .onnx file to tamper with", bundle.display());
    Ok(out)
}

/// `program`, under `chrt -f PRIO` when the rig runs real-time.
fn command(tools: &Tools, program: &Path) -> Command {
    match tools.rt_priority {
        Some(prio) => {
            let mut c = Command::new("chrt");
            c.args(["-f", &prio.to_string()]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Whether this process may use SCHED_FIFO (root, and `chrt` exists).
pub fn can_chrt() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && Command::new("chrt").args(["-f", "1", "true"]).status().is_ok_and(|s| s.success())
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the plant log holds a received command yet.
fn plant_saw_command(log: &Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|t| t.contains("\"t\":\"cmd\""))
}

/// Runs one episode of `sc` with `ctl` in `dir`.
pub fn run_episode(
    sc: &Scenario,
    ctl: Controller,
    episode: u64,
    tools: &Tools,
    dir: &Path,
) -> anyhow::Result<RunFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut bundle = tools.root.join("policies/reference/reach-v1");
    if sc.runtime.tamper_bundle {
        bundle = tampered_bundle(&bundle, dir)?;
    }
    let (profile, period_ns) = write_profile(sc, tools, &bundle, dir)?;
    let plant_log = dir.join("plant.jsonl");
    let plant_report = dir.join("plant.json");
    let mut plant_cmd = command(tools, &tools.ganglion);
    plant_cmd
        .args(["sim", "serve", "--transport", "zenoh", "--profile"])
        .arg(&profile)
        .args(["--seconds", &format!("{}", sc.runtime.seconds + 60.0)])
        .args(["--command-timeout-ms", &sc.plant.command_timeout_ms.to_string()])
        .args(["--seed", &sc.plant.seed.to_string(), "--episode", &episode.to_string()])
        .arg("--log")
        .arg(&plant_log)
        .arg("--report")
        .arg(&plant_report)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("plant.err"))?);
    if sc.plant.lockstep {
        plant_cmd.arg("--lockstep");
    }
    if sc.plant.camera_noise {
        plant_cmd.arg("--camera-noise");
    }
    for f in &sc.plant.faults {
        plant_cmd.args(["--fault", f]);
    }
    let mut plant = plant_cmd.spawn().with_context(|| format!("starting the plant {}", tools.ganglion.display()))?;

    let controller_stderr = dir.join(format!("{}.err", ctl.name()));
    let (controller_report, controller_log, record_dir) = match ctl {
        Controller::Ganglion => (dir.join("run.json"), dir.join("events.jsonl"), Some(dir.join("recordings"))),
        Controller::Baseline => (dir.join("baseline.json"), dir.join("baseline.jsonl"), None),
    };
    let record_dir = record_dir.filter(|_| tools.has_record_dir);
    let mut cmd = match ctl {
        Controller::Ganglion => {
            let mut c = command(tools, &tools.ganglion);
            c.args(["run", "--config"])
                .arg(&profile)
                .args(["--policy", &sc.runtime.policy, "--seconds", &sc.runtime.seconds.to_string()])
                .arg("--report")
                .arg(&controller_report)
                .arg("--events")
                .arg(&controller_log);
            if sc.runtime.policy == "bundle" {
                c.arg("--key").arg(tools.root.join("policies/reference/dev-key.pub"));
            }
            if let Some(r) = &record_dir {
                c.arg("--record-dir").arg(r);
            }
            for i in &sc.runtime.inject {
                c.args(["--inject", i]);
            }
            c
        }
        Controller::Baseline => {
            let mut c = command(tools, &tools.python);
            c.arg(tools.root.join("hil-tests/baseline/loop.py"))
                .arg("--profile")
                .arg(&profile)
                .arg("--bundle")
                .arg(&bundle)
                .args(["--seconds", &sc.runtime.seconds.to_string()])
                .arg("--report")
                .arg(&controller_report)
                .arg("--log")
                .arg(&controller_log);
            for i in &sc.runtime.inject {
                c.args(["--inject", i]);
            }
            c
        }
    };
    cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&controller_stderr)?);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = plant.kill();
            let _ = plant.wait();
            return Err(e).with_context(|| format!("starting the {} controller", ctl.name()));
        }
    };
    let (mut killed, mut killed_at_ns) = (false, None);
    if let Some(after) = sc.runtime.kill_after_s {
        let t0 = Instant::now();
        while !plant_saw_command(&plant_log) && t0.elapsed() < Duration::from_secs(60) {
            if child.try_wait()?.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_secs_f64(after));
        if child.try_wait()?.is_none() {
            // std's kill is SIGKILL on Unix: no handler, no final command.
            killed_at_ns = Some(mono_ns());
            child.kill().context("SIGKILL to the controller")?;
            killed = true;
        }
    }
    let budget = Duration::from_secs_f64(sc.runtime.seconds + 90.0);
    let controller_status = wait_timeout(&mut child, budget)?;
    let controller_status = if killed { None } else { controller_status };
    // The plant ends 2 s after the last command; a controller that never
    // commanded leaves it waiting: stop it.
    let plant_budget = if plant_saw_command(&plant_log) { Duration::from_secs(20) } else { Duration::from_millis(500) };
    let plant_status = wait_timeout(&mut plant, plant_budget)?;
    Ok(RunFiles {
        dir: dir.into(),
        profile,
        plant_log,
        plant_report,
        controller_report,
        controller_log,
        record_dir,
        controller_stderr,
        controller_status,
        killed,
        killed_at_ns,
        plant_status,
        period_ns,
    })
}
