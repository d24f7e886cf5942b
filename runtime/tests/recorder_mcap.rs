//! A fault during a closed-loop run on the simulated clock (the real
//! control loop, its recorder attached as `ganglion run` attaches it)
//! leaves an MCAP file holding the configured window; the Python `mcap`
//! reader (with `mcap-ros2-support`) opens it, decodes every message, and
//! finds every declared channel with the message count the loop consumed.

mod recorder_common;

use ganglion::recorder::read::{InputSample, Recording};
use ganglion::recorder::RecordingConfig;
use ganglion_core::Cause;
use recorder_common::*;

fn config(dir: &std::path::Path) -> RecordingConfig {
    RecordingConfig { dir: Some(dir.into()), pre_trigger_s: 0.5, post_trigger_s: 0.3, ..RecordingConfig::default() }
}

#[test]
fn fault_leaves_a_window_every_reader_decodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let mut lp = SimLoop::new(Some(150));
    let mut rec = lp.recorder(&cfg);
    for k in 0..260 {
        lp.step();
        if k % 7 == 0 {
            rec.poll();
        }
    }
    let report = rec.finish();
    assert_eq!(report.write_errors, 0);
    assert_eq!(report.trigger_files.len(), 1, "one trigger, one file: {report:?}");
    let (files, part) = files(dir.path());
    assert_eq!(files, report.trigger_files);
    assert!(!part, "no partial file left");
    // The stalled worker's plan runs out a few ticks after the stall.
    let trigger = lp.ledger.first_trigger().expect("the stall triggered");
    assert!((151..200).contains(&trigger), "trigger at tick {trigger}");
    let name = files[0].file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let suffix = format!("-inference_late-tick{trigger}.mcap");
    assert!(name.starts_with("ganglion-") && name.ends_with(&suffix), "{name}");

    // The Rust reader: the window is [trigger - 0.5 s, at least trigger + 0.3 s], contiguous.
    let r = Recording::open(&files[0]).expect("reads");
    assert_eq!(r.malformed, 0);
    let trigger_t = lp.ledger.ticks[trigger as usize];
    let first = r.ticks.first().expect("ticks");
    let last = r.ticks.last().expect("ticks");
    assert_eq!(first.scheduled.0, trigger_t - 500_000_000, "window starts pre_trigger_s before the trigger");
    assert!(last.scheduled.0 >= trigger_t + 300_000_000, "window reaches post_trigger_s after the trigger");
    assert!(r.ticks.windows(2).all(|w| w[1].seq == w[0].seq + 1), "no tick missing");
    for t in &r.ticks {
        assert_eq!(t, &lp.ledger.rows[t.seq as usize], "tick {} recorded bit-exactly", t.seq);
    }
    assert_eq!(r.ticks[50].new_causes(Some(&r.ticks[49])).iter().collect::<Vec<_>>(), [Cause::InferenceLate]);
    assert_eq!(r.info.get("trigger_tick"), Some(&trigger.to_string()));
    assert!(r.inputs.iter().any(|i| matches!(&i.sample, InputSample::Frame(0, f) if f.value.width == 64)));

    // The Python reader: every declared channel, with the counts the loop pushed in the window.
    let (from, to) = (first.scheduled.0, last.scheduled.0);
    let py = python_read(&files[0]);
    let channels = py["channels"].as_object().expect("channels");
    let declared = [
        ("/ganglion/tick", "ganglion_msgs/msg/TickRecord"),
        ("/command", "sensor_msgs/msg/JointState"),
        ("/joint_states", "sensor_msgs/msg/JointState"),
        ("/camera/front/image_raw", "sensor_msgs/msg/Image"),
        ("/instruction", "std_msgs/msg/String"),
        ("/heartbeat_in", "ganglion_msgs/msg/ExternalHeartbeat"),
        ("/ganglion/inference", "ganglion_msgs/msg/InferenceResult"),
    ];
    assert_eq!(channels.len(), declared.len(), "{channels:?}");
    for (topic, schema) in declared {
        let ch = &channels[topic];
        assert_eq!(ch["schema"], schema, "{topic}");
        let expected = lp.ledger.count(topic, from, to);
        assert_eq!(ch["count"].as_u64(), Some(expected), "{topic}: python count vs pushed");
        assert_eq!(r.count(topic), expected, "{topic}: summary statistics vs pushed");
    }
    // No instruction changed inside this window: the channel is declared, empty.
    assert_eq!(channels["/instruction"]["count"], 0);
    assert_eq!(py["first_tick"]["seq"], trigger - 50);
    assert_eq!(py["first_tick"]["stage_ns"].as_array().map(Vec::len), Some(8));
    assert_eq!(py["first_joints"]["name"], serde_json::json!(["base_yaw", "shoulder_pitch", "elbow_pitch"]));
    assert_eq!(py["first_image"]["encoding"], "rgb8");
    assert_eq!(py["first_image"]["bytes"], 64 * 64 * 3);
    assert_eq!(py["metadata"]["ganglion"]["trigger_causes"], "inference_late");
}

#[test]
fn nominal_run_writes_no_trigger_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let mut lp = SimLoop::new(None);
    let mut rec = lp.recorder(&cfg);
    for _ in 0..120 {
        lp.step();
        rec.poll();
    }
    let report = rec.finish();
    assert!(report.trigger_files.is_empty() && files(dir.path()).0.is_empty());
}

#[test]
fn instruction_changes_are_recorded_with_their_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A long window holding the whole run, a fault after the instruction change.
    let cfg = RecordingConfig { pre_trigger_s: 10.0, post_trigger_s: 0.1, ..config(dir.path()) };
    let mut lp = SimLoop::new(Some(230));
    let mut rec = lp.recorder(&cfg);
    for _ in 0..260 {
        lp.step();
        rec.poll();
    }
    let report = rec.finish();
    let r = Recording::open(&report.trigger_files[0]).expect("reads");
    assert_eq!(r.ticks.first().map(|t| t.seq), Some(0), "the window reaches back to the first tick");
    let texts: Vec<(u64, String)> = r
        .inputs
        .iter()
        .filter_map(|i| match &i.sample {
            InputSample::Instruction(s) => Some((s.value.seq, s.value.text.to_string())),
            _ => None,
        })
        .collect();
    let sent: Vec<(u64, String)> = (1..).zip(INSTRUCTIONS.iter().map(|i| i.1.to_string())).collect();
    assert_eq!(texts, sent);
}
