//! Progress: a bar on a terminal, a plain line every 10% otherwise (logs and --json stay clean:
//! both go to stderr).

use std::io::IsTerminal;

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

/// Reports byte progress of one operation.
pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    total: u64,
    /// Last tenth reported as a plain line.
    tenth: u64,
}

impl Progress {
    /// `total` may be 0 when not known yet; see [`Progress::set`].
    pub fn bytes(label: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            bar
        });
        Self {
            label: label.to_string(),
            bar,
            total,
            tenth: 0,
        }
    }

    pub fn set(&mut self, done: u64, total: u64) {
        self.total = total;
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            None if total > 0 => {
                let tenth = done * 10 / total;
                if tenth > self.tenth {
                    self.tenth = tenth;
                    eprintln!(
                        "{}: {}% ({} of {})",
                        self.label,
                        tenth * 10,
                        HumanBytes(done),
                        HumanBytes(total)
                    );
                }
            }
            None => {}
        }
    }

    /// Progress against the total given at creation (0: unknown, no plain lines).
    pub fn position(&mut self, done: u64) {
        self.set(done, self.total);
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
