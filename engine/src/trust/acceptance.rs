//! Whether a manifest whose signatures hold is meant for this device, now: its device type, its
//! expiry and the version floor. The device checks all three before it writes anything; the
//! server checks expiry when a bundle is uploaded.

use std::time::SystemTime;

use semver::Version;

/// What the acceptance rules read in a signed manifest.
#[derive(Debug, Clone, Copy)]
pub struct Claims<'a> {
    pub name: &'a str,
    pub version: &'a Version,
    /// The device types the bundle is for.
    pub compatible: &'a [String],
    /// After this time devices refuse the bundle; with the manifest's own spelling of it.
    pub expires: Option<(SystemTime, &'a str)>,
}

impl Claims<'_> {
    fn bundle(&self) -> String {
        format!("{} {}", self.name, self.version)
    }
}

/// A bundle is not for this device, or not any more.
#[derive(Debug, thiserror::Error)]
pub enum AcceptanceError {
    #[error(
        "bundle {bundle} is for device types [{compatible}], but this device is {device_type:?}; build the bundle with this device type in `compatible`"
    )]
    WrongDevice {
        bundle: String,
        compatible: String,
        device_type: String,
    },
    #[error("bundle {bundle} expired at {expires}; build and sign a fresh one")]
    Expired { bundle: String, expires: String },
    #[error(
        "bundle version {version} is older than the installed version {floor}; downgrades are refused (set [trust] allow_downgrade = true to allow them)"
    )]
    Downgrade { version: Version, floor: Version },
}

/// What a device accepts besides good signatures.
#[derive(Debug, Clone, Copy)]
pub struct Acceptance<'a> {
    /// `[device] type`.
    pub device_type: &'a str,
    /// The committed version: nothing older is installed, unless downgrades are allowed.
    pub floor: Option<&'a Version>,
    /// `[trust] allow_downgrade`.
    pub allow_downgrade: bool,
}

impl Acceptance<'_> {
    /// Checks device type, expiry (against `now`) and version floor, in that order.
    pub fn check(&self, claims: &Claims, now: SystemTime) -> Result<(), AcceptanceError> {
        if !claims.compatible.iter().any(|t| t == self.device_type) {
            return Err(AcceptanceError::WrongDevice {
                bundle: claims.bundle(),
                compatible: claims.compatible.join(", "),
                device_type: self.device_type.to_string(),
            });
        }
        check_unexpired(claims, now)?;
        if let Some(floor) = self.floor
            && claims.version < floor
            && !self.allow_downgrade
        {
            return Err(AcceptanceError::Downgrade {
                version: claims.version.clone(),
                floor: floor.clone(),
            });
        }
        Ok(())
    }
}

/// Refuses a bundle whose expiry is at or before `now`.
pub fn check_unexpired(claims: &Claims, now: SystemTime) -> Result<(), AcceptanceError> {
    match claims.expires {
        Some((at, written)) if at <= now => Err(AcceptanceError::Expired {
            bundle: claims.bundle(),
            expires: written.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn claims<'a>(version: &'a Version, compatible: &'a [String]) -> Claims<'a> {
        Claims {
            name: "os",
            version,
            compatible,
            expires: None,
        }
    }

    fn device(floor: Option<&Version>) -> Acceptance<'_> {
        Acceptance {
            device_type: "board",
            floor,
            allow_downgrade: false,
        }
    }

    #[test]
    fn a_bundle_for_another_device_type_is_refused_naming_both() {
        let v = Version::new(1, 0, 0);
        let types = vec!["other".to_string(), "third".to_string()];
        let err = device(None)
            .check(&claims(&v, &types), SystemTime::now())
            .unwrap_err();
        assert!(matches!(err, AcceptanceError::WrongDevice { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("[other, third]") && msg.contains("\"board\""),
            "{msg}"
        );
    }

    #[test]
    fn expiry_is_checked_against_the_given_time() {
        let v = Version::new(1, 0, 0);
        let types = vec!["board".to_string()];
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let c = Claims {
            expires: Some((at, "2033-05-18T03:33:20Z")),
            ..claims(&v, &types)
        };
        let before = at - Duration::from_secs(1);
        assert!(device(None).check(&c, before).is_ok());
        for now in [at, at + Duration::from_secs(1)] {
            let err = check_unexpired(&c, now).unwrap_err();
            assert_eq!(
                err.to_string(),
                "bundle os 1.0.0 expired at 2033-05-18T03:33:20Z; build and sign a fresh one"
            );
        }
    }

    #[test]
    fn an_older_version_is_refused_unless_downgrades_are_allowed() {
        let floor = Version::new(2, 0, 0);
        let types = vec!["board".to_string()];
        let older = Version::new(1, 9, 9);
        let now = SystemTime::now();
        let err = device(Some(&floor))
            .check(&claims(&older, &types), now)
            .unwrap_err();
        assert!(matches!(err, AcceptanceError::Downgrade { .. }), "{err}");
        let allowed = Acceptance {
            allow_downgrade: true,
            ..device(Some(&floor))
        };
        assert!(allowed.check(&claims(&older, &types), now).is_ok());
        // The same version again is no downgrade (a reinstall).
        assert!(
            device(Some(&floor))
                .check(&claims(&floor, &types), now)
                .is_ok()
        );
        assert!(device(None).check(&claims(&older, &types), now).is_ok());
    }
}
