//! What several test files share.

pub mod export_models;
