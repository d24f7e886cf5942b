//! One fault grammar for every command that injects faults: `ganglion
//! demo --fault`, `eval --fault`, `sim serve --fault`, `run --inject` and
//! the HIL rig's scenarios (`hil-tests/scenarios/*.toml`).
//!
//! A fault is written `KIND@SECONDS[:ARG]`: the kind's name, when it starts
//! (seconds; what the clock counts from is the command's: the episode's
//! start for `eval`, the demo's start, the first command for `sim serve`,
//! the first inference for `run --inject`), and one optional number whose
//! meaning the kind fixes ([`Arg`]): how long it lasts (to the end when
//! left out), an extra inference delay, or a number of requests.
//!
//! Each kind acts on one or more [`Layer`]s: the simulated arm's sensors
//! (`Arm`), what the plant puts on the wire (`Wire`), or the inference side
//! (`Policy`). A command honours the layers it can act on and refuses the
//! others by name ([`Consumer`]); a kind with both an arm and a wire form
//! (e.g. `black-frame`) runs where the command can put it.
//!
//! [`KINDS`] is the registry: one row per kind, the only place names live.
//! [`policy`] holds the inference-side wrappers of `run --inject`.

pub mod policy;

pub use policy::{
    wrap_policy, write_events, EventQueue, EventSink, FaultyPolicy, InferEvent, InjectKind, Injection, ModeEvent,
    RigEvents,
};

use std::time::Duration;

use ganglion_core::Stamp;

/// Where a fault acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The simulated arm's sensors (`ganglion_sim::Faults`): what it
    /// writes into input slots.
    Arm,
    /// What the plant process publishes (`sim serve`): payloads, stamps,
    /// rates, the link itself.
    Wire,
    /// The inference side: late, failing, crashing or wrong policies.
    Policy,
}

impl Layer {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Arm => "arm",
            Layer::Wire => "wire",
            Layer::Policy => "policy",
        }
    }
}

/// What the number after `:` means for a kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg {
    /// How long the fault lasts, seconds (> 0); to the end when left out.
    Duration,
    /// Extra time per affected inference, seconds (> 0); the default when
    /// left out.
    Delay {
        /// Seconds when left out.
        default_s: f64,
    },
    /// How many inference requests are affected (integer >= 1).
    Count {
        /// Requests when left out.
        default: u64,
    },
    /// No argument.
    None,
}

impl Arg {
    /// The grammar's third field for this kind, for messages and help.
    pub fn syntax(self) -> &'static str {
        match self {
            Arg::Duration => "[:DURATION_S]",
            Arg::Delay { .. } => "[:DELAY_S]",
            Arg::Count { .. } => "[:N]",
            Arg::None => "",
        }
    }
}

/// Every fault kind. Names and layers are in [`KINDS`].
#[allow(missing_docs)] // each variant is described by its registry row
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    CameraDropout,
    FrozenFrame,
    FrozenFrameSeq,
    BlackFrame,
    CameraDelay,
    JointDropout,
    NanJoint,
    InfJoint,
    JointDelay,
    JointNoise,
    JointOffset,
    StampForward,
    StampBackward,
    Flood,
    Malformed,
    Partition,
    Late,
    LateBurst,
    LatePersistent,
    Error,
    Crash,
    NanAction,
    OutOfRangeAction,
}

/// One row of the registry.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    /// The kind.
    pub kind: Kind,
    /// Its one name on every command line and in every scenario.
    pub name: &'static str,
    /// Where it can act.
    pub layers: &'static [Layer],
    /// What `:ARG` means.
    pub arg: Arg,
    /// One line on what happens.
    pub what: &'static str,
}

const ARM_WIRE: &[Layer] = &[Layer::Arm, Layer::Wire];
const ARM: &[Layer] = &[Layer::Arm];
const WIRE: &[Layer] = &[Layer::Wire];
const POLICY: &[Layer] = &[Layer::Policy];

/// Extra delay of the `late*` kinds when none is given: far beyond a
/// 10 Hz chunk's horizon.
pub const DEFAULT_LATE_S: f64 = 1.5;

/// The registry: every kind, its name, layers and argument.
pub const KINDS: &[KindInfo] = &[
    row(Kind::CameraDropout, "camera-dropout", ARM_WIRE, Arg::Duration, "no camera frames"),
    row(Kind::FrozenFrame, "frozen-frame", ARM_WIRE, Arg::Duration, "the last frame's pixels again, new stamps"),
    row(
        Kind::FrozenFrameSeq,
        "frozen-frame-seq",
        ARM,
        Arg::Duration,
        "the last frame again with its sequence number (a driver re-sending one message)",
    ),
    row(Kind::BlackFrame, "black-frame", ARM_WIRE, Arg::Duration, "all-zero pixels, new stamps"),
    row(Kind::CameraDelay, "camera-delay", ARM, Arg::Duration, "frame capture stamps lag by 100 ms"),
    row(Kind::JointDropout, "joint-dropout", ARM_WIRE, Arg::Duration, "no joint states"),
    row(Kind::NanJoint, "nan-joint", ARM_WIRE, Arg::Duration, "the first joint's position is NaN"),
    row(Kind::InfJoint, "inf-joint", WIRE, Arg::Duration, "the first joint's velocity is +Inf"),
    row(Kind::JointDelay, "joint-delay", ARM, Arg::Duration, "joint-state capture stamps lag by 100 ms"),
    row(Kind::JointNoise, "joint-noise", ARM, Arg::Duration, "seeded 0.05 rad noise on every joint position"),
    row(Kind::JointOffset, "joint-offset", ARM, Arg::Duration, "the first joint's position is off by 3 rad"),
    row(Kind::StampForward, "stamp-forward", WIRE, Arg::Duration, "header stamps 1 s in the future"),
    row(Kind::StampBackward, "stamp-backward", WIRE, Arg::Duration, "header stamps 0.5 s in the past"),
    row(Kind::Flood, "flood", WIRE, Arg::Duration, "every joint state and frame published 100 times"),
    row(Kind::Malformed, "malformed", WIRE, Arg::Duration, "a truncated copy and random bytes after every input"),
    row(Kind::Partition, "partition", WIRE, Arg::Duration, "nothing published, every command ignored"),
    row(Kind::Late, "late", POLICY, Arg::Delay { default_s: DEFAULT_LATE_S }, "one inference takes DELAY longer"),
    row(
        Kind::LateBurst,
        "late-burst",
        POLICY,
        Arg::Count { default: 3 },
        "N inferences in a row each take 1.5 s longer",
    ),
    row(
        Kind::LatePersistent,
        "late-persistent",
        POLICY,
        Arg::Delay { default_s: DEFAULT_LATE_S },
        "every inference from then on takes DELAY longer",
    ),
    row(Kind::Error, "error", POLICY, Arg::Count { default: 1 }, "N inferences return an error"),
    row(Kind::Crash, "crash", POLICY, Arg::None, "the inference worker panics"),
    row(Kind::NanAction, "nan-action", POLICY, Arg::Count { default: 1 }, "N chunks of NaN actions"),
    row(
        Kind::OutOfRangeAction,
        "out-of-range-action",
        POLICY,
        Arg::Count { default: 1 },
        "N chunks 10 rad beyond every limit",
    ),
];

const fn row(kind: Kind, name: &'static str, layers: &'static [Layer], arg: Arg, what: &'static str) -> KindInfo {
    KindInfo { kind, name, layers, arg, what }
}

impl Kind {
    /// Its registry row.
    pub fn info(self) -> &'static KindInfo {
        // Every variant has a row (tested); the first row is a harmless
        // fallback that cannot be reached.
        KINDS.iter().find(|k| k.kind == self).unwrap_or(&KINDS[0])
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Whether it can act on `layer`.
    pub fn acts_on(self, layer: Layer) -> bool {
        self.info().layers.contains(&layer)
    }

    /// The simulated arm's form, with its fixed parameters; `None` for
    /// kinds without one.
    pub fn arm(self) -> Option<ganglion_sim::FaultKind> {
        use ganglion_sim::FaultKind as F;
        Some(match self {
            Kind::CameraDropout => F::DropCamera,
            Kind::FrozenFrame => F::FreezeCamera,
            Kind::FrozenFrameSeq => F::FreezeCameraSameSeq,
            Kind::BlackFrame => F::BlackFrame,
            Kind::CameraDelay => F::DelayCamera { lag_ns: 100_000_000 },
            Kind::JointDropout => F::DropJoints,
            Kind::NanJoint => F::NanJoint,
            Kind::JointDelay => F::DelayJoints { lag_ns: 100_000_000 },
            Kind::JointNoise => F::JointNoise { std_rad: 0.05 },
            Kind::JointOffset => F::JointOffset { rad: 3.0 },
            _ => return None,
        })
    }
}

/// A fault spec that does not parse, or that the command cannot honour.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// Not `KIND@SECONDS[:ARG]`, or a number out of range.
    #[error("fault {spec:?}: expected {expected}")]
    Syntax {
        /// The spec as given.
        spec: String,
        /// What was expected instead.
        expected: String,
    },
    /// No such kind.
    #[error("fault {spec:?}: unknown kind {kind:?}; known kinds: {known}")]
    UnknownKind {
        /// The spec as given.
        spec: String,
        /// The kind as given.
        kind: String,
        /// Every name in the registry.
        known: String,
    },
    /// A kind the command cannot act on.
    #[error("fault {spec:?}: {kind} acts on the {layers}; {command} honours {honours}")]
    NotHonoured {
        /// The spec as given.
        spec: String,
        /// The kind's name.
        kind: &'static str,
        /// The kind's layers, e.g. `wire`.
        layers: String,
        /// The command, e.g. `eval --fault`.
        command: &'static str,
        /// What the command honours.
        honours: &'static str,
    },
}

/// One scheduled fault: `KIND@SECONDS[:ARG]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultAt {
    /// What.
    pub kind: Kind,
    /// Seconds after the command's origin (see the module docs).
    pub at_s: f64,
    /// The argument as given (its meaning is `kind.info().arg`); `None`:
    /// the default (to the end, the default delay or count).
    pub arg: Option<f64>,
}

impl FaultAt {
    /// Parses `KIND@SECONDS[:ARG]` against the registry.
    pub fn parse(spec: &str) -> Result<FaultAt, FaultError> {
        let syntax = |expected: String| FaultError::Syntax { spec: spec.to_string(), expected };
        let (name, when) = spec
            .split_once('@')
            .ok_or_else(|| syntax("KIND@SECONDS[:ARG], e.g. black-frame@3 or black-frame@3:0.5".into()))?;
        let kind = if let Some(k) = KINDS.iter().find(|k| k.name == name) {
            k.kind
        } else {
            let known: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
            return Err(FaultError::UnknownKind {
                spec: spec.to_string(),
                kind: name.to_string(),
                known: known.join(", "),
            });
        };
        let info = kind.info();
        let (at, arg) = match when.split_once(':') {
            Some((at, a)) => (at, Some(a)),
            None => (when, None),
        };
        let at_s = at
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| syntax(format!("SECONDS >= 0 after '@', got {at:?}")))?;
        let arg = match (info.arg, arg) {
            (_, None) => None,
            (Arg::None, Some(a)) => return Err(syntax(format!("{name}@SECONDS with no ':' argument, got {a:?}"))),
            (Arg::Count { .. }, Some(a)) => Some(
                a.parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| syntax(format!("{name}@SECONDS[:N] with N a whole number >= 1, got {a:?}")))?
                    as f64,
            ),
            (Arg::Duration | Arg::Delay { .. }, Some(a)) => {
                Some(a.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0).ok_or_else(|| {
                    syntax(format!("{name}@SECONDS{} with a number of seconds > 0, got {a:?}", info.arg.syntax()))
                })?)
            }
        };
        Ok(FaultAt { kind, at_s, arg })
    }

    /// Parses `spec` and refuses kinds `consumer` cannot honour.
    pub fn parse_for(spec: &str, consumer: Consumer) -> Result<FaultAt, FaultError> {
        let f = FaultAt::parse(spec)?;
        if consumer.honours(f.kind) {
            return Ok(f);
        }
        let layers: Vec<&str> = f.kind.info().layers.iter().map(|l| l.name()).collect();
        Err(FaultError::NotHonoured {
            spec: spec.to_string(),
            kind: f.kind.name(),
            layers: layers.join("/"),
            command: consumer.command(),
            honours: consumer.describe(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Start, ns after the origin.
    pub fn start_ns(&self) -> u64 {
        secs_to_ns(self.at_s)
    }

    /// End (exclusive), ns after the origin: start + duration for
    /// [`Arg::Duration`] kinds, `u64::MAX` (never) otherwise.
    pub fn end_ns(&self) -> u64 {
        match (self.kind.info().arg, self.arg) {
            (Arg::Duration, Some(d)) => self.start_ns().saturating_add(secs_to_ns(d)),
            _ => u64::MAX,
        }
    }

    /// Whether the window covers `since_ns` (ns after the origin).
    pub fn covers(&self, since_ns: u64) -> bool {
        since_ns >= self.start_ns() && since_ns < self.end_ns()
    }

    /// Adds the arm form to `faults`, starting `at_s` after `start`, for
    /// the duration if one was given; `false` (nothing scheduled) for kinds
    /// without an arm form.
    pub fn schedule(&self, faults: &mut ganglion_sim::Faults, start: Stamp) -> bool {
        let Some(kind) = self.kind.arm() else { return false };
        let at = start.add_nanos(self.start_ns());
        match self.end_ns() {
            u64::MAX => faults.add_from(kind, at),
            end => faults.add(kind, at, start.add_nanos(end)),
        }
        true
    }

    /// The policy-side form (`None` for arm and wire kinds).
    pub fn injection(&self) -> Option<Injection> {
        let info = self.kind.info();
        let delay = || match info.arg {
            Arg::Delay { default_s } => Duration::from_secs_f64(self.arg.unwrap_or(default_s)),
            _ => Duration::from_secs_f64(DEFAULT_LATE_S),
        };
        let count = || match info.arg {
            Arg::Count { default } => self.arg.map_or(default, |n| n as u64),
            _ => 1,
        };
        let kind = match self.kind {
            Kind::Late => InjectKind::Late { delay: delay(), count: 1 },
            Kind::LateBurst => InjectKind::Late { delay: delay(), count: count() },
            Kind::LatePersistent => InjectKind::Late { delay: delay(), count: u64::MAX },
            Kind::Error => InjectKind::Error { count: count() },
            Kind::Crash => InjectKind::Crash,
            Kind::NanAction => InjectKind::NanAction { count: count() },
            Kind::OutOfRangeAction => InjectKind::OutOfRange { count: count() },
            _ => return None,
        };
        Some(Injection { kind, at_ns: self.start_ns() })
    }
}

fn secs_to_ns(s: f64) -> u64 {
    (s * 1e9) as u64
}

impl std::fmt::Display for FaultAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name(), self.at_s)?;
        match self.arg {
            Some(a) => write!(f, ":{a}"),
            None => Ok(()),
        }
    }
}

impl std::str::FromStr for FaultAt {
    type Err = FaultError;
    fn from_str(s: &str) -> Result<Self, FaultError> {
        FaultAt::parse(s)
    }
}

/// A command that injects faults, and which kinds it can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// `ganglion eval --fault`: simulated time; the arm's faults, and a
    /// persistent inference delay (the simulated-latency executor's).
    Eval,
    /// `ganglion demo --fault`: real time in one process; the arm's faults
    /// and every policy fault.
    Demo,
    /// `ganglion sim serve --fault`: wire faults, and arm faults that reach
    /// the wire.
    SimServe,
    /// `ganglion run --inject`: policy faults.
    RunInject,
}

impl Consumer {
    /// Whether this command can act on `kind`.
    pub fn honours(self, kind: Kind) -> bool {
        match self {
            Consumer::Eval => kind.acts_on(Layer::Arm) || kind == Kind::LatePersistent,
            Consumer::Demo => kind.acts_on(Layer::Arm) || kind.acts_on(Layer::Policy),
            // ROS 2 images carry no sequence number: a repeated one cannot
            // be put on the wire.
            Consumer::SimServe => {
                kind.acts_on(Layer::Wire) || (kind.acts_on(Layer::Arm) && kind != Kind::FrozenFrameSeq)
            }
            Consumer::RunInject => kind.acts_on(Layer::Policy),
        }
    }

    /// The command line, for messages.
    pub fn command(self) -> &'static str {
        match self {
            Consumer::Eval => "eval --fault",
            Consumer::Demo => "demo --fault",
            Consumer::SimServe => "sim serve --fault",
            Consumer::RunInject => "run --inject",
        }
    }

    /// What it honours, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Consumer::Eval => "arm faults and late-persistent (it runs in simulated time)",
            Consumer::Demo => "arm and policy faults",
            Consumer::SimServe => "wire and arm faults (not frozen-frame-seq: ROS 2 images carry no sequence number)",
            Consumer::RunInject => "policy faults (wire and arm faults belong to sim serve --fault)",
        }
    }

    /// The names it accepts, for help texts.
    pub fn kinds(self) -> Vec<&'static str> {
        KINDS.iter().filter(|k| self.honours(k.kind)).map(|k| k.name).collect()
    }
}

/// Parses every spec for `consumer`; the first bad one is the error.
pub fn parse_all(specs: &[String], consumer: Consumer) -> Result<Vec<FaultAt>, FaultError> {
    specs.iter().map(|s| FaultAt::parse_for(s, consumer)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_round_trips() {
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(k.kind.info().name, k.name);
            assert!(KINDS[i + 1..].iter().all(|o| o.kind != k.kind && o.name != k.name), "{} twice", k.name);
            assert!(!k.layers.is_empty());
            assert_eq!(k.kind.arm().is_some(), k.kind.acts_on(Layer::Arm), "{}", k.name);
            let plain = FaultAt::parse(&format!("{}@2.5", k.name)).unwrap();
            assert_eq!((plain.kind, plain.at_s, plain.arg), (k.kind, 2.5, None));
            assert_eq!(plain.to_string().parse::<FaultAt>().unwrap(), plain);
            let with_arg = format!("{}@1:3", k.name);
            match k.arg {
                Arg::None => assert!(FaultAt::parse(&with_arg).is_err()),
                _ => {
                    let f = FaultAt::parse(&with_arg).unwrap();
                    assert_eq!(f.arg, Some(3.0));
                    assert_eq!(f.to_string(), with_arg);
                }
            }
            let policy = plain.injection().is_some();
            assert_eq!(policy, k.kind.acts_on(Layer::Policy), "{}", k.name);
            // Some command honours every kind.
            let consumers = [Consumer::Eval, Consumer::Demo, Consumer::SimServe, Consumer::RunInject];
            assert!(consumers.iter().any(|c| c.honours(k.kind)), "{}", k.name);
        }
    }

    #[test]
    fn windows_and_schedules() {
        let f: FaultAt = "black-frame@2:1.5".parse().unwrap();
        assert_eq!((f.start_ns(), f.end_ns()), (2_000_000_000, 3_500_000_000));
        assert!(!f.covers(1_999_999_999) && f.covers(2_000_000_000) && !f.covers(3_500_000_000));
        assert_eq!(FaultAt::parse("partition@0.5").unwrap().end_ns(), u64::MAX);
        let mut faults = ganglion_sim::Faults::default();
        assert!(f.schedule(&mut faults, Stamp(10)));
        let w = faults.windows()[0];
        assert_eq!(
            (w.kind, w.start, w.end),
            (ganglion_sim::FaultKind::BlackFrame, Stamp(2_000_000_010), Stamp(3_500_000_010))
        );
        assert!(!FaultAt::parse("flood@1").unwrap().schedule(&mut faults, Stamp(0)));
        assert!(FaultAt::parse("nan-joint@1").unwrap().schedule(&mut faults, Stamp(0)));
        assert_eq!(faults.windows()[1].end, Stamp(u64::MAX));
    }

    #[test]
    fn policy_kinds_map_to_injections() {
        let inj = |s: &str| FaultAt::parse(s).unwrap().injection().unwrap();
        assert_eq!(inj("late@3:0.2").kind, InjectKind::Late { delay: Duration::from_millis(200), count: 1 });
        assert_eq!(inj("late-burst@3").kind, InjectKind::Late { delay: Duration::from_millis(1500), count: 3 });
        assert_eq!(inj("late-burst@3:5").kind, InjectKind::Late { delay: Duration::from_millis(1500), count: 5 });
        assert!(matches!(inj("late-persistent@3").kind, InjectKind::Late { count: u64::MAX, .. }));
        assert_eq!(inj("crash@1.5"), Injection { kind: InjectKind::Crash, at_ns: 1_500_000_000 });
        assert_eq!(inj("error@2:2").kind, InjectKind::Error { count: 2 });
        assert_eq!(inj("nan-action@2:4").kind, InjectKind::NanAction { count: 4 });
        assert_eq!(inj("out-of-range-action@2").kind, InjectKind::OutOfRange { count: 1 });
        assert_eq!(
            inj("late-persistent@1:0.4").kind,
            InjectKind::Late { delay: Duration::from_millis(400), count: u64::MAX }
        );
        // One vocabulary: the old spellings are unknown kinds.
        assert!(matches!(FaultAt::parse("slow-inference@1"), Err(FaultError::UnknownKind { .. })));
        assert!(FaultAt::parse("flood@1").unwrap().injection().is_none());
    }

    #[test]
    fn bad_specs_name_the_spec_and_what_was_expected() {
        for (bad, wants) in [
            ("black-frame", "KIND@SECONDS"),
            ("bogus@1", "known kinds: camera-dropout"),
            ("flood@x", "SECONDS >= 0"),
            ("flood@-1", "SECONDS >= 0"),
            ("flood@1:-2", "DURATION_S"),
            ("flood@1:0", "> 0"),
            ("late@1:x", "DELAY_S"),
            ("late-burst@1:1.5", "whole number"),
            ("error@1:0", "whole number"),
            ("crash@1:2", "no ':' argument"),
        ] {
            let e = FaultAt::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")) && e.contains(wants), "{bad}: {e}");
        }
    }

    /// The rig's scenarios speak the same grammar: every `[plant] faults`
    /// spec is one `sim serve` honours, every `[runtime] inject` one `run
    /// --inject` honours.
    #[test]
    fn every_rig_scenario_spec_parses_for_its_command() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../hil-tests/scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let doc: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for (table, key, consumer) in
                [("plant", "faults", Consumer::SimServe), ("runtime", "inject", Consumer::RunInject)]
            {
                let specs = doc.get(table).and_then(|t| t.get(key)).and_then(|v| v.as_array());
                for spec in specs.into_iter().flatten() {
                    let spec = spec.as_str().unwrap();
                    FaultAt::parse_for(spec, consumer).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    seen += 1;
                }
            }
        }
        assert!(seen >= 18, "only {seen} fault specs in {}", dir.display());
    }

    #[test]
    fn commands_refuse_layers_they_cannot_honour_by_name() {
        let e = FaultAt::parse_for("flood@1", Consumer::Eval).unwrap_err().to_string();
        assert!(e.contains("flood acts on the wire;") && e.contains("eval --fault honours arm faults"), "{e}");
        let e = FaultAt::parse_for("black-frame@1", Consumer::RunInject).unwrap_err().to_string();
        assert!(e.contains("acts on the arm/wire") && e.contains("sim serve --fault"), "{e}");
        assert!(FaultAt::parse_for("error@1", Consumer::Eval).is_err());
        assert!(FaultAt::parse_for("late-persistent@1:0.4", Consumer::Eval).is_ok());
        assert!(FaultAt::parse_for("frozen-frame-seq@1", Consumer::SimServe).is_err());
        assert!(FaultAt::parse_for("joint-noise@1", Consumer::SimServe).is_ok());
        assert!(FaultAt::parse_for("partition@1", Consumer::Demo).is_err());
        assert!(FaultAt::parse_for("crash@1", Consumer::Demo).is_ok());
        assert_eq!(Consumer::RunInject.kinds().len(), 7);
    }
}
