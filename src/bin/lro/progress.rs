//! Progress on stderr: on a terminal, a "k of n done" line and a line per operation, as
//! many as fit (names shortened to the width, a note of how many are not shown); plain
//! lines otherwise; nothing with `--quiet`.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use longrunning::json::metadata_state;
use longrunning::{Error, RawOperation};

pub(crate) enum Progress {
    Quiet,
    /// The last state printed for each operation.
    Lines(HashMap<String, String>),
    Bars(Bars),
}

/// What a terminal shows.
pub(crate) struct Bars {
    multi: MultiProgress,
    /// "k of n done".
    count: ProgressBar,
    /// The operations shown, by name.
    shown: HashMap<String, ProgressBar>,
}

/// Lines of the terminal kept for the count, the note of what is hidden, and the prompt.
const RESERVED_ROWS: usize = 4;

impl Progress {
    pub(crate) fn new(quiet: bool, names: &[String]) -> Self {
        if quiet {
            return Progress::Quiet;
        }
        if !std::io::stderr().is_terminal() {
            return Progress::Lines(HashMap::new());
        }
        let (rows, columns) = console::Term::stderr().size();
        let (rows, columns) = (usize::from(rows), usize::from(columns));
        let multi = MultiProgress::new();
        let count = multi.add(ProgressBar::new(names.len() as u64));
        count.set_style(
            ProgressStyle::with_template("{elapsed:>4} {pos} of {len} done {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let fitting = rows.saturating_sub(RESERVED_ROWS).max(1).min(names.len());
        if fitting < names.len() {
            count.set_message(format!(
                "({} not shown; all are printed as they finish)",
                names.len() - fitting
            ));
        }
        count.enable_steady_tick(Duration::from_millis(500));
        let style = ProgressStyle::with_template("{spinner} {prefix} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        // Room for the name: the line less the spinner and about 24 columns of state.
        let width = columns.saturating_sub(26).max(16);
        let shown = names
            .iter()
            .take(fitting)
            .map(|name| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(shortened(name, width));
                bar.set_message("…");
                bar.enable_steady_tick(Duration::from_millis(120));
                (name.clone(), bar)
            })
            .collect();
        Progress::Bars(Bars {
            multi,
            count,
            shown,
        })
    }

    /// A snapshot of a running operation.
    pub(crate) fn update(&mut self, name: &str, operation: &RawOperation) {
        if matches!(self, Progress::Quiet) {
            return; // nothing shows it: not worth decoding the metadata
        }
        let state = metadata_state(operation).unwrap_or_else(|| "RUNNING".to_owned());
        self.show(name, state, false);
    }

    /// The final snapshot.
    pub(crate) fn finish(&mut self, name: &str, operation: &RawOperation) {
        if matches!(self, Progress::Quiet) {
            return;
        }
        let state = metadata_state(operation).unwrap_or_else(|| "DONE".to_owned());
        self.show(name, format!("{state} (done)"), true);
    }

    /// An RPC failed and the wait goes on: said every time, after the last state seen.
    pub(crate) fn retrying(&mut self, name: &str, error: &Error) {
        let cause = match error {
            Error::Rpc { status, .. } => status.to_string(),
            other => other.to_string(),
        };
        match self {
            Progress::Quiet => {}
            Progress::Lines(seen) => {
                let state = seen.get(name).map_or("WAITING", String::as_str);
                crate::output::note!("{name}: {state} (retrying: {cause})");
            }
            Progress::Bars(bars) => {
                if let Some(bar) = bars.shown.get(name) {
                    bar.set_message(format!("retrying: {cause}"));
                }
            }
        }
    }

    /// The operation's metadata has not changed for a while: said once per stall.
    pub(crate) fn stalled(&mut self, name: &str, unchanged_for: Duration) {
        let minutes = unchanged_for.as_secs() / 60;
        let seconds = unchanged_for.as_secs() % 60;
        match self {
            Progress::Quiet => {}
            Progress::Lines(seen) => {
                let state = seen.get(name).map_or("WAITING", String::as_str);
                crate::output::note!("{name}: {state} (no change for {minutes}m{seconds:02}s)");
            }
            Progress::Bars(bars) => {
                if let Some(bar) = bars.shown.get(name) {
                    bar.set_message(format!("no change for {minutes}m{seconds:02}s"));
                }
            }
        }
    }

    /// The wait ended with an error.
    pub(crate) fn fail(&mut self, name: &str, error: &Error) {
        let what = match error {
            Error::Timeout { .. } => "timed out".to_owned(),
            _ => "failed".to_owned(),
        };
        self.show(name, what, true);
    }

    fn show(&mut self, name: &str, state: String, last: bool) {
        match self {
            Progress::Quiet => {}
            Progress::Lines(seen) => {
                if seen.get(name) != Some(&state) {
                    crate::output::note!("{name}: {state}");
                    seen.insert(name.to_owned(), state);
                }
            }
            Progress::Bars(bars) => {
                if last {
                    bars.count.inc(1);
                }
                if let Some(bar) = bars.shown.get(name) {
                    bar.set_message(state);
                    if last {
                        bar.finish();
                    }
                }
            }
        }
    }

    /// Runs `print` with the bars off the screen, so that its output does not tear them.
    pub(crate) fn suspend<T>(&self, print: impl FnOnce() -> T) -> T {
        match self {
            Progress::Bars(bars) => bars.multi.suspend(print),
            _ => print(),
        }
    }

    /// Takes the bars off the screen.
    pub(crate) fn clear(&mut self) {
        if let Progress::Bars(bars) = self {
            for bar in bars.shown.values() {
                bar.finish_and_clear();
            }
            bars.count.finish_and_clear();
            let _ = bars.multi.clear();
        }
    }
}

/// `name` in at most `width` characters: its end kept (the ID), its start elided.
pub(crate) fn shortened(name: &str, width: usize) -> String {
    let length = name.chars().count();
    if length <= width {
        return name.to_owned();
    }
    let kept: String = name
        .chars()
        .skip(length - width.saturating_sub(1))
        .collect();
    format!("…{kept}")
}

#[cfg(test)]
mod tests {
    use super::shortened;

    #[test]
    fn long_names_keep_their_end() {
        let name = "projects/my-project-123/locations/us-west1/operations/bc4e1d412863e626";
        assert_eq!(shortened(name, 100), name);
        let short = shortened(name, 30);
        assert_eq!(short.chars().count(), 30);
        assert!(short.starts_with('…') && short.ends_with("operations/bc4e1d412863e626"));
    }
}
