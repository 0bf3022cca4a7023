//! `maintenance-window`: a hook that lets an update go on only inside a daily window.
//!
//! Config (`[plugins.NAME.config]`):
//!
//! | key      | default | meaning                                                          |
//! |----------|---------|------------------------------------------------------------------|
//! | `window` | —       | `"HH:MM-HH:MM"` in UTC, start inclusive, end exclusive; may wrap midnight (`"22:00-02:00"`); `24:00` is allowed as an end |
//!
//! Inside the window the hook answers proceed; outside it answers retry-later with the
//! seconds until the window next opens. The time is the WASI wall clock, which the engine
//! passes through from the device (UTC, like every Unix clock).

use std::time::{SystemTime, UNIX_EPOCH};

use airlock_sdk::{Context, Hook, HookResult, config, log};

const DAY: u32 = 24 * 60 * 60;

struct MaintenanceWindow;

impl Hook for MaintenanceWindow {
    fn run(ctx: Context) -> HookResult {
        let window = match config::require("window").and_then(|w| Window::parse(&w)) {
            Ok(window) => window,
            Err(reason) => {
                log::error!("abort: {reason}");
                return HookResult::Abort(reason);
            }
        };
        let now = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since_epoch) => (since_epoch.as_secs() % u64::from(DAY)) as u32,
            Err(_) => {
                let reason = "the wall clock is before 1970; cannot place it in the window";
                log::error!("abort: {reason}");
                return HookResult::Abort(reason.into());
            }
        };
        let answer = window.decide(now);
        match &answer {
            HookResult::Proceed => log::info!(
                "{} at {}: {} UTC is inside the window {window}: proceed",
                ctx.bundle,
                ctx.stage,
                clock(now)
            ),
            HookResult::RetryLater(wait) => log::info!(
                "{} at {}: {} UTC is outside the window {window}: retry in {wait} s",
                ctx.bundle,
                ctx.stage,
                clock(now)
            ),
            HookResult::Abort(_) => {}
        }
        answer
    }
}

airlock_sdk::export_hook!(MaintenanceWindow);

/// A daily window, as seconds since midnight UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: u32,
    end: u32,
}

impl Window {
    fn parse(text: &str) -> Result<Window, String> {
        let bad = |why: &str| {
            format!("config key `window` = {text:?}: {why}; expected e.g. \"02:00-04:00\" (UTC)")
        };
        let (start, end) = text
            .trim()
            .split_once('-')
            .ok_or_else(|| bad("no `-` between start and end"))?;
        let start = time_of_day(start).map_err(|e| bad(&e))?;
        let end = time_of_day(end).map_err(|e| bad(&e))?;
        if start == DAY {
            return Err(bad("24:00 can only end a window"));
        }
        if start == end {
            return Err(bad("the window is empty (start equals end)"));
        }
        Ok(Window { start, end })
    }

    /// Whether `now` (seconds since midnight) is inside the window.
    fn contains(self, now: u32) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&now)
        } else {
            // Wraps midnight: 22:00-02:00 is 22:00..24:00 and 00:00..02:00.
            now >= self.start || now < self.end
        }
    }

    fn decide(self, now: u32) -> HookResult {
        if self.contains(now) {
            HookResult::Proceed
        } else {
            HookResult::RetryLater((self.start + DAY - now) % DAY)
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{} UTC", clock(self.start), clock(self.end))
    }
}

/// `HH:MM` (or `HH:MM:SS`) as seconds since midnight; `24:00` is the end of the day.
fn time_of_day(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
        return Err(format!("{text:?} is not HH:MM"));
    }
    let mut numbers = [0u32; 3];
    for (number, part) in numbers.iter_mut().zip(&parts) {
        *number = part.parse().map_err(|_| format!("{text:?} is not HH:MM"))?;
    }
    let [hours, minutes, seconds] = numbers;
    if minutes > 59 || seconds > 59 || hours > 24 || (hours == 24 && minutes + seconds > 0) {
        return Err(format!("{text:?} is not a time of day"));
    }
    Ok(hours * 3600 + minutes * 60 + seconds)
}

fn clock(seconds: u32) -> String {
    format!("{:02}:{:02}", seconds / 3600, seconds % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hh: u32, mm: u32) -> u32 {
        hh * 3600 + mm * 60
    }

    #[test]
    fn plain_window() {
        let w = Window::parse("02:00-04:00").unwrap();
        assert_eq!(w.decide(at(2, 0)), HookResult::Proceed);
        assert_eq!(w.decide(at(3, 59)), HookResult::Proceed);
        assert_eq!(w.decide(at(4, 0)), HookResult::RetryLater(22 * 3600));
        assert_eq!(w.decide(at(1, 0)), HookResult::RetryLater(3600));
        assert_eq!(w.decide(at(1, 59) + 59), HookResult::RetryLater(1));
    }

    #[test]
    fn window_wrapping_midnight() {
        let w = Window::parse(" 22:30 - 02:00 ").unwrap();
        assert_eq!(w.decide(at(23, 0)), HookResult::Proceed);
        assert_eq!(w.decide(at(0, 0)), HookResult::Proceed);
        assert_eq!(w.decide(at(1, 59)), HookResult::Proceed);
        assert_eq!(w.decide(at(2, 0)), HookResult::RetryLater(at(20, 30)));
        assert_eq!(w.decide(at(22, 0)), HookResult::RetryLater(1800));
        let until_midnight = Window::parse("22:00-24:00").unwrap();
        assert_eq!(until_midnight.decide(at(23, 59)), HookResult::Proceed);
        assert_eq!(until_midnight.decide(0), HookResult::RetryLater(at(22, 0)));
        let all_day = Window::parse("00:00-24:00").unwrap();
        assert_eq!(all_day.decide(0), HookResult::Proceed);
        assert_eq!(all_day.decide(DAY - 1), HookResult::Proceed);
    }

    #[test]
    fn bad_windows_are_refused_with_the_reason() {
        for (text, why) in [
            ("02:00", "no `-`"),
            ("2-4", "not HH:MM"),
            ("25:00-26:00", "not a time of day"),
            ("02:60-03:00", "not a time of day"),
            ("03:00-03:00", "empty"),
            ("24:00-01:00", "can only end"),
        ] {
            let err = Window::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.starts_with("config key `window`"), "{err}");
        }
    }

    #[test]
    fn missing_config_aborts() {
        airlock_sdk::testing::reset();
        let ctx = Context {
            bundle: airlock_sdk::Release {
                name: "rootfs".into(),
                version: "1.2.0".into(),
            },
            current: None,
            device_type: "sim".into(),
            stage: airlock_sdk::Stage::InstallEnter,
            payload: None,
            slot: None,
        };
        assert!(
            matches!(MaintenanceWindow::run(ctx), HookResult::Abort(r) if r.contains("`window`"))
        );
    }
}
