//! Workload identity (placeholder, being written).
