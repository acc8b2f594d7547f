//! Diagnostics the compiler's phases share: duplicates and dangling references.

use strata_diagnostics::{Diagnostic, Span, codes, did_you_mean};

pub(crate) fn dup(what: &str, name: &str, at: Span, first: Span) -> Diagnostic {
    Diagnostic::new(codes::S0204, format!("duplicate {what} `{name}`"))
        .at(at)
        .expected(format!("each {what} defined once"))
        .related(first, "first defined here")
        .help(format!("rename one of them or remove the duplicate {what}"))
}

pub(crate) fn unknown_ref(what: &str, name: &str, at: Span, known: &[&str]) -> Diagnostic {
    let code = match what {
        "site" => codes::S0202,
        "hardware profile" => codes::S0201,
        "rack" => codes::S0203,
        _ => codes::S0208,
    };
    let d = Diagnostic::new(code, format!("unknown {what} `{name}`"))
        .at(at)
        .expected(if known.is_empty() {
            format!("a {what}, but none are defined")
        } else {
            format!(
                "one of {}",
                known
                    .iter()
                    .take(12)
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    match did_you_mean(name, known.iter().copied()) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None => d.help(format!(
            "define the {what} `{name}`, or refer to an existing one"
        )),
    }
}

pub(crate) trait WithCode {
    fn with_code(self, code: strata_diagnostics::Code, message: String) -> Self;
}

impl WithCode for Diagnostic {
    fn with_code(mut self, code: strata_diagnostics::Code, message: String) -> Self {
        self.code = code;
        self.message = message;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_diagnostics::SourceMap;

    fn span() -> Span {
        let mut sources = SourceMap::new();
        Span::file_start(sources.add("spec.yaml", ""))
    }

    #[test]
    fn unknown_references_suggest_the_nearest_name() {
        let d = unknown_ref("site", "fra2", span(), &["fra1", "ams1"]);
        assert_eq!(d.code, codes::S0202);
        assert_eq!(d.help.as_deref(), Some("did you mean `fra1`?"));
        let none = unknown_ref("storage pool", "x", span(), &[]);
        assert_eq!(none.code, codes::S0208);
        assert_eq!(
            none.expected.as_deref(),
            Some("a storage pool, but none are defined")
        );
    }

    #[test]
    fn duplicates_point_at_the_first_definition() {
        let d = dup("rack", "r01", span(), span());
        assert_eq!(d.code, codes::S0204);
        assert_eq!(d.message, "duplicate rack `r01`");
        assert_eq!(d.related.len(), 1);
    }
}
