//! The spec repository: where the server reads the fleet spec from, through gix.
//!
//! A local repository (a path to a bare or non-bare repository) is read in place; its
//! branch is re-read on every refresh, so a `git push` into it is seen at the next
//! poll. Anything else is a clone URL (`file://`, `ssh://`, `git@host:path`): the
//! server keeps a bare clone in its state directory and fetches into it on every
//! refresh. Files are read straight from the commit's tree (blobs), never from a
//! working tree, so what is applied is exactly what was committed.
//!
//! Blocking (gix is synchronous): callers run it on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use strata_diagnostics::{Diagnostic, SourceMap};
use strata_spec::Limits;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("spec repository {what}: {detail}")]
    Git { what: String, detail: String },
    #[error("the spec repository has no branch `{0}` (push one, or pass --branch)")]
    NoBranch(String),
}

fn git<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> RepoError + '_ {
    move |e| RepoError::Git {
        what: what.to_string(),
        detail: e.to_string(),
    }
}

/// The spec's files at one commit.
pub struct SpecFiles {
    pub sources: SourceMap,
    /// Files too large or not UTF-8.
    pub diagnostics: Vec<Diagnostic>,
    /// `fleet.lock` beside the spec, when the commit has one.
    pub lock_text: Option<String>,
}

/// Where the spec lives and which branch the server follows.
pub struct SpecRepo {
    /// What the operator passed (shown in messages).
    pub source: String,
    /// The repository gix opens: the local repository, or the server's bare clone.
    local: PathBuf,
    /// Fetch before reading (a clone of a URL).
    fetches: bool,
    pub branch: String,
    /// The spec's directory inside the repository (`""`: the root).
    pub subdir: String,
}

impl SpecRepo {
    /// Open `source` (a local repository path, or a URL cloned into `cache_dir`).
    pub fn open(
        source: &str,
        cache_dir: &Path,
        branch: &str,
        subdir: &str,
    ) -> Result<SpecRepo, RepoError> {
        let subdir = subdir.trim_matches('/').to_string();
        let as_path = Path::new(source);
        let is_url = source.contains("://") || (source.contains('@') && source.contains(':'));
        if !is_url && as_path.exists() {
            gix::open(as_path).map_err(git("cannot be opened"))?;
            return Ok(SpecRepo {
                source: source.to_string(),
                local: as_path.to_path_buf(),
                fetches: false,
                branch: branch.to_string(),
                subdir,
            });
        }
        if !is_url {
            return Err(RepoError::Git {
                what: "cannot be opened".into(),
                detail: format!("`{source}` is neither an existing path nor a clone URL"),
            });
        }
        let local = cache_dir.join("spec-repo.git");
        if !local.exists() {
            std::fs::create_dir_all(cache_dir).map_err(git("cache directory"))?;
            let interrupt = AtomicBool::new(false);
            gix::prepare_clone_bare(source, &local)
                .map_err(git("clone"))?
                .fetch_only(gix::progress::Discard, &interrupt)
                .map_err(git("clone"))?;
        }
        Ok(SpecRepo {
            source: source.to_string(),
            local,
            fetches: true,
            branch: branch.to_string(),
            subdir,
        })
    }

    /// Fetch (for a clone) and return the branch's commit id (hex).
    pub fn refresh(&self) -> Result<String, RepoError> {
        let repo = gix::open(&self.local).map_err(git("cannot be opened"))?;
        if self.fetches {
            let interrupt = AtomicBool::new(false);
            let remote = repo
                .find_remote("origin")
                .map_err(git("has no remote `origin`"))?;
            remote
                .connect(gix::remote::Direction::Fetch)
                .map_err(git("fetch"))?
                .prepare_fetch(gix::progress::Discard, Default::default())
                .map_err(git("fetch"))?
                .receive(gix::progress::Discard, &interrupt)
                .map_err(git("fetch"))?;
        }
        let candidates = [
            format!("refs/remotes/origin/{}", self.branch),
            format!("refs/heads/{}", self.branch),
        ];
        for name in &candidates {
            if let Ok(Some(mut r)) = repo.try_find_reference(name.as_str()) {
                let id = r.peel_to_id().map_err(git("branch"))?;
                return Ok(id.detach().to_string());
            }
        }
        Err(RepoError::NoBranch(self.branch.clone()))
    }

    /// The spec's YAML files and its lock at commit `sha`.
    pub fn files_at(&self, sha: &str, limits: &Limits) -> Result<SpecFiles, RepoError> {
        let repo = gix::open(&self.local).map_err(git("cannot be opened"))?;
        let id = gix::ObjectId::from_hex(sha.as_bytes()).map_err(git("commit id"))?;
        let commit = repo.find_commit(id).map_err(git("commit"))?;
        let tree = commit.tree().map_err(git("tree"))?;
        let mut rec = gix::traverse::tree::Recorder::default();
        tree.traverse()
            .breadthfirst(&mut rec)
            .map_err(git("tree walk"))?;
        let prefix = if self.subdir.is_empty() {
            String::new()
        } else {
            format!("{}/", self.subdir)
        };
        let lock_path = format!("{prefix}fleet.lock");
        let mut wanted: Vec<(String, gix::ObjectId)> = Vec::new();
        let mut lock_id = None;
        for e in rec.records {
            if !e.mode.is_blob() {
                continue;
            }
            let path = e.filepath.to_string();
            if path == lock_path {
                lock_id = Some(e.oid);
                continue;
            }
            let Some(rel) = path.strip_prefix(&prefix) else {
                continue;
            };
            let hidden = rel.split('/').any(|c| c.starts_with('.'));
            if !hidden && (rel.ends_with(".yaml") || rel.ends_with(".yml")) {
                wanted.push((path, e.oid));
            }
        }
        wanted.sort();
        let mut sources = SourceMap::new();
        let mut diagnostics = Vec::new();
        for (path, oid) in wanted {
            let header = repo.find_header(oid).map_err(git("blob"))?;
            let size = header.size();
            let bytes = if size <= limits.max_file_bytes as u64 {
                repo.find_object(oid).map_err(git("blob"))?.detach().data
            } else {
                Vec::new()
            };
            diagnostics.extend(strata_spec::add_source(
                &mut sources,
                path,
                size,
                bytes,
                limits,
            ));
        }
        let lock_text = match lock_id {
            None => None,
            Some(oid) => {
                let data = repo.find_object(oid).map_err(git("blob"))?.detach().data;
                Some(String::from_utf8(data).map_err(git("fleet.lock is not UTF-8"))?)
            }
        };
        Ok(SpecFiles {
            sources,
            diagnostics,
            lock_text,
        })
    }
}
