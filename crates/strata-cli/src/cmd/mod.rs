//! One module per subcommand.

pub mod compile;
pub mod conform;
pub mod demo;
pub mod explain;
pub mod init;
pub mod render;
pub mod schema;
pub mod validate;
