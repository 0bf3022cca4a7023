//! The table of DDI resources and fields in docs/fleet.md, which the server's and the daemon's
//! tests hold their side to.

/// One row: a field of a resource, and what each side does with it (`sends`, `reads`,
/// `ignores`, `answers`, `no`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdiRow {
    pub resource: String,
    /// A path into the JSON, `[]` for each element of a list.
    pub field: String,
    pub server: String,
    pub daemon: String,
}

/// The rows between the table's `<!-- ddi-table -->` markers.
pub fn ddi_table() -> Vec<DdiRow> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/fleet.md");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let table = text
        .split("<!-- ddi-table -->")
        .nth(1)
        .and_then(|t| t.split("<!-- /ddi-table -->").next())
        .expect("the DDI table in docs/fleet.md");
    table
        .lines()
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells.len() == 4 && cells[0] != "Resource" && !cells[0].starts_with("---"))
        .map(|cells| DdiRow {
            resource: cells[0].to_string(),
            field: cells[1].trim_matches('`').to_string(),
            server: cells[2].to_string(),
            daemon: cells[3].to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_both_sides_of_every_row() {
        let rows = ddi_table();
        assert!(rows.len() > 30, "{rows:?}");
        let words = ["sends", "reads", "ignores", "answers", "no"];
        for r in &rows {
            assert!(words.contains(&r.server.as_str()), "{r:?}");
            assert!(words.contains(&r.daemon.as_str()), "{r:?}");
        }
        assert!(rows.contains(&DdiRow {
            resource: "`PUT configData`".into(),
            field: "mode".into(),
            server: "reads".into(),
            daemon: "sends".into(),
        }));
    }
}
