//! Sealpost's web-of-trust engine (being built; see ARCHITECTURE.md).
