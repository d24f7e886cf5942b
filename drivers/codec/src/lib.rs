//! ROS 2 common_interfaces messages as CDR: bounded, total decoders and encoders shared by every transport.
