//! Scraping: target discovery (static, file_sd), the target manager, one
//! loop per target, the exposition parsers and relabeling.

pub mod parse;
pub mod relabel;
