//! The capture policy for text fields (placeholder, being written).
