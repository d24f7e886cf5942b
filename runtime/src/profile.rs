//! The robot profile: one TOML file that says what robot this is, how fast
//! to run, what limits to keep, which policy and transport to use.
//!
//! Sections are owned by the module that uses them; this module parses the
//! file and validates everything up front, naming file, key and expectation.

/// A parsed and validated robot profile.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `[transport]`
    #[serde(default)]
    pub transport: crate::transport::TransportConfig,
    /// `[recording]`
    #[serde(default)]
    pub recording: crate::recorder::RecordingConfig,
    /// `[realtime]`
    #[serde(default)]
    pub realtime: crate::rtcheck::RealtimeConfig,
}
