//! The declaration protocol (being written).
