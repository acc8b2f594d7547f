//! A renderer's internal error must never produce a file a validator accepts.

use strata_render::{FileKind, failed_render_text};

#[test]
fn failed_render_text_is_rejected_by_every_validator() {
    let text = failed_render_text("template `x`", "undefined value\nsecond line");
    assert_eq!(text, "%%% strata: template `x` failed: undefined value\n");
    if strata_testkit::opted_out(
        strata_testkit::OptOut::Tools,
        "the validators' rejection of a failed render",
    ) {
        return;
    }
    let verifier = strata_verify::Verifier::discover();
    let dir = tempfile::tempdir().expect("tempdir");
    for kind in FileKind::VERIFIED {
        if let Some(m) = verifier.missing(kind) {
            panic!("{m}");
        }
        let path = dir.path().join(format!("{}.conf", kind.as_str()));
        std::fs::write(&path, &text).expect("write");
        let check = verifier.verify_file(&path, kind);
        assert!(
            !check.ok,
            "{} accepted a failed render:\n{}",
            kind.as_str(),
            check.output
        );
    }
}
