//! What a test needs from the machine. CI (`.ci/run`: `.ci/setup` installs
//! the Python packages and ONNX Runtime, `.ci/env` points at them, it runs
//! as root) has all of it, so there a missing prerequisite fails the test;
//! on a developer's machine the test is skipped with the reason printed.
//! A passing test therefore never hides an unexercised check in CI.

/// Whether this is CI: `CI` set and not empty, `false` or `0`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `test` cannot run because `what` is missing: panics in CI; elsewhere
/// prints `SKIPPED (not in CI) test: what` and returns (the caller returns).
#[track_caller]
pub fn missing(test: &str, what: &str) {
    assert!(!in_ci(), "{test}: {what}; CI provides it (.ci/setup, source .ci/env, root): a failure there, not a skip");
    println!("SKIPPED (not in CI) {test}: {what}");
}
