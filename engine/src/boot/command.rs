//! The `command` backend: an operator-provided program speaks for the bootloader.
//!
//! The program is run as `ARGV... VERB [SLOT]`, with no stdin:
//!
//! | verb                | prints            | does                                          |
//! |---------------------|-------------------|-----------------------------------------------|
//! | `get-primary`       | `a` or `b`        |                                               |
//! | `get-trial`         | `a`, `b`, `none`  |                                               |
//! | `get-booted`        | `a`, `b`, `unknown` |                                             |
//! | `set-trial SLOT`    |                   | the next boot tries SLOT once                 |
//! | `commit SLOT`       |                   | SLOT becomes primary, any trial is cleared    |
//! | `cancel-trial`      |                   | a pending trial is cleared                    |
//!
//! Exit status 0 means success; anything else is an error whose message carries the program's
//! stderr (the first few KiB). The program runs in its own process group; when it overruns the
//! timeout the whole group is killed, so a stuck helper it started cannot linger either.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::{BootBackend, BootError, Side};

/// The timeout when `[boot]` gives none.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the program's stdout and stderr is kept.
const OUTPUT_CAP: usize = 4096;
/// How long to wait for the output pipes to close once the program has exited.
const PIPE_GRACE: Duration = Duration::from_secs(1);

pub(crate) struct CommandBackend {
    argv: Vec<String>,
    timeout: Duration,
}

/// Reads one of the child's pipes on a thread, keeping the first [`OUTPUT_CAP`] bytes and
/// draining the rest so that the child never blocks on a full pipe.
struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    truncated: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
}

impl Capture {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Capture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let truncated = Arc::new(AtomicBool::new(false));
        let (tx, done) = mpsc::channel();
        if let Some(mut pipe) = pipe {
            let (buf, truncated) = (Arc::clone(&buf), Arc::clone(&truncated));
            thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut buf = buf.lock().unwrap_or_else(|p| p.into_inner());
                            let room = OUTPUT_CAP.saturating_sub(buf.len());
                            if n > room {
                                truncated.store(true, Ordering::Relaxed);
                            }
                            buf.extend_from_slice(&chunk[..n.min(room)]);
                        }
                    }
                }
                let _ = tx.send(());
            });
        }
        Capture {
            buf,
            truncated,
            done,
        }
    }

    /// What was captured, once the pipe closed or `grace` passed.
    fn finish(self, grace: Duration) -> String {
        let _ = self.done.recv_timeout(grace);
        let buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        if self.truncated.load(Ordering::Relaxed) {
            text.push_str(" [… truncated]");
        }
        text
    }
}

/// Kill the program and everything in its process group, then reap it.
fn kill_group(child: &mut Child) {
    // std has no killpg; kill(1) sends to a process group given as a negative id.
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

impl CommandBackend {
    pub(crate) fn new(argv: &[String], timeout: Option<&str>) -> Result<CommandBackend, BootError> {
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(BootError::InvalidConfig(
                "`command` is empty; give the program and any leading arguments, e.g. \
                 command = [\"/usr/libexec/acme-boot\"]"
                    .into(),
            ));
        }
        let timeout = match timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => humantime::parse_duration(t).map_err(|e| {
                BootError::InvalidConfig(format!(
                    "timeout = {t:?} is not a duration ({e}); write e.g. \"30s\""
                ))
            })?,
        };
        if timeout.is_zero() {
            return Err(BootError::InvalidConfig(
                "timeout must be more than 0s".into(),
            ));
        }
        Ok(CommandBackend {
            argv: argv.to_vec(),
            timeout,
        })
    }

    /// Run `ARGV... args`; its stdout (first few KiB) if it exits with status 0.
    fn run(&self, args: &[&str]) -> Result<String, BootError> {
        let shown = self
            .argv
            .iter()
            .map(String::as_str)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let fail = |problem: String, stderr: String| BootError::Command {
            command: shown.clone(),
            problem,
            stderr,
        };
        tracing::debug!(command = %shown, "running boot command");
        let mut child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                fail(
                    format!("could not be started: {e}; check `command` in [boot]"),
                    String::new(),
                )
            })?;
        let stdout = Capture::start(child.stdout.take());
        let stderr = Capture::start(child.stderr.take());
        let deadline = Instant::now() + self.timeout;
        let mut nap = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => {
                    kill_group(&mut child);
                    return Err(fail(
                        format!("could not be waited for: {e}"),
                        stderr.finish(PIPE_GRACE),
                    ));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                kill_group(&mut child);
                return Err(fail(
                    format!(
                        "did not finish within {} and was killed; fix the program or raise \
                         `timeout` in [boot]",
                        humantime::format_duration(self.timeout)
                    ),
                    stderr.finish(PIPE_GRACE),
                ));
            }
            thread::sleep(nap.min(deadline - now));
            nap = (nap * 2).min(Duration::from_millis(50));
        };
        let out = stdout.finish(PIPE_GRACE);
        let err = stderr.finish(PIPE_GRACE);
        if !status.success() {
            return Err(fail(format!("failed ({status})"), err));
        }
        Ok(out)
    }

    /// Run a query verb that prints a slot or `none_word`.
    fn query(&self, verb: &str, none_word: Option<&str>) -> Result<Option<Side>, BootError> {
        let out = self.run(&[verb])?;
        let answer = out.trim();
        if none_word.is_some_and(|w| answer.eq_ignore_ascii_case(w)) {
            return Ok(None);
        }
        answer.parse().map(Some).map_err(|_| BootError::Command {
            command: format!("{} {verb}", self.argv.join(" ")),
            problem: format!(
                "printed {answer:?}; expected a or b{}",
                none_word.map(|w| format!(" or {w}")).unwrap_or_default()
            ),
            stderr: String::new(),
        })
    }
}

impl BootBackend for CommandBackend {
    fn name(&self) -> &'static str {
        "command"
    }

    fn primary(&self) -> Result<Side, BootError> {
        Ok(self.query("get-primary", None)?.unwrap_or(Side::A))
    }

    fn pending_trial(&self) -> Result<Option<Side>, BootError> {
        self.query("get-trial", Some("none"))
    }

    fn set_trial(&mut self, slot: Side) -> Result<(), BootError> {
        tracing::info!(backend = "command", %slot, "setting one-shot trial boot");
        self.run(&["set-trial", slot.as_str()]).map(drop)
    }

    fn commit(&mut self, slot: Side) -> Result<(), BootError> {
        tracing::info!(backend = "command", %slot, "committing slot as primary");
        self.run(&["commit", slot.as_str()]).map(drop)
    }

    fn cancel_trial(&mut self) -> Result<(), BootError> {
        tracing::info!(backend = "command", "cancelling pending trial boot");
        self.run(&["cancel-trial"]).map(drop)
    }

    fn booted(&self) -> Result<Option<Side>, BootError> {
        self.query("get-booted", Some("unknown"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{BootConfig, open};
    use super::*;

    /// A bootloader helper in shell keeping its state in files under its directory.
    const SCRIPT: &str = r#"#!/bin/sh
d="$1"; shift
echo "$*" >> "$d/log"
case "$1" in
  get-primary) cat "$d/primary" 2>/dev/null || echo a ;;
  get-trial) cat "$d/trial" 2>/dev/null || echo none ;;
  get-booted) cat "$d/booted" 2>/dev/null || echo unknown ;;
  set-trial) echo "$2" > "$d/trial" ;;
  commit) echo "$2" > "$d/primary"; rm -f "$d/trial" ;;
  cancel-trial) rm -f "$d/trial" ;;
  *) echo "unknown verb $1" >&2; exit 2 ;;
esac
"#;

    fn script(dir: &Path, body: &str) -> Vec<String> {
        let path = dir.join("boot.sh");
        std::fs::write(&path, body).unwrap();
        vec![
            "/bin/sh".into(),
            path.display().to_string(),
            dir.display().to_string(),
        ]
    }

    fn backend(command: Vec<String>, timeout: Option<&str>) -> Box<dyn BootBackend> {
        open(&BootConfig::Command {
            command,
            timeout: timeout.map(str::to_string),
        })
        .unwrap()
    }

    #[test]
    fn round_trip_through_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = backend(script(dir.path(), SCRIPT), None);
        assert_eq!(b.name(), "command");
        assert_eq!(b.primary().unwrap(), Side::A);
        assert_eq!(b.pending_trial().unwrap(), None);
        assert_eq!(b.booted().unwrap(), None);
        b.set_trial(Side::B).unwrap();
        assert_eq!(b.pending_trial().unwrap(), Some(Side::B));
        b.cancel_trial().unwrap();
        b.cancel_trial().unwrap();
        assert_eq!(b.pending_trial().unwrap(), None);
        b.set_trial(Side::B).unwrap();
        std::fs::write(dir.path().join("booted"), "B\n").unwrap();
        assert_eq!(b.booted().unwrap(), Some(Side::B));
        b.commit(Side::B).unwrap();
        b.commit(Side::B).unwrap();
        assert_eq!(b.primary().unwrap(), Side::B);
        assert_eq!(b.pending_trial().unwrap(), None);
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        let changes: Vec<&str> = log.lines().filter(|l| !l.starts_with("get-")).collect();
        assert_eq!(
            changes,
            [
                "set-trial b",
                "cancel-trial",
                "cancel-trial",
                "set-trial b",
                "commit b",
                "commit b"
            ]
        );
    }

    #[test]
    fn failure_carries_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = backend(
            script(
                dir.path(),
                "echo 'env partition is read-only' >&2\nexit 3\n",
            ),
            None,
        );
        let err = b.set_trial(Side::B).unwrap_err().to_string();
        assert!(err.contains("set-trial b"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(
            err.contains("its stderr: env partition is read-only"),
            "{err}"
        );
    }

    #[test]
    fn bad_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(script(dir.path(), "echo maybe\n"), None);
        let err = b.primary().unwrap_err().to_string();
        assert!(
            err.contains("get-primary") && err.contains("printed \"maybe\"; expected a or b"),
            "{err}"
        );
        let err = b.pending_trial().unwrap_err().to_string();
        assert!(err.contains("expected a or b or none"), "{err}");
        let err = b.booted().unwrap_err().to_string();
        assert!(err.contains("expected a or b or unknown"), "{err}");
    }

    #[test]
    fn huge_stderr_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(
            script(
                dir.path(),
                "i=0; while [ $i -lt 3000 ]; do echo 'noise noise noise noise' >&2; i=$((i+1)); done; exit 1\n",
            ),
            None,
        );
        let err = b.primary().unwrap_err().to_string();
        assert!(err.len() < OUTPUT_CAP + 500, "{} bytes", err.len());
        assert!(err.ends_with("[… truncated]"), "{err}");
    }

    #[test]
    fn timeout_kills_the_program_and_its_children() {
        let dir = tempfile::tempdir().unwrap();
        // The shell forks `sleep`, which inherits stdout and stderr.
        let b = backend(
            script(dir.path(), "echo started >&2\nsleep 30\necho a\n"),
            Some("300ms"),
        );
        let start = Instant::now();
        let err = b.primary().unwrap_err().to_string();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
        assert!(
            err.contains("did not finish within 300ms and was killed"),
            "{err}"
        );
        assert!(err.contains("its stderr: started"), "{err}");
    }

    #[test]
    fn bad_configuration_is_refused() {
        let err = open(&BootConfig::Command {
            command: vec![],
            timeout: None,
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("`command` is empty"), "{err}");
        let err = open(&BootConfig::Command {
            command: vec!["x".into()],
            timeout: Some("soon".into()),
        })
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("timeout = \"soon\" is not a duration"),
            "{err}"
        );
        let b = backend(vec!["/nonexistent/boot-helper".into()], None);
        let err = b.primary().unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/boot-helper get-primary` could not be started"),
            "{err}"
        );
    }
}
