//! `ganglion check` on this machine: the report is truthful (compared with
//! what the kernel says independently), `--json` parses, and `--strict`
//! fails exactly when a required item does not pass.

mod prereq;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn ganglion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ganglion")).args(args).output().expect("running ganglion")
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = ganglion(args);
    assert!(out.status.success(), "ganglion {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("check --json prints JSON")
}

fn item<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["items"].as_array().unwrap().iter().find(|i| i["item"] == name).unwrap_or_else(|| panic!("no item {name}"))
}

/// What the kernel says about PREEMPT_RT, read here independently of the runtime.
fn kernel_is_rt() -> bool {
    let flag = std::fs::read_to_string("/sys/kernel/realtime").map(|s| s.trim() == "1").unwrap_or(false);
    let uname = Command::new("uname").arg("-v").output().expect("uname");
    flag || String::from_utf8_lossy(&uname.stdout).contains("PREEMPT_RT")
}

fn profile(dir: &Path, realtime: &str) -> String {
    let path = dir.join("robot.toml");
    std::fs::write(&path, format!("[realtime]\n{realtime}\n")).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn json_report_is_truthful_about_this_kernel() {
    let report = json(&["check", "--json"]);
    let items = report["items"].as_array().unwrap();
    assert_eq!(items.len(), 10, "one entry per check item");
    for i in items {
        let status = i["status"].as_str().unwrap();
        assert!(["pass", "fail", "not_applicable"].contains(&status), "{i}");
        assert!(!i["reason"].as_str().unwrap().is_empty(), "every item has a reason: {i}");
    }
    let rt = item(&report, "preempt_rt");
    let expected = if kernel_is_rt() { "pass" } else { "fail" };
    assert_eq!(rt["status"], expected, "{rt}");
    let uname = Command::new("uname").arg("-v").output().unwrap();
    assert_eq!(report["kernel"].as_str().unwrap(), String::from_utf8_lossy(&uname.stdout).trim());

    // Not a Jetson here unless the L4T release file exists: then N/A, not pass.
    if !Path::new("/etc/nv_tegra_release").exists() {
        assert_eq!(item(&report, "jetson_power_mode")["status"], "not_applicable");
        assert_eq!(item(&report, "jetson_clocks")["status"], "not_applicable");
    }
    let cs =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource").unwrap_or_default();
    if !cs.trim().is_empty() {
        assert!(item(&report, "clock_source")["reason"].as_str().unwrap().contains(cs.trim()));
    }
}

#[test]
fn table_names_every_item_and_says_not_rt() {
    let out = ganglion(&["check"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in
        ["sched_fifo", "mlockall", "isolated_cores", "cpu_governor", "preempt_rt", "jetson_clocks", "clock_source"]
    {
        assert!(text.contains(name), "table lacks {name}:\n{text}");
    }
    let line = text.lines().find(|l| l.starts_with("preempt_rt")).unwrap();
    if kernel_is_rt() {
        assert!(line.contains("PASS"), "{line}");
    } else {
        assert!(line.contains("FAIL") && line.contains("not a PREEMPT_RT kernel"), "{line}");
    }
}

#[test]
fn strict_fails_when_a_required_item_fails() {
    let dir = tempfile::tempdir().unwrap();
    // Required: the PREEMPT_RT kernel, which this machine may or may not have.
    let p = profile(dir.path(), "required = [\"preempt_rt\"]");
    let out = ganglion(&["check", "--profile", &p, "--strict"]);
    if kernel_is_rt() {
        assert!(out.status.success());
    } else {
        assert_eq!(out.status.code(), Some(1), "--strict must fail on a non-RT kernel");
        assert!(String::from_utf8_lossy(&out.stderr).contains("preempt_rt"));
        // Without --strict the same report exits 0.
        assert!(ganglion(&["check", "--profile", &p]).status.success());
    }
    // Jetson items are not applicable off a Jetson, which does not satisfy a requirement.
    if !Path::new("/etc/nv_tegra_release").exists() {
        let p = profile(dir.path(), "required = [\"jetson_clocks\"]");
        let report = json(&["check", "--profile", &p, "--json"]);
        assert_eq!(item(&report, "jetson_clocks")["required"], true);
        assert_eq!(ganglion(&["check", "--profile", &p, "--strict"]).status.code(), Some(1));
    }
    // Nothing required: --strict passes whatever the machine.
    let p = profile(dir.path(), "required = []");
    assert!(ganglion(&["check", "--profile", &p, "--strict", "--json"]).status.success());
}

#[test]
fn bad_realtime_section_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = profile(dir.path(), "control_priority = 70\ninference_priority = 70");
    let out = ganglion(&["check", "--profile", &p]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("robot.toml") && err.contains("realtime.control_priority"), "{err}");

    let p = profile(dir.path(), "control_prio = 70");
    let err = String::from_utf8_lossy(&ganglion(&["check", "--profile", &p]).stderr).into_owned();
    assert!(err.contains("robot.toml") && err.contains("control_prio"), "{err}");

    let missing = dir.path().join("absent.toml");
    let err =
        String::from_utf8_lossy(&ganglion(&["check", "--profile", missing.to_str().unwrap()]).stderr).into_owned();
    assert!(err.contains("absent.toml"), "{err}");
}

#[test]
fn unprivileged_user_is_told_what_it_lacks() {
    const TEST: &str = "unprivileged_user_is_told_what_it_lacks";
    // Only root can drop to an unprivileged user for the check (CI runs as
    // root); elsewhere the test itself already runs unprivileged and the
    // others cover it.
    if !Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n")) {
        return prereq::missing(TEST, "not root, cannot drop privileges");
    }
    // A copy nobody can reach and run (the build tree may sit under a
    // directory only root can enter, e.g. /root).
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod tempdir");
    let exe = dir.path().join("ganglion");
    std::fs::copy(env!("CARGO_BIN_EXE_ganglion"), &exe).expect("copying the binary");
    let out = match Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(&exe)
        .args(["check", "--json", "--strict"])
        .current_dir(dir.path())
        .output()
    {
        Ok(out) => out,
        // util-linux's setpriv is on every Debian system, CI's included.
        Err(e) => return prereq::missing(TEST, &format!("setpriv not runnable ({e})")),
    };
    assert!(!out.stdout.is_empty(), "check as nobody printed nothing: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let fifo = item(&report, "sched_fifo");
    assert_eq!(fifo["status"], "fail", "{fifo}");
    assert!(fifo["reason"].as_str().unwrap().contains("permission denied"), "{fifo}");
    assert!(fifo["reason"].as_str().unwrap().contains("CAP_SYS_NICE no"), "{fifo}");
    // Both are required by default, so --strict refuses.
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sched_fifo"));
}

/// The `/dev/video*` nodes, listed here independently of the runtime.
fn video_nodes() -> Vec<String> {
    let mut nodes: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    n.strip_prefix("video").is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
                })
                .map(|n| format!("/dev/{n}"))
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    nodes
}

/// The cameras found: every /dev/video* node in the JSON (with formats,
/// sizes and rates, or an error) and in the table; with none, both say so.
#[test]
fn check_lists_the_cameras_found() {
    let report = json(&["check", "--json"]);
    let cameras = report["cameras"].as_array().expect("cameras array");
    let mut listed: Vec<String> = cameras.iter().map(|c| c["path"].as_str().expect("path").to_string()).collect();
    listed.sort();
    assert_eq!(listed, video_nodes());
    for c in cameras {
        if c.get("error").is_none() {
            assert!(c["device"]["driver"].is_string(), "{c}");
            for f in c["formats"].as_array().expect("formats") {
                assert_eq!(f["fourcc"].as_str().map(str::len), Some(4), "{f}");
                assert!(f["sizes"].is_object(), "{f}");
            }
        }
    }
    let text = String::from_utf8_lossy(&ganglion(&["check"]).stdout).into_owned();
    if video_nodes().is_empty() {
        assert!(text.contains("cameras: none found (no /dev/video* node)"), "{text}");
    } else {
        for n in video_nodes() {
            assert!(text.contains(&format!("  {n}: ")), "{n} not in:\n{text}");
        }
    }
}
