//! Sealpost's key directory (being built; see ARCHITECTURE.md).
