//! Measurements behind `ganglion bench` (the commands print them): the
//! transports end to end on loopback ([`transport`]).

pub mod transport;
