//! Diagnostics: what strata says about a spec, and how it is shown.
//!
//! This crate owns the [`Diagnostic`] value (a stable [`Code`], a [`Severity`], a
//! message, a source [`Span`], what was expected and a help line), the table of every
//! code strata can emit ([`codes`]), and the two renderings of a diagnostic: a
//! miette-style report with a source snippet for humans, and plain JSON for machines.
//!
//! Architecture invariant: this crate does no I/O. Rendering returns strings; the
//! caller decides where they go. Source text is borrowed from a [`SourceMap`] the
//! caller filled.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;

pub mod codes;
mod render;

pub use codes::{Code, CodeInfo};
pub use render::{RenderStyle, render_human, render_json};

/// Index of a file inside a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FileId(pub u32);

/// A source file of the spec: its path as shown to users and its text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// All the files a diagnostic may point into.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, path: impl Into<String>, text: impl Into<String>) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(SourceFile {
            path: path.into(),
            text: text.into(),
        });
        id
    }

    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn path(&self, id: FileId) -> &str {
        self.get(id).map(|f| f.path.as_str()).unwrap_or("<unknown>")
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// A place in a source file. `line` and `col` are 1-based; `offset`/`len` are bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub file: FileId,
    pub line: u32,
    pub col: u32,
    pub offset: u32,
    pub len: u32,
}

impl Span {
    /// A span covering a whole file's start (used when nothing finer is known).
    pub fn file_start(file: FileId) -> Self {
        Span {
            file,
            line: 1,
            col: 1,
            offset: 0,
            len: 0,
        }
    }
}

/// How serious a diagnostic is. Errors fail `validate`; warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// A secondary location that explains the primary one ("first defined here").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Related {
    pub span: Span,
    pub message: String,
}

/// One finding about the spec or the compiled fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub span: Option<Span>,
    /// What was expected at `span` (shown as the label under the snippet).
    pub expected: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// A diagnostic with the code's default severity.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.info().severity,
            message: message.into(),
            span: None,
            expected: None,
            help: None,
            related: Vec::new(),
        }
    }

    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    pub fn at_opt(mut self, span: Option<Span>) -> Self {
        if span.is_some() {
            self.span = span;
        }
        self
    }

    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn related(mut self, span: Span, message: impl Into<String>) -> Self {
        self.related.push(Related {
            span,
            message: message.into(),
        });
        self
    }

    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sort diagnostics into a stable order: by file, position, then code.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        let ka = a.span.map(|s| (s.file, s.offset, s.line, s.col));
        let kb = b.span.map(|s| (s.file, s.offset, s.line, s.col));
        // Diagnostics without a span go last.
        match (ka, kb) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
        .then_with(|| a.code.cmp(&b.code))
        .then_with(|| a.message.cmp(&b.message))
    });
}

/// Fold diagnostics that share one root cause into one.
///
/// Two diagnostics share a root cause when they have the same code, the same primary
/// span and the same help: a blueprint value that is wrong in every DC is one mistake,
/// not one per DC. The first of each group (in input order) is kept; the related spans
/// of the others are added to it, and when their messages differ the kept message says
/// how many more places the same cause reaches. Diagnostics without a span are folded
/// only when they are identical.
pub fn merge_same_cause(diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    type Key = (Code, Option<Span>, Option<String>, Option<String>);
    let mut out: Vec<Diagnostic> = Vec::with_capacity(diags.len());
    let mut extra: Vec<usize> = Vec::with_capacity(diags.len());
    let mut related_seen: Vec<HashSet<(Span, String)>> = Vec::with_capacity(diags.len());
    let mut groups: HashMap<Key, Vec<usize>> = HashMap::with_capacity(diags.len());
    for d in diags {
        // Without a span only identical diagnostics are one cause: the message is
        // part of the key and the related spans must match too.
        let key: Key = (
            d.code,
            d.span,
            d.help.clone(),
            d.span.is_none().then(|| d.message.clone()),
        );
        let candidates = groups.entry(key).or_default();
        let same = candidates
            .iter()
            .copied()
            .find(|&i| d.span.is_some() || out[i].related == d.related);
        match same {
            Some(i) => {
                if out[i].message != d.message {
                    extra[i] += 1;
                }
                for r in d.related {
                    if related_seen[i].insert((r.span, r.message.clone())) {
                        out[i].related.push(r);
                    }
                }
            }
            None => {
                candidates.push(out.len());
                related_seen.push(
                    d.related
                        .iter()
                        .map(|r| (r.span, r.message.clone()))
                        .collect(),
                );
                out.push(d);
                extra.push(0);
            }
        }
    }
    for (d, n) in out.iter_mut().zip(extra) {
        if n > 0 {
            d.message = format!("{} (and {n} more like it from the same cause)", d.message);
        }
    }
    out
}

/// Counts by severity, for summaries and exit codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
    pub notes: usize,
}

pub fn count(diags: &[Diagnostic]) -> Counts {
    let mut c = Counts::default();
    for d in diags {
        match d.severity {
            Severity::Error => c.errors += 1,
            Severity::Warning => c.warnings += 1,
            Severity::Note => c.notes += 1,
        }
    }
    c
}

/// Find the closest candidate to `word` (for "did you mean" help), if it is close enough.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(usize, &'a str)> = None;
    for cand in candidates {
        let d = edit_distance(&word.to_ascii_lowercase(), &cand.to_ascii_lowercase());
        let limit = (cand.len().max(word.len()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance with adjacent transpositions counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut prev2 = vec![0usize; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur = vec![0usize; m + 1];
    for i in 1..=n {
        cur[0] = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_typos_and_transpositions() {
        let fields = ["name", "site", "rack", "profile"];
        assert_eq!(did_you_mean("nmae", fields), Some("name"));
        assert_eq!(did_you_mean("proflie", fields), Some("profile"));
        assert_eq!(did_you_mean("sit", fields), Some("site"));
        assert_eq!(did_you_mean("zzzzzz", fields), None);
    }

    #[test]
    fn sort_is_by_file_then_position() {
        let f0 = FileId(0);
        let f1 = FileId(1);
        let sp = |file, line, offset| Span {
            file,
            line,
            col: 1,
            offset,
            len: 1,
        };
        let mut d = vec![
            Diagnostic::new(codes::S0201, "b").at(sp(f1, 1, 0)),
            Diagnostic::new(codes::S0201, "a").at(sp(f0, 9, 90)),
            Diagnostic::new(codes::S0110, "none"),
            Diagnostic::new(codes::S0201, "c").at(sp(f0, 2, 10)),
        ];
        sort(&mut d);
        let msgs: Vec<_> = d.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(msgs, ["c", "a", "b", "none"]);
    }

    #[test]
    fn merge_same_cause_folds_copies_of_one_mistake() {
        let sp = |line| Span {
            file: FileId(0),
            line,
            col: 1,
            offset: line * 10,
            len: 1,
        };
        let per_dc = |dc: &str, at: u32| {
            Diagnostic::new(codes::S0204, format!("collision in `{dc}`"))
                .at(sp(1))
                .related(sp(at), format!("a machine of `{dc}`"))
                .help("fix the template")
        };
        let merged = merge_same_cause(vec![
            per_dc("fra1", 5),
            per_dc("ams1", 7),
            per_dc("waw1", 9),
            Diagnostic::new(codes::S0204, "elsewhere").at(sp(2)),
            Diagnostic::new(codes::S0110, "no span"),
            Diagnostic::new(codes::S0110, "no span"),
        ]);
        assert_eq!(merged.len(), 3, "{merged:#?}");
        assert_eq!(
            merged[0].message,
            "collision in `fra1` (and 2 more like it from the same cause)"
        );
        let related: Vec<u32> = merged[0].related.iter().map(|r| r.span.line).collect();
        assert_eq!(related, [5, 7, 9]);
        assert_eq!(merged[1].message, "elsewhere");
        // Identical copies are folded without a count.
        assert_eq!(merged[2].message, "no span");
    }
}
