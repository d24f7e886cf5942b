"""Starts Ganglion as a ROS 2 node.

Ganglion talks ROS 2 itself (DDS through ros2-client, no rclcpp), so it is
launched as a process, not a launch_ros Node; its "parameters" are the robot
profile plus a few launch arguments mapped to its command line and
environment:

    ros2 launch /usr/share/ganglion/ros2/ganglion.launch.py \
        profile:=/etc/ganglion/so101.toml strict:=true ros_domain_id:=7

The profile's [transport] section picks ROS 2 and names the topics
(joint_states / image in; JointState / Float64MultiArray / JointTrajectory out
for ros2_control's forward and trajectory controllers; docs/INTERFACES.md).
The DDS domain Ganglion joins is the profile's [transport.ros2] domain_id:
Ganglion does not read ROS_DOMAIN_ID, so `ros_domain_id` only sets it in the
process environment. For real-time
privileges run it under the systemd unit instead, or give the process
CAP_SYS_NICE and CAP_IPC_LOCK; `ganglion check --profile ...` tells what is
missing.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import EnvironmentVariable, LaunchConfiguration


def _ganglion(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    cmd = [arg("ganglion"), "run", "--config", arg("profile")]
    if arg("strict").lower() == "true":
        cmd.append("--strict")
    cmd.extend(a for a in arg("extra_args").split() if a)
    return [
        ExecuteProcess(
            cmd=cmd,
            name="ganglion",
            output="screen",
            additional_env={
                "ROS_DOMAIN_ID": arg("ros_domain_id"),
                "RUST_LOG": arg("log_level"),
            },
            # The runtime brings the arm to a safe stop on SIGINT; give it time.
            sigterm_timeout="10",
        )
    ]


def generate_launch_description():
    return LaunchDescription(
        [
            DeclareLaunchArgument("ganglion", default_value="/usr/bin/ganglion", description="the ganglion binary"),
            DeclareLaunchArgument(
                "profile", default_value="/etc/ganglion/so101.toml", description="robot profile (TOML)"
            ),
            DeclareLaunchArgument(
                "strict",
                default_value="true",
                choices=["true", "false"],
                description="refuse to arm when a required real-time item fails (ganglion check)",
            ),
            DeclareLaunchArgument(
                "ros_domain_id",
                default_value=EnvironmentVariable("ROS_DOMAIN_ID", default_value="0"),
                description="DDS domain of the robot's ROS 2 graph",
            ),
            DeclareLaunchArgument("log_level", default_value="info", description="RUST_LOG filter"),
            DeclareLaunchArgument("extra_args", default_value="", description="more `ganglion run` arguments"),
            OpaqueFunction(function=_ganglion),
        ]
    )
