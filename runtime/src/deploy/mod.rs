//! The deployed path (`ganglion run`) as a library.

pub mod policy;
