//! Output helpers: colour detection, diagnostics printing, JSON printing, and the
//! one way commands write to stdout.
//!
//! Every write to stdout goes through [`stdout`] (or the `outln!`/`out!` macros),
//! which turn a closed stdout (`strata explain | head -1`: `EPIPE`) into
//! [`StdoutClosed`] instead of a panic. `main` ends such a run quietly with exit 0,
//! as ripgrep does: the reader has what it wanted.

use std::fmt;
use std::io::{IsTerminal, Write};

use strata_diagnostics::{Diagnostic, RenderStyle, SourceMap, count, render_human, render_json};

use crate::{ColorChoice, Format, Global};

/// Is colour wanted on stderr?
pub fn color_stderr(g: &Global) -> bool {
    match g.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    }
}

/// Print diagnostics for humans on stderr (with snippets).
pub fn print_diagnostics(g: &Global, diags: &[Diagnostic], sources: &SourceMap) {
    if diags.is_empty() {
        return;
    }
    let style = if color_stderr(g) {
        RenderStyle::Color
    } else {
        RenderStyle::Plain
    };
    let text = render_human(diags, sources, style);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
}

/// `N errors, M warnings` for summaries.
pub fn counts_line(diags: &[Diagnostic]) -> String {
    let c = count(diags);
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        plural(c.errors, "error"),
        plural(c.warnings, "warning")
    )
}

pub fn diagnostics_json(diags: &[Diagnostic], sources: &SourceMap) -> serde_json::Value {
    render_json(diags, sources)
}

/// The reader of stdout went away (a closed pipe). Not a failure of the command:
/// `main` exits quietly with status 0.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// Write `args` to stdout and flush. A closed stdout is [`StdoutClosed`]; any other
/// failure (a full disk behind a redirect) is an error that names stdout.
pub fn stdout(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        anyhow::Error::new(StdoutClosed)
    } else {
        anyhow::Error::new(e).context("writing to stdout")
    }
}

/// Whether `e` is (caused by) a closed stdout.
pub fn is_stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<StdoutClosed>())
}

/// `println!` for commands: returns `anyhow::Result<()>`, `Err(StdoutClosed)` when
/// the reader closed stdout.
macro_rules! outln {
    () => {
        $crate::output::stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for commands (see [`outln!`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};

/// Print a JSON value on stdout (pretty, with a trailing newline).
pub fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    outln!("{text}")
}

pub fn is_json(g: &Global) -> bool {
    g.format == Format::Json
}
