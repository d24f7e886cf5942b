//! ROS 2 transport over DDS (ros2-client): a node with sensor inputs, command outputs and diagnostics.
