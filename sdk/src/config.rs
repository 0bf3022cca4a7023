//! The plugin's own configuration: the `[plugins.NAME.config]` table of `airlock.toml`.
//!
//! Every value arrives as a string (numbers and booleans in their TOML spelling). The typed
//! getters parse it and, when it doesn't parse, return an error that names the key, the
//! value and what was expected, ready to hand back as a check's or hook's reason:
//!
//! ```
//! use std::time::Duration;
//!
//! use airlock_sdk::config;
//!
//! # airlock_sdk::testing::set_config(&[("url", "http://127.0.0.1/health")]);
//! fn settings() -> Result<(String, Duration, u16), String> {
//!     let url = config::require("url")?;
//!     let timeout = config::duration_or("timeout", Duration::from_secs(5))?;
//!     let status = config::parse_or("status", 200u16)?;
//!     Ok((url, timeout, status))
//! }
//! # assert_eq!(settings().unwrap().1, Duration::from_secs(5));
//! ```

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// The value of `key`, if set.
pub fn get(key: &str) -> Option<String> {
    crate::sys::config_get(key)
}

/// The value of `key`, or `default` if it is not set.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_owned())
}

/// The value of `key`; an error naming the key if it is not set.
pub fn require(key: &str) -> Result<String, String> {
    get(key).ok_or_else(|| format!("config key `{key}` is required but not set"))
}

/// Every key and value, sorted by key.
pub fn entries() -> Vec<(String, String)> {
    crate::sys::config_entries()
}

/// The value of `key` parsed with [`FromStr`], if set.
pub fn parse<T>(key: &str) -> Result<Option<T>, String>
where
    T: FromStr,
    T::Err: Display,
{
    typed(key, |value| value.parse::<T>().map_err(|e| e.to_string()))
}

/// The value of `key` parsed with [`FromStr`], or `default` if it is not set.
pub fn parse_or<T>(key: &str, default: T) -> Result<T, String>
where
    T: FromStr,
    T::Err: Display,
{
    Ok(parse(key)?.unwrap_or(default))
}

/// The value of `key` as a duration (`500ms`, `5s`, `2m`, `1h30m`), if set.
pub fn duration(key: &str) -> Result<Option<Duration>, String> {
    typed(key, parse_duration)
}

/// The value of `key` as a duration, or `default` if it is not set.
pub fn duration_or(key: &str, default: Duration) -> Result<Duration, String> {
    Ok(duration(key)?.unwrap_or(default))
}

/// The value of `key` as a number of bytes (`4096`, `512MiB`, `1.5GB`), if set.
pub fn bytes(key: &str) -> Result<Option<u64>, String> {
    typed(key, parse_bytes)
}

/// The value of `key` as a number of bytes, or `default` if it is not set.
pub fn bytes_or(key: &str, default: u64) -> Result<u64, String> {
    Ok(bytes(key)?.unwrap_or(default))
}

/// The value of `key` as a boolean (`true`/`false`, also `yes`/`no`, `on`/`off`, `1`/`0`), if
/// set.
pub fn flag(key: &str) -> Result<Option<bool>, String> {
    typed(key, parse_bool)
}

/// The value of `key` as a boolean, or `default` if it is not set.
pub fn flag_or(key: &str, default: bool) -> Result<bool, String> {
    Ok(flag(key)?.unwrap_or(default))
}

/// The value of `key` as a comma-separated list, each item trimmed, empty items dropped;
/// empty if the key is not set.
pub fn list(key: &str) -> Vec<String> {
    get(key).map(|value| split_list(&value)).unwrap_or_default()
}

fn typed<T>(key: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<Option<T>, String> {
    match get(key) {
        None => Ok(None),
        Some(value) => parse(value.trim())
            .map(Some)
            .map_err(|e| format!("config key `{key}` = {value:?}: {e}")),
    }
}

/// Splits a comma-separated list, trimming each item and dropping empty ones.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a duration: one or more `<number><unit>` parts, units `ms`, `s`, `m`, `h`, `d`
/// (`500ms`, `5s`, `1.5s`, `1h30m`, `2 min`). A bare number is refused: seconds or milliseconds?
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a duration such as 500ms, 5s, 2m or 1h30m";
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty; {EXPECTED}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let (number, after) = leading_number(rest);
        if number.is_empty() {
            return Err(format!("{text:?} is not a duration; {EXPECTED}"));
        }
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let seconds_per_unit = match unit {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            "" => {
                return Err(format!(
                    "{text:?} has no unit; write e.g. {number}s or {number}ms"
                ));
            }
            other => {
                return Err(format!(
                    "{text:?}: unknown unit {other:?}; use ms, s, m, h or d"
                ));
            }
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a duration; {EXPECTED}"))?;
        let part = Duration::try_from_secs_f64(value * seconds_per_unit)
            .map_err(|_| format!("{text:?} is out of range"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("{text:?} is out of range"))?;
        rest = after.trim_start();
    }
    Ok(total)
}

/// Parses a size in bytes: a number with an optional unit. `B`; binary `KiB`, `MiB`, `GiB`,
/// `TiB` (also `K`, `M`, `G`, `T` as `df` and systemd write them); decimal `kB`, `MB`, `GB`,
/// `TB`. Units are case-insensitive and may follow a space (`512 MiB`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    const EXPECTED: &str = "expected a size such as 4096, 512MiB or 2GB";
    let text = text.trim();
    let (number, unit) = leading_number(text);
    if number.is_empty() {
        return Err(format!("{text:?} is not a size; {EXPECTED}"));
    }
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?}; use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB"
            ));
        }
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(multiplier)
            .ok_or_else(|| format!("{text:?} is out of range"));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; {EXPECTED}"))?;
    let bytes = value * multiplier as f64;
    if !(0.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// Parses a boolean: `true`/`false` (TOML's spelling), also `yes`/`no`, `on`/`off`, `1`/`0`.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("{text:?} is not a boolean; expected true or false")),
    }
}

/// Splits `text` into its leading decimal number (digits and at most one dot) and the rest.
fn leading_number(text: &str) -> (&str, &str) {
    let mut seen_dot = false;
    let end = text
        .char_indices()
        .find(|&(_, c)| {
            if c == '.' && !seen_dot {
                seen_dot = true;
                false
            } else {
                !c.is_ascii_digit()
            }
        })
        .map_or(text.len(), |(i, _)| i);
    text.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2m 5s"), Ok(Duration::from_secs(125)));
        assert_eq!(parse_duration(" 1d "), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("5 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1..5s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("512 mib"), Ok(512 << 20));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("10kB"), Ok(10_000));
        assert!(parse_bytes("lots").is_err());
        assert!(
            parse_bytes("5 furlongs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(
            parse_bytes("99999999999TiB")
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn booleans_and_lists() {
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool("Off"), Ok(false));
        assert!(parse_bool("maybe").is_err());
        assert_eq!(
            split_list(" a.service, ,b.service,"),
            ["a.service", "b.service"]
        );
    }

    #[test]
    fn typed_getters_name_the_key() {
        testing::reset();
        testing::set_config(&[("timeout", "soon"), ("status", "204"), ("units", "a,b")]);
        assert_eq!(get("missing"), None);
        assert_eq!(get_or("missing", "x"), "x");
        assert_eq!(
            require("missing").unwrap_err(),
            "config key `missing` is required but not set"
        );
        let err = duration("timeout").unwrap_err();
        assert!(
            err.starts_with("config key `timeout` = \"soon\": "),
            "{err}"
        );
        assert_eq!(parse_or("status", 200u16), Ok(204));
        assert_eq!(parse_or("absent", 200u16), Ok(200));
        assert!(parse::<u8>("units").unwrap_err().contains("`units`"));
        assert_eq!(list("units"), ["a", "b"]);
        assert_eq!(entries().len(), 3);
    }
}
