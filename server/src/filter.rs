//! Dynamic group filters: `key=value,key2!=value2`, every term must hold; `*` in a value matches
//! any run of characters. Keys are device attributes, plus `controllerId`.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub key: String,
    pub negated: bool,
    pub pattern: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("filter term {term:?} is not `key=value` or `key!=value`")]
pub struct BadFilter {
    pub term: String,
}

pub fn parse(filter: &str) -> Result<Vec<Term>, BadFilter> {
    let terms: Vec<Term> = filter
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let bad = || BadFilter {
                term: t.to_string(),
            };
            let (key, negated, pattern) = match t.split_once("!=") {
                Some((k, v)) => (k, true, v),
                None => {
                    let (k, v) = t.split_once('=').ok_or_else(bad)?;
                    (k, false, v)
                }
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(bad());
            }
            Ok(Term {
                key: key.to_string(),
                negated,
                pattern: pattern.trim().to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    if terms.is_empty() {
        return Err(BadFilter {
            term: filter.to_string(),
        });
    }
    Ok(terms)
}

/// Whether a device matches every term. A missing attribute equals nothing (so `k!=v` holds).
pub fn matches(terms: &[Term], controller_id: &str, attrs: &BTreeMap<String, String>) -> bool {
    terms.iter().all(|t| {
        let value = if t.key == "controllerId" {
            Some(controller_id)
        } else {
            attrs.get(&t.key).map(String::as_str)
        };
        let hit = value.is_some_and(|v| glob(&t.pattern, v));
        hit != t.negated
    })
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("rpi-*", "rpi-4"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "acb"));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("1.2.3", "1.2.3"));
        assert!(!glob("1.2.3", "1.2.30"));
    }

    #[test]
    fn filters_combine_terms() {
        let terms = parse("airlock.device_type=rpi-*, airlock.version!=2.*").unwrap();
        let mut attrs = BTreeMap::new();
        attrs.insert("airlock.device_type".to_string(), "rpi-4".to_string());
        attrs.insert("airlock.version".to_string(), "1.0.0".to_string());
        assert!(matches(&terms, "d1", &attrs));
        attrs.insert("airlock.version".to_string(), "2.0.0".to_string());
        assert!(!matches(&terms, "d1", &attrs));
        let by_id = parse("controllerId=edge-*").unwrap();
        assert!(matches(&by_id, "edge-7", &BTreeMap::new()));
        assert!(!matches(&by_id, "core-7", &BTreeMap::new()));
        assert!(parse("novalue").is_err());
        assert!(parse("").is_err());
        assert!(parse("=x").is_err());
    }
}
