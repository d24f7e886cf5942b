//! Real-time readiness of this machine, and applying RT settings at start.

/// Real-time settings (`[realtime]`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeConfig {}
