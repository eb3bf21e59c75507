//! Ed25519 signatures over chain links (placeholder, being written).
