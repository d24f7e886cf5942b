//! `ganglion top`: live view of a running instance, from the diagnostics
//! it publishes on `<prefix>/diagnostics` over zenoh.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use ganglion_codec::msg::{DiagnosticArray, Message};
use ganglion_codec::DecodeLimits;
use ganglion_zenoh::zenoh;

use ganglion::recorder::diagnostics::{to_json, STATUS_CAUSES, STATUS_LATENCY, STATUS_LOOP, STATUS_RECORDER};

/// Arguments of `ganglion top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Key-expression prefix of the instance (its `<prefix>/diagnostics`).
    #[arg(long, default_value = "ganglion")]
    pub prefix: String,
    /// zenoh endpoint to connect to (e.g. `tcp/127.0.0.1:7447`); repeatable.
    /// Without one, zenoh scouting finds peers.
    #[arg(long)]
    pub connect: Vec<String>,
    /// Print the first diagnostics received and exit (no terminal UI).
    #[arg(long)]
    pub once: bool,
    /// With `--once`: print JSON (status name → level, message, values).
    #[arg(long)]
    pub json: bool,
    /// Give up when nothing arrives for this long, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout_s: f64,
}

fn open_session(args: &TopArgs) -> anyhow::Result<zenoh::Session> {
    use zenoh::Wait;
    let mut config = zenoh::Config::default();
    let set = |config: &mut zenoh::Config, key: &str, value: &str| {
        config.insert_json5(key, value).map_err(|e| anyhow::anyhow!("zenoh config {key}: {e}"))
    };
    set(&mut config, "mode", "\"peer\"")?;
    if !args.connect.is_empty() {
        let endpoints = serde_json::to_string(&args.connect)?;
        set(&mut config, "connect/endpoints", &endpoints)?;
        set(&mut config, "scouting/multicast/enabled", "false")?;
        set(&mut config, "listen/endpoints", "[]")?;
    }
    zenoh::open(config).wait().map_err(|e| anyhow::anyhow!("opening zenoh session: {e}"))
}

/// Runs `ganglion top`.
pub fn run(args: TopArgs) -> anyhow::Result<ExitCode> {
    let session = open_session(&args)?;
    let key = format!("{}/diagnostics", args.prefix.trim_end_matches('/'));
    let sub = {
        use zenoh::Wait;
        session.declare_subscriber(&key).wait().map_err(|e| anyhow::anyhow!("subscribing to {key}: {e}"))?
    };
    let timeout = Duration::from_secs_f64(args.timeout_s.max(0.1));
    let limits = DecodeLimits::default();
    // The newest diagnostics within `wait`; malformed payloads are counted and skipped.
    let next = |wait: Duration| -> Option<DiagnosticArray> {
        let deadline = Instant::now() + wait;
        let mut newest = None;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(Some(sample)) = sub.recv_timeout(left) else { break };
            match DiagnosticArray::decode(&sample.payload().to_bytes(), &limits) {
                Ok(a) => {
                    newest = Some(a);
                    // Drain what is already queued, then show the newest.
                    if sub.is_empty() {
                        break;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "malformed diagnostics payload dropped"),
            }
        }
        newest
    };
    if args.once {
        let array = next(timeout).with_context(|| format!("no diagnostics on {key} within {} s", args.timeout_s))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&to_json(&array))?);
        } else {
            print!("{}", render_text(&array));
        }
        return Ok(ExitCode::SUCCESS);
    }
    tui::run(&key, || Ok(next(Duration::from_millis(200))))
}

/// The plain-text view (`--once` without `--json`).
pub fn render_text(array: &DiagnosticArray) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for status in &array.status {
        let _ = writeln!(s, "[{}] {} — {}", level_name(status.level), status.name, status.message);
        for kv in &status.values {
            let _ = writeln!(s, "    {:<28} {}", kv.key, kv.value);
        }
    }
    s
}

fn level_name(level: u8) -> &'static str {
    match level {
        0 => "OK",
        1 => "WARN",
        2 => "ERROR",
        _ => "STALE",
    }
}

fn value<'a>(array: &'a DiagnosticArray, status: &str, key: &str) -> &'a str {
    array
        .status
        .iter()
        .find(|s| s.name == status)
        .and_then(|s| s.values.iter().find(|kv| kv.key == key))
        .map_or("-", |kv| kv.value.as_str())
}

mod tui {
    use super::*;
    use ratatui::crossterm::event::{self, Event, KeyCode};
    use ratatui::layout::{Constraint, Layout};
    use ratatui::style::{Color, Style};
    use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};

    pub fn run(
        key: &str,
        mut next: impl FnMut() -> anyhow::Result<Option<DiagnosticArray>>,
    ) -> anyhow::Result<ExitCode> {
        let mut terminal = ratatui::init();
        let mut last: Option<DiagnosticArray> = None;
        let result = loop {
            let view = last.clone();
            let drawn = terminal.draw(|f| {
                let area = f.area();
                let Some(a) = &view else {
                    f.render_widget(Paragraph::new(format!("waiting for {key} ... (q quits)")), area);
                    return;
                };
                let [head, body, foot] =
                    Layout::vertical([Constraint::Length(4), Constraint::Min(8), Constraint::Length(6)]).areas(area);
                let mode = value(a, STATUS_LOOP, "mode");
                let color = match mode {
                    "nominal" => Color::Green,
                    "fallback" | "safe_stop" => Color::Red,
                    _ => Color::Yellow,
                };
                let header = format!(
                    "mode {mode}   rate {} Hz   ticks {}   jitter p99 {} µs   active: {}\ntimeline: {}",
                    value(a, STATUS_LOOP, "rate_hz"),
                    value(a, STATUS_LOOP, "ticks"),
                    value(a, STATUS_LOOP, "jitter_us_p99"),
                    value(a, STATUS_LOOP, "active_causes"),
                    value(a, STATUS_LOOP, "mode_timeline"),
                );
                f.render_widget(
                    Paragraph::new(header)
                        .style(Style::default().fg(color))
                        .block(Block::default().borders(Borders::ALL).title(format!("ganglion top — {key} (q quits)"))),
                    head,
                );
                let rows = ganglion::recorder::STAGES.iter().chain(["inference"].iter()).map(|stage| {
                    Row::new([
                        stage.to_string(),
                        value(a, STATUS_LATENCY, &format!("{stage}_us_p50")).to_string(),
                        value(a, STATUS_LATENCY, &format!("{stage}_us_p99")).to_string(),
                        value(a, STATUS_LATENCY, &format!("{stage}_us_max")).to_string(),
                    ])
                });
                let widths =
                    [Constraint::Length(12), Constraint::Length(12), Constraint::Length(12), Constraint::Length(12)];
                f.render_widget(
                    Table::new(rows, widths)
                        .header(Row::new(["stage", "p50 µs", "p99 µs", "max µs"]))
                        .block(Block::default().borders(Borders::ALL).title("stage latencies")),
                    body,
                );
                let foot_text = format!(
                    "recent triggers: {}\nrecorder: files {} write_errors {} disk_full {}  dropped by the loop {}",
                    value(a, STATUS_CAUSES, "recent_triggers"),
                    value(a, STATUS_RECORDER, "files"),
                    value(a, STATUS_RECORDER, "write_errors"),
                    value(a, STATUS_RECORDER, "disk_full"),
                    value(a, STATUS_RECORDER, "dropped_by_loop"),
                );
                f.render_widget(
                    Paragraph::new(foot_text).block(Block::default().borders(Borders::ALL).title("triggers")),
                    foot,
                );
            });
            if let Err(e) = drawn {
                break Err(anyhow::Error::from(e).context("drawing the terminal"));
            }
            if event::poll(Duration::from_millis(50)).unwrap_or(false) {
                if let Ok(Event::Key(k)) = event::read() {
                    if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                        break Ok(ExitCode::SUCCESS);
                    }
                }
            }
            match next() {
                Ok(Some(a)) => last = Some(a),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        };
        ratatui::restore();
        result
    }
}
