//! Measurements behind `ganglion bench` (the commands print them): the
//! control loop on the real clock ([`control_loop`]), the transports end to
//! end on loopback ([`transport`]).

pub mod control_loop;
pub mod remote;
pub mod transport;
