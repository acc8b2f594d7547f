//! Human (miette) and JSON renderings of diagnostics.

use std::fmt;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteSpanContents, SourceCode,
    SourceSpan, SpanContents,
};
use serde::Serialize;

use crate::{Diagnostic, Severity, SourceMap, Span};

/// How to draw human output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenderStyle {
    /// Unicode box drawing with ANSI colours (a terminal).
    Color,
    /// Unicode box drawing, no colours.
    Plain,
    /// ASCII only, no colours (logs, old terminals).
    Ascii,
}

/// Render diagnostics for a human reader, each with its source snippet.
pub fn render_human(diags: &[Diagnostic], sources: &SourceMap, style: RenderStyle) -> String {
    let theme = match style {
        RenderStyle::Color => GraphicalTheme::unicode(),
        RenderStyle::Plain => GraphicalTheme::unicode_nocolor(),
        RenderStyle::Ascii => GraphicalTheme::ascii(),
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_context_lines(2)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for d in diags {
        if render_one(&handler, &mut out, d, sources).is_err() {
            // Rendering only fails on fmt errors from String, which cannot happen;
            // fall back to the one-line form rather than lose the diagnostic.
            out.push_str(&one_line(d, sources));
        }
        out.push('\n');
    }
    out
}

/// `file:line:col: error[S0102]: message` — the grep-able single-line form.
pub fn one_line(d: &Diagnostic, sources: &SourceMap) -> String {
    let loc = match d.span {
        Some(s) => format!("{}:{}:{}: ", sources.path(s.file), s.line, s.col),
        None => String::new(),
    };
    format!("{loc}{}[{}]: {}\n", d.severity, d.code, d.message)
}

#[derive(Serialize)]
struct JsonLocation<'a> {
    file: &'a str,
    line: u32,
    column: u32,
    offset: u32,
    length: u32,
}

#[derive(Serialize)]
struct JsonRelated<'a> {
    #[serde(flatten)]
    location: JsonLocation<'a>,
    message: &'a str,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'a str,
    name: &'a str,
    severity: Severity,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expected: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related: Vec<JsonRelated<'a>>,
}

fn location<'a>(s: &Span, sources: &'a SourceMap) -> JsonLocation<'a> {
    JsonLocation {
        file: sources.path(s.file),
        line: s.line,
        column: s.col,
        offset: s.offset,
        length: s.len,
    }
}

/// Render diagnostics as a JSON array value (the `-o json` form).
pub fn render_json(diags: &[Diagnostic], sources: &SourceMap) -> serde_json::Value {
    let items: Vec<JsonDiagnostic<'_>> = diags
        .iter()
        .map(|d| JsonDiagnostic {
            code: d.code.as_str(),
            name: d.code.info().name,
            severity: d.severity,
            message: &d.message,
            file: d.span.map(|s| sources.path(s.file)),
            line: d.span.map(|s| s.line),
            column: d.span.map(|s| s.col),
            expected: d.expected.as_deref(),
            help: d.help.as_deref(),
            related: d
                .related
                .iter()
                .map(|r| JsonRelated {
                    location: location(&r.span, sources),
                    message: &r.message,
                })
                .collect(),
        })
        .collect();
    serde_json::to_value(items).unwrap_or(serde_json::Value::Null)
}

/// Adapter so miette can draw our diagnostic. Borrows the source text.
struct MietteView<'a> {
    diag: &'a Diagnostic,
    sources: &'a SourceMap,
}

impl fmt::Debug for MietteView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for MietteView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.diag.message)?;
        if let Some(s) = self.diag.span {
            write!(
                f,
                "\n  at {}:{}:{}",
                self.sources.path(s.file),
                s.line,
                s.col
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for MietteView<'_> {}

/// A source that names itself after the file the primary span is in.
struct NamedText<'a> {
    name: &'a str,
    text: &'a str,
}

impl SourceCode for NamedText<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, miette::MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.to_string(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

// The snippet is drawn by a wrapper that owns the named source so that the
// borrow checker is happy with `source_code` returning a reference.
struct WithSource<'a> {
    view: MietteView<'a>,
    source: Option<NamedText<'a>>,
    labels: Vec<LabeledSpan>,
}

impl fmt::Debug for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.view, f)
    }
}

impl fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.view, f)
    }
}

impl std::error::Error for WithSource<'_> {}

impl miette::Diagnostic for WithSource<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        let d = self.view.diag;
        Some(Box::new(format!("{}[{}]", d.severity, d.code)))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.view.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Note => miette::Severity::Advice,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.view
            .diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}

impl<'a> MietteView<'a> {
    fn with_source(self) -> WithSource<'a> {
        let mut labels = Vec::new();
        let mut source = None;
        if let Some(span) = self.diag.span
            && let Some(file) = self.sources.get(span.file)
        {
            let (offset, len) = clamp(&file.text, span.offset as usize, span.len as usize);
            labels.push(LabeledSpan::new_primary_with_span(
                Some(
                    self.diag
                        .expected
                        .clone()
                        .unwrap_or_else(|| "here".to_string()),
                ),
                (offset, len),
            ));
            for r in &self.diag.related {
                if r.span.file == span.file {
                    let (o, l) = clamp(&file.text, r.span.offset as usize, r.span.len as usize);
                    labels.push(LabeledSpan::new_with_span(Some(r.message.clone()), (o, l)));
                }
            }
            source = Some(NamedText {
                name: &file.path,
                text: &file.text,
            });
        }
        WithSource {
            view: self,
            source,
            labels,
        }
    }
}

/// Keep a span inside the text and on character boundaries.
fn clamp(text: &str, offset: usize, len: usize) -> (usize, usize) {
    let mut start = offset.min(text.len());
    while start > 0 && !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = start.saturating_add(len).min(text.len());
    while end < text.len() && !text.is_char_boundary(end) {
        end += 1;
    }
    (start, end - start)
}

fn render_one(
    handler: &GraphicalReportHandler,
    out: &mut String,
    d: &Diagnostic,
    sources: &SourceMap,
) -> fmt::Result {
    let view = MietteView { diag: d, sources }.with_source();
    handler.render_report(out, &view)
}
