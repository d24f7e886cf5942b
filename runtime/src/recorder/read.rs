//! A recording read back: ticks, the inputs each tick saw, the inference
//! results it collected, and the file's metadata.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ganglion_codec::msg::{Message, StringMsg};
use ganglion_codec::DecodeLimits;
use ganglion_core::{ExternalHeartbeat, Frame, Instruction, JointState, Stamp, Stamped};

use super::codec;
use super::row::{cause_names, InferenceRow, ResultStatus, TickRow};

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid MCAP file.
    #[error("{path} is not a readable MCAP file: {source}")]
    Mcap {
        /// The file.
        path: String,
        /// The cause.
        source: mcap::McapError,
    },
}

/// One input sample as a tick saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum InputSample {
    /// A joint state.
    Joints(Stamped<JointState>),
    /// A frame of camera `.0` (profile order).
    Frame(usize, Stamped<Frame>),
    /// The instruction.
    Instruction(Stamped<Instruction>),
    /// The external heartbeat.
    Heartbeat(Stamped<ExternalHeartbeat>),
}

/// An input and the scheduled start of the tick that first sampled it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedInput {
    /// The tick's scheduled start (MCAP log time).
    pub tick: Stamp,
    /// The sample.
    pub sample: InputSample,
}

/// Message count of one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelCount {
    /// Topic.
    pub topic: String,
    /// Schema name.
    pub schema: String,
    /// Messages.
    pub messages: u64,
}

/// A recording in memory, every list in log-time order.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// The `ganglion` metadata record.
    pub info: BTreeMap<String, String>,
    /// Joint names.
    pub joint_names: Vec<String>,
    /// Camera names.
    pub cameras: Vec<String>,
    /// Every declared channel with its message count.
    pub channels: Vec<ChannelCount>,
    /// Tick records.
    pub ticks: Vec<TickRow>,
    /// Inputs as the ticks saw them.
    pub inputs: Vec<RecordedInput>,
    /// Inference results as the loop collected them.
    pub results: Vec<InferenceRow>,
    /// Messages that failed to decode (counted, skipped).
    pub malformed: u64,
}

/// Rebuilds a 64-bit sequence number from the recorded low 32 bits, given
/// the previous one on the same channel.
fn unwrap_seq(prev: &mut Option<u64>, low: u32) -> u64 {
    let v = match *prev {
        None => u64::from(low),
        Some(p) => {
            let candidate = (p & !0xFFFF_FFFF) | u64::from(low);
            if candidate < p {
                candidate + (1 << 32)
            } else {
                candidate
            }
        }
    };
    *prev = Some(v);
    v
}

impl Recording {
    /// Reads `path`.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ReadError::Io { path: name.clone(), source })?;
        Self::from_bytes(&bytes).map_err(|source| ReadError::Mcap { path: name, source })
    }

    /// Reads a recording held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, mcap::McapError> {
        let mut rec = Recording::default();
        if let Some(summary) = mcap::Summary::read(bytes)? {
            for idx in summary.metadata_indexes.iter().filter(|i| i.name == "ganglion") {
                rec.info.extend(mcap::read::metadata(bytes, idx)?.metadata);
            }
            let mut channels: Vec<_> = summary.channels.values().cloned().collect();
            channels.sort_by_key(|c| c.id);
            let counts = summary.stats.as_ref().map(|s| s.channel_message_counts.clone()).unwrap_or_default();
            rec.channels = channels
                .iter()
                .map(|c| ChannelCount {
                    topic: c.topic.clone(),
                    schema: c.schema.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                    messages: counts.get(&c.id).copied().unwrap_or(0),
                })
                .collect();
        }
        let split = |key: &str| -> Vec<String> {
            rec.info
                .get(key)
                .map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        rec.joint_names = split("joint_names");
        rec.cameras = split("cameras");
        let camera_topics: HashMap<String, usize> =
            rec.cameras.iter().enumerate().map(|(i, c)| (format!("/camera/{c}/image_raw"), i)).collect();

        let mut seqs: HashMap<u16, Option<u64>> = HashMap::new();
        let mut text_seq = 0u64;
        let mut last_text: Option<String> = None;
        let mut messages: Vec<mcap::Message<'static>> = mcap::MessageStream::new(bytes)?.collect::<Result<_, _>>()?;
        // Files are written in log-time order; sorting keeps other writers' files usable too.
        messages.sort_by_key(|m| m.log_time);
        for m in messages {
            let tick = Stamp(m.log_time);
            let receive = Stamp(m.publish_time);
            let seq = unwrap_seq(seqs.entry(m.channel.id).or_default(), m.sequence);
            let decoded = match m.channel.topic.as_str() {
                "/ganglion/tick" => codec::decode_tick(&m.data).map(|t| rec.ticks.push(t)),
                "/ganglion/inference" => codec::decode_inference(&m.data, tick).map(|r| rec.results.push(r)),
                "/joint_states" => codec::decode_joints(&m.data, receive, seq)
                    .map(|s| rec.inputs.push(RecordedInput { tick, sample: InputSample::Joints(s) })),
                "/heartbeat_in" => codec::decode_heartbeat(&m.data, receive, seq)
                    .map(|s| rec.inputs.push(RecordedInput { tick, sample: InputSample::Heartbeat(s) })),
                "/instruction" => {
                    // The text's own change counter is not on the wire
                    // (std_msgs/String): it counts changes from 1.
                    let text = StringMsg::decode(&m.data, &DecodeLimits::default()).map(|s| s.data);
                    if last_text.as_deref() != text.as_deref().ok() {
                        text_seq += 1;
                        last_text = text.as_ref().ok().cloned();
                    }
                    codec::decode_instruction(&m.data, receive, receive, seq, text_seq)
                        .map(|s| rec.inputs.push(RecordedInput { tick, sample: InputSample::Instruction(s) }))
                }
                "/command" => Ok(()),
                topic => match camera_topics.get(topic) {
                    Some(&cam) => codec::decode_frame(&m.data, receive, seq)
                        .map(|s| rec.inputs.push(RecordedInput { tick, sample: InputSample::Frame(cam, s) })),
                    None => Ok(()),
                },
            };
            if decoded.is_err() {
                rec.malformed += 1;
            }
        }
        Ok(rec)
    }

    /// Messages on `topic` (0 when the channel is absent).
    pub fn count(&self, topic: &str) -> u64 {
        self.channels.iter().find(|c| c.topic == topic).map_or(0, |c| c.messages)
    }
}

/// What a recording holds, for the summary and the report.
#[derive(Debug, serde::Serialize)]
pub struct RecordingSummary {
    /// The file.
    pub file: String,
    /// Messages per channel.
    pub channels: std::collections::BTreeMap<String, u64>,
    /// Ticks recorded.
    pub ticks: usize,
    /// First and last tick numbers.
    pub tick_range: Option<(u64, u64)>,
    /// Inputs recorded (joint states, frames, instructions, heartbeats).
    pub inputs: usize,
    /// Inference results recorded, and how many were errors.
    pub results: usize,
    /// Inference results that were errors.
    pub result_errors: usize,
    /// Trigger edges (new causes) in the recording: `tick: causes`.
    pub triggers: Vec<String>,
    /// Messages that did not decode.
    pub malformed: u64,
    /// The `ganglion` metadata record.
    pub info: std::collections::BTreeMap<String, String>,
}

impl Recording {
    /// What the recording holds (`ganglion replay`'s summary and report);
    /// `file` names it.
    pub fn summary(&self, file: &str) -> RecordingSummary {
        let rec = self;
        let mut triggers = Vec::new();
        let mut prev = None;
        for t in &rec.ticks {
            let new = t.new_causes(prev);
            if !new.is_empty() {
                triggers.push(format!("{}: {}", t.seq, cause_names(new)));
            }
            prev = Some(t);
        }
        RecordingSummary {
            file: file.into(),
            channels: rec.channels.iter().map(|c| (c.topic.clone(), c.messages)).collect(),
            ticks: rec.ticks.len(),
            tick_range: rec.ticks.first().zip(rec.ticks.last()).map(|(a, b)| (a.seq, b.seq)),
            inputs: rec.inputs.len(),
            results: rec.results.len(),
            result_errors: rec.results.iter().filter(|r| r.status != ResultStatus::Ok).count(),
            triggers,
            malformed: rec.malformed,
            info: rec.info.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_unwrap_across_32_bits() {
        let mut p = None;
        assert_eq!(unwrap_seq(&mut p, u32::MAX - 1), u64::from(u32::MAX) - 1);
        assert_eq!(unwrap_seq(&mut p, u32::MAX), u64::from(u32::MAX));
        assert_eq!(unwrap_seq(&mut p, 0), 1 << 32);
        assert_eq!(unwrap_seq(&mut p, 5), (1 << 32) + 5);
    }
}
