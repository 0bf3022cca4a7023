//! What to do with a deployment the server offers: install now or wait, and which artifact is
//! the bundle. Pure functions of the server's message.
//!
//! - `download = skip`: wait; the server has not released the update yet.
//! - `update = skip` (download only): wait too. Airlock streams a bundle straight into the
//!   inactive slot while verifying it, so there is no "downloaded, not installed" state to
//!   stop in; the install happens once the server allows the update.
//! - `maintenanceWindow = unavailable`: wait for the server's window.
//! - `update = attempt`: the device may postpone. It waits for its own `[fleet]
//!   maintenance_window` when it has one; `forced` installs at once, whatever that window.
//!   Either way the device's hooks (`download-enter`, `reboot-enter`, …) can still say
//!   "later": they guard the device itself (a low battery, a machine at work).

use airlock_ddi::{Artifact, Chunk, Deployment, HandlingType, MaintenanceWindow};

use crate::config::DailyWindow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Install,
    /// Not now, and why (reported once as `scheduled`).
    Wait(String),
}

/// Install `d` now (Unix time `now`), or wait; `window` is the device's own maintenance window.
pub fn decide(d: &Deployment, window: Option<DailyWindow>, now: u64) -> Decision {
    if d.download == HandlingType::Skip {
        return Decision::Wait("the server asks not to download yet (download: skip)".into());
    }
    if d.update == HandlingType::Skip {
        return Decision::Wait(
            "the server allows a download only (update: skip); Airlock installs while it downloads, so it waits until the update is allowed".into(),
        );
    }
    if d.maintenance_window == Some(MaintenanceWindow::Unavailable) {
        return Decision::Wait("waiting for the maintenance window".into());
    }
    if let Some(window) = window
        && d.update == HandlingType::Attempt
        && !window.contains(now)
    {
        return Decision::Wait(format!(
            "outside this device's maintenance window ({window}); the server lets it postpone this update (update: attempt), so it installs when the window opens"
        ));
    }
    Decision::Install
}

/// The deployment's Airlock bundle: the first artifact named `*.airlock`, and its URL.
pub fn bundle_artifact(d: &Deployment) -> Result<(&Chunk, &Artifact, &str), String> {
    let found = d.chunks.iter().find_map(|c| {
        c.artifacts
            .iter()
            .find(|a| a.filename.ends_with(".airlock"))
            .map(|a| (c, a))
    });
    let Some((chunk, artifact)) = found else {
        let names: Vec<&str> = d
            .chunks
            .iter()
            .flat_map(|c| c.artifacts.iter().map(|a| a.filename.as_str()))
            .collect();
        return Err(format!(
            "the deployment has no .airlock artifact (it has: {}); upload the signed bundle as an artifact of the software module",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ));
    };
    let url = artifact.links.best().ok_or_else(|| {
        format!(
            "artifact {} has no download link (neither download nor download-http)",
            artifact.filename
        )
    })?;
    Ok((chunk, artifact, url))
}

/// Progress feedback in whole percent, at most once per 10 %: enough for a dashboard, few
/// enough requests not to slow the download.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<u64>,
}

impl Throttle {
    /// The percent to report for `done` of `total`, if it is time to.
    pub fn next(&mut self, done: u64, total: u64) -> Option<u64> {
        if total == 0 {
            return None;
        }
        let percent = (u128::from(done.min(total)) * 100 / u128::from(total)) as u64;
        let step = percent / 10;
        if self.last.is_some_and(|l| step <= l) {
            return None;
        }
        self.last = Some(step);
        Some(percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_ddi::{ArtifactLinks, Hashes, Link};

    fn deployment(
        download: HandlingType,
        update: HandlingType,
        window: Option<MaintenanceWindow>,
    ) -> Deployment {
        Deployment {
            download,
            update,
            maintenance_window: window,
            chunks: vec![Chunk {
                part: "os".into(),
                version: "1.3.0".into(),
                name: "acme-os".into(),
                artifacts: vec![
                    artifact("README.txt", Some("http://h/readme")),
                    artifact("acme-os-1.3.0.airlock", Some("http://h/bundle")),
                ],
                metadata: None,
            }],
        }
    }

    fn artifact(name: &str, http: Option<&str>) -> Artifact {
        Artifact {
            filename: name.into(),
            hashes: Hashes::default(),
            size: 3,
            links: ArtifactLinks {
                download_http: http.map(Link::new),
                ..ArtifactLinks::default()
            },
        }
    }

    fn decide_now(d: &Deployment) -> Decision {
        decide(d, None, 0)
    }

    #[test]
    fn an_attempt_waits_for_the_device_window_and_forced_does_not() {
        use HandlingType::*;
        let window = DailyWindow::parse("02:00-04:00").ok();
        let (inside, outside) = (3 * 3600, 12 * 3600);
        let attempt = deployment(Attempt, Attempt, None);
        assert_eq!(decide(&attempt, window, inside), Decision::Install);
        assert_eq!(decide(&attempt, None, outside), Decision::Install);
        match decide(&attempt, window, outside) {
            Decision::Wait(why) => assert!(
                why.contains("outside this device's maintenance window (02:00-04:00 UTC)"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        let forced = deployment(Forced, Forced, None);
        assert_eq!(decide(&forced, window, outside), Decision::Install);
    }

    #[test]
    fn handling_types_and_windows_decide() {
        use HandlingType::*;
        use MaintenanceWindow::*;
        assert_eq!(
            decide_now(&deployment(Forced, Forced, None)),
            Decision::Install
        );
        assert_eq!(
            decide_now(&deployment(Attempt, Attempt, None)),
            Decision::Install
        );
        assert_eq!(
            decide_now(&deployment(Forced, Attempt, Some(Available))),
            Decision::Install
        );
        for (d, u, w, why) in [
            (Skip, Forced, None, "download: skip"),
            (Forced, Skip, None, "update: skip"),
            (Attempt, Attempt, Some(Unavailable), "maintenance window"),
        ] {
            match decide_now(&deployment(d, u, w)) {
                Decision::Wait(text) => assert!(text.contains(why), "{text}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_bundle_is_the_airlock_artifact() {
        let d = deployment(HandlingType::Forced, HandlingType::Forced, None);
        let (chunk, artifact, url) = bundle_artifact(&d).unwrap();
        assert_eq!(
            (chunk.name.as_str(), artifact.filename.as_str(), url),
            ("acme-os", "acme-os-1.3.0.airlock", "http://h/bundle")
        );

        let mut d = deployment(HandlingType::Forced, HandlingType::Forced, None);
        d.chunks[0].artifacts.remove(1);
        let e = bundle_artifact(&d).unwrap_err();
        assert!(e.contains("README.txt") && e.contains(".airlock"), "{e}");

        let mut d = deployment(HandlingType::Forced, HandlingType::Forced, None);
        d.chunks[0].artifacts[1].links = ArtifactLinks::default();
        assert!(
            bundle_artifact(&d)
                .unwrap_err()
                .contains("no download link")
        );
    }

    #[test]
    fn progress_is_reported_every_ten_percent() {
        let mut t = Throttle::default();
        let reported: Vec<u64> = (0..=1000)
            .step_by(7)
            .filter_map(|d| t.next(d, 1000))
            .collect();
        assert_eq!(reported, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
        assert_eq!(t.next(1000, 1000), Some(100));
        assert_eq!(t.next(1000, 1000), None);
        assert_eq!(Throttle::default().next(5, 0), None);
    }
}
