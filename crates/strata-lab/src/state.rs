//! The lab's state file: what `lab up` built and started, for `lab test` and `lab down`
//! (separate processes).
//!
//! Layout: `<root>/<name>/state.json` (root `/run/strata-lab` by default), next to one
//! directory per switch and per keepalived host holding its config, sockets, pid files
//! and logs. The file is written before anything is created and again after every
//! process start, so a crash mid-build leaves a state `lab down` can clean up from.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::topology::Lab;

/// Where labs live unless `--state-dir` says otherwise.
pub const DEFAULT_ROOT: &str = "/run/strata-lab";
pub const STATE_FILE: &str = "state.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// `lab up` is running or died half-way.
    Building,
    /// `lab up` finished.
    Up,
}

/// A process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// The switch or host it belongs to.
    pub node: String,
    pub ns: String,
    /// `zebra`, `bgpd`, `bfdd`, `keepalived`, `listener`.
    pub daemon: String,
    pub pid: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub phase: Phase,
    /// The lab directory (`<root>/<name>`).
    pub dir: PathBuf,
    /// The spec directory the lab was built from, for display.
    pub spec: String,
    /// The static checks were bypassed (`--allow-invalid`).
    pub allow_invalid: bool,
    pub lab: Lab,
    pub processes: Vec<Process>,
}

impl State {
    pub fn new(dir: PathBuf, spec: String, allow_invalid: bool, lab: Lab) -> State {
        State {
            version: VERSION,
            phase: Phase::Building,
            dir,
            spec,
            allow_invalid,
            lab,
            processes: Vec::new(),
        }
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Write atomically (temporary file, then rename).
    pub fn save(&self) -> Result<(), Error> {
        let path = State::path(&self.dir);
        let tmp = self.dir.join(".state.json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        let mut f = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.write_all(b"\n"))
            .map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    /// Read the state of the lab in `dir`; `Ok(None)` when there is none.
    pub fn load(dir: &Path) -> Result<Option<State>, Error> {
        let path = State::path(dir);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let state: State = serde_json::from_str(&text).map_err(|e| {
            Error::Other(format!(
                "{} is not a lab state file this strata understands: {e}",
                path.display()
            ))
        })?;
        if state.version != VERSION {
            return Err(Error::Other(format!(
                "{} has state version {}, this strata writes {VERSION}",
                path.display(),
                state.version
            )));
        }
        Ok(Some(state))
    }

    /// The directory of a switch's or host's files.
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join(node)
    }
}

/// `<root>/<name>`
pub fn lab_dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}
