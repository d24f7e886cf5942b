//! Tick records, the flight recorder (MCAP) and replay.

/// Flight recorder settings (`[recording]`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {}
