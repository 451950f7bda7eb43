//! Version, git commit and build date, captured by build.rs.

/// Crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git commit the binary was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("ARGUS_GIT_COMMIT");
/// UTC build date (YYYY-MM-DD).
pub const BUILD_DATE: &str = env!("ARGUS_BUILD_DATE");
