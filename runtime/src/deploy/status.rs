//! The status a deployed run publishes once a second (`/diagnostics`,
//! `ganglion top`): the loop's own (`recorder::diagnostics`) plus the
//! transport's, so nothing the transport drops goes uncounted.

use ganglion_codec::msg::{DiagnosticArray, DiagnosticStatus, KeyValue};

use crate::control::TelemetryReader;
use crate::recorder::diagnostics::DiagnosticsBuilder;
use crate::recorder::loop_source::tick_row;
use crate::recorder::RecorderStats;
use crate::transport::RunningTransport;

/// The loop's diagnostics (mode, causes, rates, stage latencies, recorder;
/// `recorder::diagnostics`) plus a `ganglion: transport` status: per-topic
/// received / dropped / decode errors and commands published / dropped, so
/// nothing the transport drops goes uncounted.
pub(crate) fn diagnostics(
    builder: &mut DiagnosticsBuilder,
    transport: &RunningTransport,
    recorder: Option<&RecorderStats>,
) -> DiagnosticArray {
    let mut array = builder.build(recorder);
    let mut values = vec![
        KeyValue { key: "commands_published".into(), value: transport.commands_published().to_string() },
        KeyValue { key: "commands_dropped".into(), value: transport.commands_dropped().to_string() },
    ];
    let mut lost = transport.commands_dropped();
    for (name, s) in transport.topics() {
        values.push(KeyValue { key: format!("{name}.received"), value: s.received.to_string() });
        values.push(KeyValue { key: format!("{name}.dropped"), value: s.dropped.to_string() });
        values.push(KeyValue { key: format!("{name}.decode_errors"), value: s.decode_errors.to_string() });
        lost += s.dropped + s.decode_errors;
    }
    // Peers that can never match are not drops, and must not read as "no drops".
    let mismatches = transport.qos_mismatches();
    values.push(KeyValue { key: "qos_incompatible".into(), value: mismatches.len().to_string() });
    for m in &mismatches {
        values.push(KeyValue {
            key: format!("qos_incompatible.{}", m.topic),
            value: format!(
                "{} {{{}}} vs peer {} {{{}}}: {}",
                m.ganglion_side, m.ganglion_qos, m.peer, m.peer_qos, m.policy
            ),
        });
    }
    let mut message = if lost == 0 { "no drops".to_string() } else { format!("{lost} messages dropped or malformed") };
    if !mismatches.is_empty() {
        message.push_str(&format!("; {} peer(s) with incompatible QoS never match", mismatches.len()));
    }
    // ROS 2: commands published with nobody subscribed are not "no drops" either.
    let unheard = transport.command_subscribers() == Some(0);
    if let Some(n) = transport.command_subscribers() {
        values.push(KeyValue { key: "command_subscribers".into(), value: n.to_string() });
    }
    if unheard {
        message.push_str("; no command subscriber");
    }
    array.status.push(DiagnosticStatus {
        level: if lost == 0 && mismatches.is_empty() && !unheard {
            DiagnosticStatus::OK
        } else {
            DiagnosticStatus::WARN
        },
        name: "ganglion: transport".into(),
        message,
        hardware_id: array.status.first().map(|s| s.hardware_id.clone()).unwrap_or_default(),
        values,
    });
    array
}

/// Drains the tick records into the diagnostics builder (off the RT path).
pub(crate) fn observe_ticks(telemetry: &TelemetryReader, builder: &mut DiagnosticsBuilder) {
    telemetry.drain(|rec| builder.observe(&tick_row(rec)));
}
