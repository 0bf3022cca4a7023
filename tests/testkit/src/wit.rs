//! What the plugin interface's WIT says, for tests that check hand-written copies against it.

/// The cases of the WIT enum `stage` in `wit/v0.1/plugin.wit`, in order.
pub fn wit_stage_names() -> Vec<String> {
    let wit = include_str!("../../../wit/v0.1/plugin.wit");
    let body = wit
        .split_once("enum stage {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(body, _)| body)
        .expect("wit/v0.1/plugin.wit has an enum stage");
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .map(|l| l.trim_end_matches(',').to_string())
        .collect()
}
