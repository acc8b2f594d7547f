use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use strata_render::{FileKind, RenderedFile};

use crate::output::outln;
use crate::output::{counts_line, diagnostics_json, is_json, print_diagnostics, print_json};
use crate::pipeline::analyze;
use crate::source::write_lock;
use crate::{Global, SpecArgs};

/// The manifest strata writes into every output directory. Its presence marks the
/// directory as strata's to replace.
pub const MANIFEST: &str = "MANIFEST.json";

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Output directory. Must be empty, or hold an earlier render (its MANIFEST.json).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Validate every file with the real tool that consumes it (vtysh, netplan,
    /// cloud-init, ifupdown2, keepalived, ansible-inventory, promtool).
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub global: Global,
}

pub fn run(a: RenderArgs) -> Result<ExitCode> {
    let an = analyze(&a.spec.dir, a.spec.locked)?;
    print_diagnostics(&a.global, &an.diagnostics, an.sources());
    let Some(fleet) = an.fleet.as_ref().filter(|_| !an.has_errors()) else {
        if is_json(&a.global) {
            print_json(
                &json!({"ok": false, "diagnostics": diagnostics_json(&an.diagnostics, an.sources())}),
            )?;
        } else {
            eprintln!(
                "failed: nothing rendered; the spec has {}",
                counts_line(&an.diagnostics)
            );
        }
        return Ok(ExitCode::from(1));
    };
    // Everything is rendered before anything is written: a file that cannot be
    // rendered (a template bug) leaves the output directory and fleet.lock untouched.
    let files = match strata_render::render_all(fleet) {
        Ok(files) => files,
        Err(e) => {
            if is_json(&a.global) {
                print_json(&json!({
                    "ok": false,
                    "render_failures": e.failures,
                    "diagnostics": diagnostics_json(&an.diagnostics, an.sources()),
                }))?;
            }
            eprintln!("error: {e}");
            eprintln!("failed: nothing written to {}", a.out.display());
            return Ok(ExitCode::from(1));
        }
    };
    if !a.spec.locked {
        write_lock(&an.dir.root, &an.lock, an.old_lock_text.as_deref())?;
    }
    write_files(&a.out, &files)?;
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &files {
        *by_kind.entry(f.kind.as_str()).or_default() += 1;
    }
    let mut ok = true;
    let mut checks = Vec::new();
    if a.verify {
        let verifier = strata_verify::Verifier::discover();
        let missing: Vec<String> = FileKind::VERIFIED
            .iter()
            .filter(|k| files.iter().any(|f| f.kind == **k))
            .filter_map(|k| verifier.missing(*k))
            .collect();
        if !missing.is_empty() {
            for m in &missing {
                eprintln!("error: {m}");
            }
            ok = false;
        }
        let list: Vec<(String, FileKind)> =
            files.iter().map(|f| (f.path.clone(), f.kind)).collect();
        checks = verifier.verify_dir(&a.out, &list);
        for c in checks.iter().filter(|c| !c.ok) {
            ok = false;
            if !is_json(&a.global) {
                eprintln!(
                    "verify failed: {} ({}): {}\n{}\n",
                    c.path, c.tool, c.command, c.output
                );
            }
        }
    }
    if is_json(&a.global) {
        print_json(&json!({
            "ok": ok,
            "out": a.out.display().to_string(),
            "files": files.iter().map(|f| json!({"path": f.path, "kind": f.kind})).collect::<Vec<_>>(),
            "verify": checks,
            "diagnostics": diagnostics_json(&an.diagnostics, an.sources()),
        }))?;
    } else {
        let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
        outln!(
            "rendered {} files into {}: {}",
            files.len(),
            a.out.display(),
            kinds.join(", ")
        )?;
        if a.verify {
            let passed = checks.iter().filter(|c| c.ok).count();
            outln!(
                "verified {passed}/{} files with the real tools",
                checks.len()
            )?;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Write `files` under `out`, replacing an earlier render but nothing else.
pub fn write_files(out: &Path, files: &[RenderedFile]) -> Result<()> {
    if out.exists() {
        let manifest = out.join(MANIFEST);
        let empty = fs::read_dir(out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_none();
        if !empty && !manifest.exists() {
            bail!(
                "{} is not empty and holds no {MANIFEST}; refusing to write into a directory strata did not create",
                out.display()
            );
        }
        if manifest.exists() {
            // Remove the previous render's files (only those it listed).
            let old: serde_json::Value = serde_json::from_str(&fs::read_to_string(&manifest)?)
                .with_context(|| format!("reading {}", manifest.display()))?;
            for p in old["files"].as_array().into_iter().flatten() {
                if let Some(rel) = p["path"].as_str().filter(|r| safe_relative(r)) {
                    let _ = fs::remove_file(out.join(rel));
                }
            }
        }
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for f in files {
        if !safe_relative(&f.path) {
            bail!("renderer produced an unsafe path `{}`", f.path);
        }
        let path = out.join(&f.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, &f.content).with_context(|| format!("writing {}", path.display()))?;
        #[cfg(unix)]
        if f.kind == FileKind::Netplan {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        }
    }
    let manifest = json!({
        "generator": format!("strata {}", env!("CARGO_PKG_VERSION")),
        "files": files.iter().map(|f| json!({"path": f.path, "kind": f.kind})).collect::<Vec<_>>(),
    });
    fs::write(
        out.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    Ok(())
}

fn safe_relative(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && Path::new(p)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}
