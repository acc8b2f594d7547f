//! One module per subcommand.

pub mod apply;
pub mod audit;
pub mod compile;
pub mod conform;
pub mod demo;
pub mod drift;
pub mod explain;
pub mod init;
pub mod lab;
pub mod live;
pub mod plan;
pub mod render;
pub mod request;
pub mod schema;
pub mod serve;
pub mod twin;
pub mod validate;
