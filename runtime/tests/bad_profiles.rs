//! Every profile in `tests/fixtures/bad-profiles/` is refused at load, and
//! the error names the file, the key path and what was expected.
//!
//! Each fixture states its expected error in its first lines:
//!
//! ```toml
//! # key: robot.joints[1].limit.velocity
//! # expected: a finite velocity > 0 (rad/s) for joint `elbow`
//! ```
//!
//! Adding a case is adding a file. Fixtures about `[transport]` and
//! `[realtime]` must be refused by `ganglion check`'s reader too, with the
//! same key: `check` and `run` agree on what a valid section is.

use std::path::{Path, PathBuf};

use ganglion::profile::{CheckSections, Profile};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-profiles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// The value of the `# name: value` header line.
fn header<'a>(text: &'a str, name: &str, file: &Path) -> &'a str {
    let prefix = format!("# {name}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{}: no `{prefix}` line", file.display()))
        .trim()
}

#[test]
fn every_bad_profile_is_refused_naming_file_key_and_expectation() {
    let files = fixtures();
    assert!(files.len() >= 20, "the fixtures are missing: {files:?}");
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable fixture");
        let (key, expected) = (header(&text, "key", file), header(&text, "expected", file));
        let name = file.file_name().and_then(|n| n.to_str()).expect("a UTF-8 name");
        let err = match Profile::load(file) {
            Ok(_) => {
                problems.push(format!("{name}: loads"));
                continue;
            }
            Err(e) => e,
        };
        let msg = err.to_string();
        if err.key() != key {
            problems.push(format!("{name}: key `{}`, fixture says `{key}`: {msg}", err.key()));
        }
        if !(msg.contains(name) && msg.contains(&format!("`{key}`")) && msg.contains(expected)) {
            problems.push(format!("{name}: `{msg}` does not name the file, `{key}` and `{expected}`"));
        }
        if key.starts_with("transport.") || key.starts_with("realtime.") {
            match CheckSections::load(file) {
                Ok(_) => problems.push(format!("{name}: `ganglion check` accepts it")),
                Err(e) if e.key() != key => problems.push(format!("{name}: `ganglion check` names `{}`", e.key())),
                Err(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{} of {} fixtures:\n{}", problems.len(), files.len(), problems.join("\n"));
}
