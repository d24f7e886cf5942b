//! The secure deployment of launch/zenoh-secure, as deployed: a real zenoh
//! router from the shipped router.json5 (mTLS, unix socket, access control),
//! the drivers' and the operator's identities from gen-certs.sh, and
//! Ganglion itself (`ganglion run` over the router's unix socket), driven by
//! launch/zenoh-secure/test_acl.py. Plus the profile-level guards: a
//! `config_file` next to session keys is refused at load, TLS asked for but
//! not in effect refuses to arm, no `listen` means no listener.
//!
//! A missing prerequisite (openssl, Python with eclipse-zenoh and
//! cyclonedds) fails the test in CI (`CI` set) and skips it, loudly, on a
//! developer machine.

mod prereq;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod ports;
use ports::free_port;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("runtime/ has a parent").to_path_buf()
}

fn python(root: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("GANGLION_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = root.join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// In CI a missing prerequisite is a failure; elsewhere the test is skipped.
fn missing(what: &str) {
    prereq::missing("secure_deployment_end_to_end", what)
}

/// Runs `cmd` to completion or kills it after `limit`; (success, stdout, stderr).
fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String, String) {
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let err_file = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .stdout(Stdio::from(out_file.reopen().unwrap()))
        .stderr(Stdio::from(err_file.reopen().unwrap()))
        .spawn()
        .expect("spawning");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |f: &tempfile::NamedTempFile| std::fs::read_to_string(f.path()).unwrap_or_default();
    let (out, mut err) = (read(&out_file), read(&err_file));
    if status.is_none() {
        err.push_str(&format!("\nkilled after {limit:?}"));
    }
    (status.is_some_and(|s| s.success()), out, err)
}

/// launch/sim-zenoh.toml with its `[transport.zenoh]` section replaced.
fn sim_profile_with_zenoh(section: &str) -> String {
    let text = std::fs::read_to_string(workspace_root().join("launch/sim-zenoh.toml")).unwrap();
    // The section header on a line of its own (comments may name it too).
    let (head, rest) = text.split_once("\n[transport.zenoh]\n").unwrap();
    let (_, tail) = rest.split_once("\n[realtime]").unwrap();
    format!("{head}\n[transport.zenoh]\n{section}\n\n[realtime]{tail}")
}

#[test]
fn secure_deployment_end_to_end() {
    let root = workspace_root();
    let dir = root.join("launch/zenoh-secure");
    if Command::new("openssl").arg("version").output().is_err() {
        return missing("openssl is not installed (gen-certs.sh needs it)");
    }
    let py = python(&root);
    let probe = Command::new(&py).args(["-c", "import zenoh, cyclonedds"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        return missing(&format!("{} cannot import zenoh and cyclonedds", py.display()));
    }
    let tmp = tempfile::tempdir().unwrap();
    let (certs, rogue) = (tmp.path().join("certs"), tmp.path().join("rogue"));
    for out in [&certs, &rogue] {
        let status = Command::new("bash").arg(dir.join("gen-certs.sh")).arg(out).stdout(Stdio::null()).status();
        assert!(status.unwrap().success(), "gen-certs.sh {}", out.display());
    }
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut cmd = Command::new(&py);
    cmd.arg(dir.join("test_acl.py")).args([&certs, &rogue, &work]).arg(env!("CARGO_BIN_EXE_ganglion"));
    let start = Instant::now();
    let (ok, stdout, stderr) = run_bounded(cmd, Duration::from_secs(90));
    println!("{stdout}\n(test_acl.py took {:.1} s)", start.elapsed().as_secs_f64());
    let log = std::fs::read_to_string(work.join("ganglion.log")).unwrap_or_default();
    assert!(
        ok && stdout.contains("zenoh-secure deployment ok"),
        "test_acl.py failed:\n{stdout}\n{stderr}\n--- ganglion run log (tail) ---\n{}",
        &log[log.len().saturating_sub(4000)..]
    );
}

#[test]
fn the_sim_zenoh_hint_names_a_shipped_file_and_enabling_it_alone_is_refused() {
    let root = workspace_root();
    let path = root.join("launch/sim-zenoh.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let hint = text.lines().find(|l| l.trim_start().starts_with("# config_file")).expect("the config_file hint");
    let named = hint.split('"').nth(1).expect("a quoted path");
    assert!(root.join("launch").join(named).is_file(), "the hint names {named}, which launch/ does not ship");

    // Uncommenting the hint alone leaves mode/listen set: refused at load.
    let enabled = text.replace(hint, hint.trim_start().trim_start_matches("# "));
    let err = ganglion::profile::Profile::parse(&enabled, &path).unwrap_err().to_string();
    assert!(err.contains("transport.zenoh.mode") && err.contains(named) && err.contains("sim-zenoh.toml"), "{err}");

    // Each session key is named when it is the one set.
    for (key, line) in [
        ("listen", "listen = [\"tcp/127.0.0.1:7447\"]"),
        ("connect", "connect = [\"tcp/127.0.0.1:7447\"]"),
        ("multicast_scouting", "multicast_scouting = false"),
        ("shared_memory", "shared_memory = true"),
    ] {
        let p = sim_profile_with_zenoh(&format!("config_file = \"{named}\"\n{line}"));
        let err = ganglion::profile::Profile::parse(&p, &path).unwrap_err().to_string();
        assert!(err.contains(&format!("`transport.zenoh.{key}`")), "{key}: {err}");
    }
    // The hint done right (the file alone) loads.
    let p = sim_profile_with_zenoh(&format!("prefix = \"so101\"\nconfig_file = \"{named}\""));
    ganglion::profile::Profile::parse(&p, &path).unwrap();
}

#[test]
fn tls_asked_for_but_not_in_effect_refuses_to_arm() {
    let tmp = tempfile::tempdir().unwrap();
    // A config that asks for TLS (certificates, mTLS) on a plain TCP
    // listener: this build has no TLS link, so the session would be plain.
    let z = tmp.path().join("zenoh.json5");
    std::fs::write(
        &z,
        format!(
            r#"{{ mode: "peer", listen: {{ endpoints: ["tcp/127.0.0.1:{}"] }},
                 scouting: {{ multicast: {{ enabled: false }} }},
                 transport: {{ link: {{ tls: {{ root_ca_certificate: "/etc/ganglion/zenoh-secure/ca.pem",
                                               enable_mtls: true }} }} }} }}"#,
            free_port()
        ),
    )
    .unwrap();
    let profile = tmp.path().join("tls.toml");
    let text = sim_profile_with_zenoh("config_file = \"zenoh.json5\"")
        .replace("wait_for_subscriber_ms = 10000", "wait_for_subscriber_ms = 0");
    std::fs::write(&profile, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ganglion"));
    cmd.args(["run", "--policy", "expert", "--seconds", "2", "--config"]).arg(&profile);
    let (ok, out, err) = run_bounded(cmd, Duration::from_secs(30));
    assert!(!ok, "ran without TLS although the config asks for it:\n{out}\n{err}");
    assert!(err.contains("refusing to arm") && err.contains("root_ca_certificate") && err.contains("TLS"), "{err}");

    // `check` says the same and fails with --strict.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ganglion"));
    cmd.args(["check", "--no-probe", "--strict", "--profile"]).arg(&profile);
    let (ok, out, err) = run_bounded(cmd, Duration::from_secs(30));
    assert!(!ok && out.contains("tls: NO, but asked for") && err.contains("zenoh_tls"), "{out}\n{err}");
}

#[test]
fn no_listen_means_no_listener_and_non_loopback_listeners_are_stated() {
    let tmp = tempfile::tempdir().unwrap();
    // A peer that only connects (to nothing, on loopback).
    let profile = tmp.path().join("connect-only.toml");
    let section = format!("mode = \"peer\"\nconnect = [\"tcp/127.0.0.1:{}\"]", free_port());
    std::fs::write(&profile, sim_profile_with_zenoh(&section)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ganglion"));
    cmd.args(["check", "--json", "--profile"]).arg(&profile);
    let (ok, out, err) = run_bounded(cmd, Duration::from_secs(30));
    assert!(ok, "{out}\n{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let z = &json["zenoh"];
    assert_eq!(z["probed"], true, "{z}");
    assert_eq!(z["facts"]["listen"], serde_json::json!([]), "{z}");
    // The session's own view: no locator it could be reached on.
    assert_eq!(z["facts"]["locators"], serde_json::json!([]), "{z}");

    // A listener on every interface is stated (config only: tests stay on loopback).
    let profile = tmp.path().join("listen-all.toml");
    std::fs::write(&profile, sim_profile_with_zenoh("listen = [\"tcp/0.0.0.0:7447\"]")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ganglion"));
    cmd.args(["check", "--no-probe", "--profile"]).arg(&profile);
    let (ok, out, err) = run_bounded(cmd, Duration::from_secs(30));
    assert!(ok && out.contains("NON-LOOPBACK listeners") && out.contains("tcp/0.0.0.0:7447"), "{out}\n{err}");
}
