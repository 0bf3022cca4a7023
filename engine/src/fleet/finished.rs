//! The deployments the daemon closed lately, with the final feedback it sent, kept in
//! `<data_dir>/fleet/finished.json`. A server that offers one of them again (it lost the
//! feedback, or it keeps offering closed actions) gets the same answer again: an action is never
//! run twice, so a server's mistake cannot make the device write a slot and reboot in a loop.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::warn;

use airlock_ddi::ActionFeedback;

use super::FleetError;
use super::action::JsonFile;

/// How many closed actions are remembered: far more than a server re-offers at once.
const KEEP: usize = 32;

/// A closed action and the final feedback it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    pub id: String,
    pub feedback: ActionFeedback,
}

pub struct FinishedActions {
    file: JsonFile<Vec<Closed>>,
    closed: Vec<Closed>,
}

impl FinishedActions {
    /// Opens the list in `dir`. An unreadable list is started afresh: forgetting costs at most
    /// a repeated answer, and a bundle the device already runs is recognised anyway.
    pub fn open(dir: &Path) -> Self {
        let file = JsonFile::new(dir.join("finished.json"));
        let closed = file.load().unwrap_or_else(|e| {
            warn!("{e}; starting with no record of closed actions");
            None
        });
        Self {
            file,
            closed: closed.unwrap_or_default(),
        }
    }

    /// The final feedback of action `id`, if the daemon closed it.
    pub fn get(&self, id: &str) -> Option<&Closed> {
        self.closed.iter().find(|c| c.id == id)
    }

    /// Remembers that action `id` closed with `feedback`, durably; the oldest go beyond
    /// [`KEEP`].
    pub fn record(&mut self, id: &str, feedback: &ActionFeedback) -> Result<(), FleetError> {
        self.closed.retain(|c| c.id != id);
        self.closed.push(Closed {
            id: id.to_string(),
            feedback: feedback.clone(),
        });
        let excess = self.closed.len().saturating_sub(KEEP);
        self.closed.drain(..excess);
        self.file.save(&self.closed)
    }
}

#[cfg(test)]
mod tests {
    use airlock_ddi::{Execution, Finished};

    use super::*;

    fn closed(detail: &str) -> ActionFeedback {
        ActionFeedback::new(Execution::Closed, Finished::Success, vec![detail.into()])
    }

    #[test]
    fn closed_actions_survive_a_restart_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut finished = FinishedActions::open(dir.path());
        assert!(finished.get("1").is_none());
        for n in 0..=KEEP {
            finished
                .record(&n.to_string(), &closed(&n.to_string()))
                .unwrap();
        }
        finished.record("5", &closed("again")).unwrap();
        let again = FinishedActions::open(dir.path());
        assert!(again.get("0").is_none(), "the oldest is forgotten");
        assert_eq!(again.get("1").unwrap().feedback, closed("1"));
        assert_eq!(again.get("5").unwrap().feedback, closed("again"));
        assert_eq!(again.closed.len(), KEEP);
    }

    #[test]
    fn an_unreadable_list_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("finished.json"), b"{").unwrap();
        let mut finished = FinishedActions::open(dir.path());
        assert!(finished.get("1").is_none());
        finished.record("1", &closed("ok")).unwrap();
        assert!(FinishedActions::open(dir.path()).get("1").is_some());
    }
}
