//! Built only for the host as a build-dependency of `agent-monitor`, so that
//! cargo rebuilds the kernel object when these sources change.
#![no_std]
