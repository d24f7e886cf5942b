//! zenoh transport: key expressions, subscribers into latest-value slots, non-blocking command publisher.
