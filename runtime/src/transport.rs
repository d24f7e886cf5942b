//! Wiring of the zenoh / ROS 2 drivers into the loop's slots and sink.

/// Which transport a profile uses and its settings (`[transport]`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportConfig {}
