//! A server that offers again what the device has done already: a closed action, or a new action
//! for the bundle the device runs. Each deployment is installed once; nothing else is written
//! and the device never reboots for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use super::{Ddi, Sim, assert_hawkbit_feedback, offered, status_of};
use crate::boot::Side;
use crate::fleet::Next;

/// A device that installed, rebooted into and committed action `8`, whose result the server
/// has; `reboots` counts the daemon's reboots.
struct Committed {
    ddi: Ddi,
    sim: Sim,
    bundle: std::path::PathBuf,
    daemon: crate::fleet::Daemon,
    reboots: Arc<AtomicUsize>,
}

impl Committed {
    fn new() -> Self {
        let (ddi, sim, bundle) = offered("8", json!({"download": "forced", "update": "forced"}));
        let reboots = Arc::new(AtomicUsize::new(0));
        let counter = reboots.clone();
        let mut daemon = sim.daemon(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        // Installs and reboots; then settles (closed/success) and polls again.
        assert_eq!(daemon.run_once().unwrap(), Next::Sleep(Duration::ZERO));
        daemon.run_once().unwrap();
        let c = Committed {
            ddi,
            sim,
            bundle,
            daemon,
            reboots,
        };
        assert_eq!(c.reboots(), 1);
        assert_eq!(c.finals("8").len(), 2, "closed, then answered again");
        c
    }

    fn reboots(&self) -> usize {
        self.reboots.load(Ordering::SeqCst)
    }

    /// The `closed` feedback sent for action `id`.
    fn finals(&self, id: &str) -> Vec<serde_json::Value> {
        let feedback = self
            .ddi
            .bodies("POST", &format!("/deploymentBase/{id}/feedback"));
        feedback.iter().for_each(assert_hawkbit_feedback);
        feedback
            .into_iter()
            .filter(|f| status_of(f).0 == "closed")
            .collect()
    }

    fn artifact_requests(&self) -> usize {
        self.ddi
            .requests()
            .iter()
            .filter(|r| r.path.contains("/artifacts/"))
            .count()
    }

    /// The device's journal is as the commit of action 8 left it.
    fn assert_untouched(&self) {
        let (state, booted) = self.sim.state();
        assert_eq!(booted, Side::B);
        assert!(state.update.is_none(), "{state:?}");
        assert_eq!(
            state.committed.map(|r| r.version.to_string()).as_deref(),
            Some("2.0.0")
        );
    }
}

#[test]
fn a_closed_action_offered_again_gets_its_result_again_and_never_runs_twice() {
    let mut c = Committed::new();
    let downloads = c.artifact_requests();
    for _ in 0..3 {
        c.daemon.run_once().unwrap();
    }
    // A new daemon process (after a restart) remembers too.
    let mut daemon = c.sim.daemon(|| panic!("no reboot for a closed action"));
    daemon.run_once().unwrap();

    assert_eq!(c.reboots(), 1);
    assert_eq!(c.artifact_requests(), downloads, "nothing downloaded again");
    c.assert_untouched();
    let finals = c.finals("8");
    assert_eq!(finals.len(), 6);
    for f in &finals {
        assert_eq!(status_of(f), ("closed", "success"));
        assert_eq!(f["status"]["details"], finals[0]["status"]["details"]);
    }
    assert!(
        finals[0]["status"]["details"][0]
            .as_str()
            .unwrap()
            .contains("committed"),
        "{}",
        finals[0]
    );
    assert!(
        c.ddi
            .bodies("POST", "/deploymentBase/8/feedback")
            .iter()
            .skip_while(|f| status_of(f).0 != "closed")
            .all(|f| status_of(f).0 == "closed"),
        "no install step reported after the close"
    );
}

#[test]
fn a_new_action_for_the_running_bundle_is_closed_as_installed_without_a_write_or_a_reboot() {
    let mut c = Committed::new();
    let slot_b = std::fs::read(c.sim.dir.path().join("rootfs.b")).unwrap();
    let slot_b_modified = std::fs::metadata(c.sim.dir.path().join("rootfs.b"))
        .unwrap()
        .modified()
        .unwrap();
    c.ddi.offer(
        "9",
        &c.bundle,
        json!({"download": "forced", "update": "forced"}),
    );
    c.daemon.run_once().unwrap();
    // Offered again once closed: answered, not re-run.
    c.daemon.run_once().unwrap();

    assert_eq!(c.reboots(), 1, "no reboot for a bundle the device runs");
    c.assert_untouched();
    let path = c.sim.dir.path().join("rootfs.b");
    assert_eq!(std::fs::read(&path).unwrap(), slot_b);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        slot_b_modified
    );
    let (state, _) = c.sim.state();
    let last = state.last_result.unwrap();
    assert_eq!(
        last.result,
        crate::install::record::Ending::Committed,
        "the last result is still the commit of action 8"
    );
    let finals = c.finals("9");
    assert_eq!(finals.len(), 2, "{finals:?}");
    for f in &finals {
        assert_eq!(status_of(f), ("closed", "success"));
        assert_eq!(
            f["status"]["details"],
            json!([
                "acme-os 2.0.0 is already installed and running in slot b; nothing was written and no reboot is needed"
            ])
        );
    }
}
