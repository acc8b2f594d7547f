//! Output helpers: colour detection, diagnostics printing, JSON printing.

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

/// Print a JSON value on stdout (pretty, with a trailing newline).
pub fn print_json(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = out.write_all(b"\n");
}

pub fn is_json(g: &Global) -> bool {
    g.format == Format::Json
}
