//! Hardware/software-in-the-loop rig: scenarios, fault injection, closed-loop evaluation, baseline comparison.
