//! The task registry and data readers for the jiant and XTREME layouts.
