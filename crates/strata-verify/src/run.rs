//! Running one external tool: a clean environment, combined stdout+stderr, a timeout
//! that kills the whole process group, and output trimmed for reports.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The `PATH` every tool runs with: system directories only, so that a pyenv shim or
/// an activated venv earlier on the caller's `PATH` cannot replace the `python3` that
/// Debian's tools (ifupdown2 uses `#!/usr/bin/env python3`) expect.
pub(crate) const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Most bytes of tool output kept in memory while reading; the rest is drained unread.
const CAPTURE_LIMIT: usize = 1 << 20;
/// Most bytes of tool output kept in a [`crate::Check`].
pub(crate) const OUTPUT_LIMIT: usize = 4096;
/// How long to wait for the output pipe to close after the tool itself has exited
/// (a daemonised grandchild could keep it open forever).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("cannot create an output pipe: {0}")]
    Pipe(std::io::Error),
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot wait for {program}: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
}

/// What one run produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// `None` when the tool was killed after the timeout.
    pub status: Option<ExitStatus>,
    /// Combined stdout and stderr, in the order the tool wrote them (one pipe for both).
    pub output: String,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// A short description of how the tool ended, for messages.
    pub fn describe_status(&self) -> String {
        match self.status {
            None => "killed after the timeout".to_string(),
            Some(status) => match status.code() {
                Some(code) => format!("exit status {code}"),
                None => format!("{status}"),
            },
        }
    }
}

/// One tool invocation: program, arguments and the few settings that differ per tool.
pub(crate) struct Invocation {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(String, OsString)>,
    cwd: PathBuf,
    home: PathBuf,
    stdin: Option<File>,
    path_env: String,
}

impl Invocation {
    /// `scratch` is a private temporary directory: it becomes the working directory,
    /// `HOME` and `TMPDIR` of the tool, so nothing is read from or written to the
    /// caller's home or working directory.
    pub fn new(program: &Path, scratch: &Path) -> Invocation {
        Invocation {
            program: program.to_path_buf(),
            args: Vec::new(),
            envs: Vec::new(),
            cwd: scratch.to_path_buf(),
            home: scratch.to_path_buf(),
            stdin: None,
            path_env: SYSTEM_PATH.to_string(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Invocation {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Invocation
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Invocation {
        self.envs.push((key.to_string(), value.into()));
        self
    }

    pub fn stdin(mut self, file: File) -> Invocation {
        self.stdin = Some(file);
        self
    }

    /// Put `dir` in front of [`SYSTEM_PATH`].
    pub fn path_prepend(mut self, dir: &Path) -> Invocation {
        self.path_env = format!("{}:{SYSTEM_PATH}", dir.display());
        self
    }

    /// The command line as a person would type it (arguments shell-quoted).
    pub fn display(&self) -> String {
        let mut words = vec![shell_quote(&self.program.to_string_lossy())];
        words.extend(self.args.iter().map(|a| shell_quote(&a.to_string_lossy())));
        words.join(" ")
    }

    /// Run to completion or until `timeout`, then kill the tool's whole process group.
    pub fn run(self, timeout: Duration) -> Result<Outcome, RunError> {
        let program = self.program.display().to_string();
        let (mut reader, writer) = std::io::pipe().map_err(RunError::Pipe)?;
        let writer_for_stderr = writer.try_clone().map_err(RunError::Pipe)?;

        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .env("PATH", &self.path_env)
            .env("HOME", &self.home)
            .env("TMPDIR", &self.home)
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            // Keep Python tools from writing __pycache__ next to system packages.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(&self.cwd)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer_for_stderr))
            .stdin(match self.stdin {
                Some(file) => Stdio::from(file),
                None => Stdio::null(),
            })
            // A group of its own, so that a timeout can kill helpers the tool started.
            .process_group(0);
        for (key, value) in &self.envs {
            command.env(key, value);
        }

        let spawned = command.spawn();
        // The command holds the parent's copies of the pipe's write ends; drop them so
        // that the reader sees end-of-file once the tool and its children are done.
        drop(command);
        let mut child = spawned.map_err(|source| RunError::Spawn {
            program: program.clone(),
            source,
        })?;

        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut kept = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                match reader.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        let room = CAPTURE_LIMIT.saturating_sub(kept.len());
                        kept.extend_from_slice(&chunk[..n.min(room)]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            // The receiver may be gone after a timeout; nothing to do then.
            let _ = sender.send(kept);
        });

        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) => {}
                Err(source) => {
                    kill_group(child.id());
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RunError::Wait { program, source });
                }
            }
            if Instant::now() >= deadline {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(25));
        };

        let bytes = match receiver.recv_timeout(DRAIN_GRACE) {
            Ok(bytes) => bytes,
            Err(_) => {
                // Something the tool left behind still holds the pipe: end it too.
                kill_group(child.id());
                receiver.recv_timeout(DRAIN_GRACE).unwrap_or_default()
            }
        };
        let mut output = String::from_utf8_lossy(&bytes).into_owned();
        if status.is_none() {
            output.push_str(&format!(
                "\nstrata-verify: {program} did not finish within {timeout:?} and was killed"
            ));
        }
        Ok(Outcome { status, output })
    }
}

/// Kill a process group (the tool was started as its leader) with the `kill` utility,
/// which needs no unsafe code here. Best effort: failures are ignored.
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .env("PATH", SYSTEM_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Quote `word` for a POSIX shell when it needs quoting.
pub(crate) fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Trim surrounding whitespace and keep at most [`OUTPUT_LIMIT`] bytes: the head and
/// the tail (tools print the cause first or last), with a marker where text was cut.
pub(crate) fn trim_output(text: &str) -> String {
    let text = text.trim();
    if text.len() <= OUTPUT_LIMIT {
        return text.to_string();
    }
    let half = OUTPUT_LIMIT / 2 - 64;
    let mut head_end = half;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - half;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    format!(
        "{}\n[... {} bytes omitted ...]\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("vtysh"), "vtysh");
        assert_eq!(shell_quote("-f"), "-f");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn trimming_keeps_head_and_tail() {
        let short = "  hello \n";
        assert_eq!(trim_output(short), "hello");
        let long = format!("HEAD{}TAIL", "é".repeat(5000));
        let trimmed = trim_output(&long);
        assert!(trimmed.len() <= OUTPUT_LIMIT);
        assert!(trimmed.starts_with("HEAD"));
        assert!(trimmed.ends_with("TAIL"));
        assert!(trimmed.contains("bytes omitted"));
    }

    #[test]
    fn captures_both_streams_and_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outcome = Invocation::new(Path::new("/bin/sh"), dir.path())
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .run(Duration::from_secs(10))
            .expect("run");
        assert_eq!(outcome.status.and_then(|s| s.code()), Some(3));
        assert!(!outcome.success());
        assert!(outcome.output.contains("out") && outcome.output.contains("err"));
    }

    #[test]
    fn environment_is_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outcome = Invocation::new(Path::new("/bin/sh"), dir.path())
            .args(["-c", "echo \"$HOME|$PATH|${CARGO:-unset}\"; pwd"])
            .run(Duration::from_secs(10))
            .expect("run");
        let home = dir.path().display().to_string();
        assert!(outcome.success());
        assert!(
            outcome
                .output
                .starts_with(&format!("{home}|{SYSTEM_PATH}|unset"))
        );
    }

    #[test]
    fn timeout_kills_the_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        // The background sleep holds the pipe open too; it must be killed with the shell.
        let outcome = Invocation::new(Path::new("/bin/sh"), dir.path())
            .args(["-c", "sleep 30 & sleep 30"])
            .run(Duration::from_millis(300))
            .expect("run");
        assert!(outcome.status.is_none());
        assert!(outcome.output.contains("did not finish"));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn spawn_failure_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let result =
            Invocation::new(Path::new("/nonexistent/tool"), dir.path()).run(Duration::from_secs(1));
        assert!(matches!(result, Err(RunError::Spawn { .. })));
    }
}
