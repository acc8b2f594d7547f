//! Reading a spec directory and its lock file from disk.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use strata_diagnostics::{Diagnostic, SourceMap};
use strata_fleet::Lock;
use strata_spec::Limits;

/// The lock file's name inside the spec directory.
pub const LOCK_FILE: &str = "fleet.lock";

/// A spec directory read into memory.
pub struct SpecDir {
    pub root: PathBuf,
    pub sources: SourceMap,
    /// Problems reading files (too large, not UTF-8), as diagnostics.
    pub diagnostics: Vec<Diagnostic>,
}

/// Read every `*.yaml`/`*.yml` below `root` (hidden entries skipped), in path order.
pub fn read_spec_dir(root: &Path, limits: &Limits) -> Result<SpecDir> {
    if !root.exists() {
        bail!(
            "spec directory `{}` does not exist (create one with `strata init {}`)",
            root.display(),
            root.display()
        );
    }
    if !root.is_dir() {
        bail!("`{}` is not a directory", root.display());
    }
    let mut files = Vec::new();
    collect(root, &mut files)?;
    files.sort();
    if files.is_empty() {
        bail!(
            "`{}` contains no *.yaml files (create a fleet with `strata init {}`)",
            root.display(),
            root.display()
        );
    }
    let mut sources = SourceMap::new();
    let mut diagnostics = Vec::new();
    for path in files {
        let shown = display_path(root, &path);
        let size = fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let mut bytes = Vec::new();
        if size <= limits.max_file_bytes as u64 {
            bytes.reserve(size as usize);
            fs::File::open(&path)
                .and_then(|f| {
                    f.take(limits.max_file_bytes as u64 + 1)
                        .read_to_end(&mut bytes)
                })
                .with_context(|| format!("reading {}", path.display()))?;
        }
        diagnostics.extend(strata_spec::add_source(
            &mut sources,
            shown,
            size.max(bytes.len() as u64),
            bytes,
            limits,
        ));
    }
    Ok(SpecDir {
        root: root.to_path_buf(),
        sources,
        diagnostics,
    })
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            collect(&path, out)?;
        } else if (ft.is_file() || ft.is_symlink())
            && (name.ends_with(".yaml") || name.ends_with(".yml"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// A path as users see it in diagnostics: relative to the current directory when
/// possible.
fn display_path(root: &Path, path: &Path) -> String {
    if path.is_relative() {
        return path.display().to_string();
    }
    let cwd = std::env::current_dir().ok();
    let shown = cwd
        .as_deref()
        .and_then(|c| path.strip_prefix(c).ok())
        .or_else(|| path.strip_prefix(root.parent().unwrap_or(root)).ok())
        .unwrap_or(path);
    shown.display().to_string()
}

/// Read `DIR/fleet.lock`; a missing file is an empty lock.
pub fn read_lock(root: &Path) -> Result<(Lock, Option<String>)> {
    let path = root.join(LOCK_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let lock = Lock::parse(&text)
                .with_context(|| format!("{} is not a valid lock file [S0601]; restore it from Git, or delete it to re-allocate everything", path.display()))?;
            Ok((lock, Some(text)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Lock::new(), None)),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Write the lock atomically (temp file + rename) when its text changed.
pub fn write_lock(root: &Path, lock: &Lock, old_text: Option<&str>) -> Result<bool> {
    let text = lock.to_text();
    if old_text == Some(text.as_str()) {
        return Ok(false);
    }
    let path = root.join(LOCK_FILE);
    let tmp = root.join(format!(".{LOCK_FILE}.tmp"));
    fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}
