//! Feedback the server has not accepted yet, kept on disk (`<data_dir>/fleet/outbox.json`) so
//! that a result survives a network outage, a daemon restart and a reboot. Entries go out in
//! the order they were made (`proceeding` before `closed`), first thing in every cycle, and
//! leave the outbox only once the server answered 2xx — or with a 4xx that retrying cannot
//! change (the server no longer knows the action), which is logged and dropped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use airlock_ddi::ActionFeedback;

use super::FleetError;
use super::client::ClientError;

/// One feedback message waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Where to POST it: `…/deploymentBase/{id}/feedback` or `…/cancelAction/{id}/feedback`.
    pub href: String,
    pub feedback: ActionFeedback,
}

pub struct Outbox {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl Outbox {
    /// Opens the outbox in `dir`. An unreadable file is set aside (`outbox.json.corrupt`)
    /// rather than stopping the daemon: atomic writes make that a disk fault, not a state.
    pub fn open(dir: &Path) -> Result<Self, FleetError> {
        let path = dir.join("outbox.json");
        let entries = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(entries) => entries,
                Err(e) => {
                    let aside = dir.join("outbox.json.corrupt");
                    warn!(
                        "{} is unreadable ({e}); moved to {} and starting with an empty outbox",
                        path.display(),
                        aside.display()
                    );
                    std::fs::rename(&path, &aside).map_err(|e| FleetError::store(&path, e))?;
                    Vec::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(FleetError::store(&path, e)),
        };
        Ok(Self { path, entries })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Adds an entry, durably.
    pub fn push(&mut self, entry: Entry) -> Result<(), FleetError> {
        self.entries.push(entry);
        self.save()
    }

    /// Sends entries in order until one fails for a reason worth retrying (that error is
    /// returned and it and everything after it stay). Returns how many were delivered.
    pub fn flush(
        &mut self,
        send: &mut dyn FnMut(&Entry) -> Result<(), ClientError>,
    ) -> Result<usize, FleetError> {
        let mut delivered = 0;
        let mut result = Ok(());
        while let Some(entry) = self.entries.first() {
            match send(entry) {
                Ok(()) => {
                    info!(
                        href = %entry.href,
                        execution = ?entry.feedback.status.execution,
                        finished = ?entry.feedback.status.result.finished,
                        "feedback delivered"
                    );
                    delivered += 1;
                }
                Err(e) if e.is_hopeless() => {
                    warn!("dropping feedback the server will never accept: {e}");
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            self.entries.remove(0);
            // Saved after each one: a crash re-sends at most one message, never loses one.
            self.save()?;
        }
        result.map_err(FleetError::Client)?;
        Ok(delivered)
    }

    fn save(&self) -> Result<(), FleetError> {
        let json = serde_json::to_vec_pretty(&self.entries)
            .map_err(|e| FleetError::store(&self.path, std::io::Error::other(e)))?;
        crate::fsutil::atomic_write(&self.path, &json).map_err(|e| FleetError::store(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_ddi::{Execution, Finished};

    fn entry(n: u32) -> Entry {
        Entry {
            href: format!("http://h/deploymentBase/{n}/feedback"),
            feedback: ActionFeedback::new(
                Execution::Closed,
                Finished::Success,
                vec![format!("{n}")],
            ),
        }
    }

    fn offline() -> ClientError {
        ClientError::Offline {
            url: "u".into(),
            reason: "connection refused".into(),
        }
    }

    #[test]
    fn entries_survive_reopening_until_delivered_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        outbox.push(entry(1)).unwrap();
        outbox.push(entry(2)).unwrap();
        let err = outbox.flush(&mut |_| Err(offline())).unwrap_err();
        assert!(err.to_string().contains("connection refused"), "{err}");
        drop(outbox);

        let mut outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.entries(), [entry(1), entry(2)]);
        // The first is delivered, then the server goes away: the second stays.
        let mut calls = 0;
        outbox
            .flush(&mut |_| {
                calls += 1;
                if calls == 1 { Ok(()) } else { Err(offline()) }
            })
            .unwrap_err();
        assert_eq!(Outbox::open(dir.path()).unwrap().entries(), [entry(2)]);

        let mut sent = Vec::new();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(
            outbox
                .flush(&mut |e| {
                    sent.push(e.clone());
                    Ok(())
                })
                .unwrap(),
            1
        );
        assert_eq!(sent, [entry(2)]);
        assert!(Outbox::open(dir.path()).unwrap().entries().is_empty());
    }

    #[test]
    fn hopeless_entries_are_dropped_and_the_rest_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        outbox.push(entry(1)).unwrap();
        outbox.push(entry(2)).unwrap();
        let mut sent = Vec::new();
        let delivered = outbox
            .flush(&mut |e| {
                if e.href.contains("/1/") {
                    return Err(ClientError::Server {
                        url: e.href.clone(),
                        status: 404,
                        message: "gone".into(),
                    });
                }
                sent.push(e.href.clone());
                Ok(())
            })
            .unwrap();
        assert_eq!((delivered, sent.len()), (1, 1));
        assert!(outbox.entries().is_empty());

        // A refused token is not hopeless: the device may be admitted later.
        outbox.push(entry(3)).unwrap();
        outbox
            .flush(&mut |e| {
                Err(ClientError::Unauthorized {
                    url: e.href.clone(),
                    status: 401,
                })
            })
            .unwrap_err();
        assert_eq!(outbox.entries(), [entry(3)]);
    }

    #[test]
    fn a_corrupt_outbox_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("outbox.json"), b"{not json").unwrap();
        assert!(Outbox::open(dir.path()).unwrap().entries().is_empty());
        assert!(dir.path().join("outbox.json.corrupt").exists());
    }
}
