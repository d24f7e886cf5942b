//! Where recordings go, and the MCAP file writer on top of it.
//!
//! A file is written under a temporary name (`<name>.part`) and renamed when
//! complete, so a directory never holds a half-written `.mcap`: a write
//! error (a full disk) removes the partial file.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::schema::Topic;

/// A writable, seekable byte sink (what the MCAP writer needs).
pub trait WriteSeek: Write + Seek + Send {}
impl<T: Write + Seek + Send> WriteSeek for T {}

/// A place to put recording files.
///
/// Invariants: `create` starts a new file that is invisible under `name`
/// until `commit`; `discard` removes an uncommitted one; `remove` deletes a
/// committed one. Only the recorder thread calls these (never the control
/// thread), so they may block on I/O.
pub trait Storage: Send {
    /// Starts writing file `name`.
    fn create(&mut self, name: &str) -> io::Result<Box<dyn WriteSeek>>;
    /// Makes the finished file `name` visible.
    fn commit(&mut self, name: &str) -> io::Result<()>;
    /// Drops the unfinished file `name` (best effort).
    fn discard(&mut self, name: &str);
    /// Deletes the committed file `name`.
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Where file `name` lives, for reports.
    fn path(&self, name: &str) -> PathBuf;
}

/// Files in a directory (created on first use).
#[derive(Debug, Clone)]
pub struct DirStorage {
    dir: PathBuf,
}

impl DirStorage {
    /// Recordings in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirStorage { dir: dir.into() }
    }

    fn part(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.part"))
    }
}

impl Storage for DirStorage {
    fn create(&mut self, name: &str) -> io::Result<Box<dyn WriteSeek>> {
        std::fs::create_dir_all(&self.dir)?;
        let f = std::fs::File::create(self.part(name))?;
        Ok(Box::new(BufWriter::with_capacity(1 << 16, f)))
    }

    fn commit(&mut self, name: &str) -> io::Result<()> {
        std::fs::rename(self.part(name), self.dir.join(name))
    }

    fn discard(&mut self, name: &str) {
        let _ = std::fs::remove_file(self.part(name));
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.dir.join(name))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Counts the bytes that reached the sink (its final length).
struct Counting {
    inner: Box<dyn WriteSeek>,
    pos: u64,
    len: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.pos += n as u64;
        self.len.fetch_max(self.pos, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Seek for Counting {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }
}

/// Names, cameras and context written into every file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordingMeta {
    /// Joint names in profile order.
    pub joint_names: Vec<String>,
    /// Camera names in profile order.
    pub cameras: Vec<String>,
    /// Free-form key/values for the `ganglion` metadata record (profile,
    /// policy, rate...).
    pub info: BTreeMap<String, String>,
}

/// The topics every file declares, in channel order.
pub fn topics(meta: &RecordingMeta) -> Vec<Topic> {
    let mut t = vec![Topic::Tick, Topic::Command, Topic::Joints];
    t.extend((0..meta.cameras.len().min(16)).map(|i| Topic::Camera(i as u8)));
    t.extend([Topic::Instruction, Topic::Heartbeat, Topic::Inference]);
    t
}

/// One encoded message, ready for any file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Channel.
    pub topic: Topic,
    /// MCAP log time: loop time at which the loop saw / produced it.
    pub log_time: u64,
    /// MCAP publish time: receive stamp for inputs, log time otherwise.
    pub publish_time: u64,
    /// MCAP sequence: the input's sequence number (low 32 bits), else the tick.
    pub sequence: u32,
    /// CDR payload.
    pub data: Vec<u8>,
}

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The sink failed (e.g. `ENOSPC`, a full disk).
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The MCAP writer failed (usually wrapping an i/o error).
    #[error("mcap: {0}")]
    Mcap(#[from] mcap::McapError),
}

impl WriteError {
    /// Whether the underlying error says the disk is full.
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            WriteError::Io(e) => Some(e),
            WriteError::Mcap(mcap::McapError::Io(e)) => Some(e),
            WriteError::Mcap(_) => None,
        };
        io.is_some_and(|e| e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc::ENOSPC))
    }
}

/// An open MCAP file with every channel declared.
pub struct McapFile {
    name: String,
    writer: mcap::Writer<Counting>,
    channels: BTreeMap<Topic, u16>,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Loop time of the first message (for rollover by age).
    pub first_log_time: Option<u64>,
    /// Messages written.
    pub messages: u64,
    /// Bytes of message records handed to the writer (they reach the sink
    /// only when their chunk closes).
    record_bytes: u64,
    start_bytes: u64,
}

impl McapFile {
    /// Creates `name` in `storage`, declares every channel of `meta` and
    /// writes the `ganglion` metadata record (`meta.info` plus `extra`).
    pub fn create(
        storage: &mut dyn Storage,
        name: &str,
        meta: &RecordingMeta,
        extra: &[(&str, String)],
    ) -> Result<Self, WriteError> {
        let sink = storage.create(name)?;
        let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counting = Counting { inner: sink, pos: 0, len: bytes.clone() };
        let opts = mcap::WriteOptions::new()
            .compression(None)
            .profile("ros2")
            .library(concat!("ganglion ", env!("CARGO_PKG_VERSION")))
            .chunk_size(Some(1 << 20));
        let mut writer = opts.create(counting)?;
        let mut channels = BTreeMap::new();
        for topic in topics(meta) {
            let schema = writer.add_schema(topic.schema_name(), "ros2msg", topic.schema_text().as_bytes())?;
            let id = writer.add_channel(schema, &topic.name(&meta.cameras), "cdr", &BTreeMap::new())?;
            channels.insert(topic, id);
        }
        let mut info = meta.info.clone();
        info.insert("joint_names".into(), meta.joint_names.join(","));
        info.insert("cameras".into(), meta.cameras.join(","));
        info.insert("time_base".into(), "loop clock, monotonic ns".into());
        for (k, v) in extra {
            info.insert((*k).into(), v.clone());
        }
        writer.write_metadata(&mcap::records::Metadata { name: "ganglion".into(), metadata: info })?;
        let start_bytes = bytes.load(std::sync::atomic::Ordering::Relaxed);
        Ok(McapFile {
            name: name.into(),
            writer,
            channels,
            bytes,
            first_log_time: None,
            messages: 0,
            record_bytes: 0,
            start_bytes,
        })
    }

    /// Appends one message.
    pub fn write(&mut self, e: &Entry) -> Result<(), WriteError> {
        let Some(&channel_id) = self.channels.get(&e.topic) else { return Ok(()) };
        let header = mcap::records::MessageHeader {
            channel_id,
            sequence: e.sequence,
            log_time: e.log_time,
            publish_time: e.publish_time,
        };
        self.writer.write_to_known_channel(&header, &e.data)?;
        self.first_log_time.get_or_insert(e.log_time);
        self.messages += 1;
        // Opcode, record length, channel, sequence, two times: 31 bytes.
        self.record_bytes += e.data.len() as u64 + 31;
        Ok(())
    }

    /// Size of the file so far: what reached the sink, or the messages
    /// buffered in the open chunk on top of the file's start, if more.
    pub fn bytes(&self) -> u64 {
        let sunk = self.bytes.load(std::sync::atomic::Ordering::Relaxed);
        sunk.max(self.start_bytes + self.record_bytes)
    }

    /// The file's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes the summary and footer, flushes, and commits the file;
    /// returns its size in bytes.
    pub fn finish(mut self, storage: &mut dyn Storage) -> Result<u64, WriteError> {
        self.writer.finish()?;
        let mut sink = self.writer.into_inner();
        sink.flush()?;
        drop(sink);
        storage.commit(&self.name)?;
        Ok(self.bytes.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// UTC calendar time of a Unix time, as `YYYYMMDDTHHMMSSZ` (for file names;
/// civil-from-days after H. Hinnant, so no date crate is needed).
pub fn utc_compact(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Seconds since the Unix epoch now (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Whether `path` looks like a finished recording.
pub fn is_recording(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "mcap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_names_match_known_dates() {
        assert_eq!(utc_compact(0), "19700101T000000Z");
        assert_eq!(utc_compact(951_782_400), "20000229T000000Z");
        assert_eq!(utc_compact(1_795_000_000), "20261118T110640Z");
    }
}
