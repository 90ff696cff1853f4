//! Kotlin and Swift bindings for tidings. The uniffi exports arrive with their issue; until then
//! this crate only proves the workspace builds with the core as a dependency.

pub use tidings::Store;
