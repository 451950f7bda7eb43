//! Scraping: target discovery (static, file_sd), the target manager, one
//! loop per target, the exposition parsers and relabeling.

pub mod cache;
pub mod client;
pub mod consul;
pub mod discovery;
pub mod dns;
pub mod kubernetes;
pub mod manager;
pub mod parse;
pub mod proto;
pub mod relabel;
pub mod scrape_loop;
pub mod target;

pub use manager::{Context, ScrapeManager, TargetInfo, Targets};
pub use scrape_loop::{Appendable, TargetHealth};
