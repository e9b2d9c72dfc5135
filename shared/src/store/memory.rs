//! In memory (placeholder).
