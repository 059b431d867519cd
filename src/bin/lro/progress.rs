//! Progress on stderr: a bar per operation on a terminal, plain lines otherwise, nothing
//! with `--quiet`.

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
    Bars(MultiProgress, HashMap<String, ProgressBar>),
}

impl Progress {
    pub(crate) fn new(quiet: bool, names: &[String]) -> Self {
        if quiet {
            return Progress::Quiet;
        }
        if !std::io::stderr().is_terminal() {
            return Progress::Lines(HashMap::new());
        }
        let bars = MultiProgress::new();
        let style = ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let by_name = names
            .iter()
            .map(|name| {
                let bar = bars.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(name.clone());
                bar.set_message("…");
                bar.enable_steady_tick(Duration::from_millis(120));
                (name.clone(), bar)
            })
            .collect();
        Progress::Bars(bars, by_name)
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
            Progress::Bars(_, bars) => {
                if let Some(bar) = bars.get(name) {
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
            Progress::Bars(_, bars) => {
                if let Some(bar) = bars.get(name) {
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
            Progress::Bars(_, bars) => {
                if let Some(bar) = bars.get(name) {
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
            Progress::Bars(multi, _) => multi.suspend(print),
            _ => print(),
        }
    }

    /// Takes the bars off the screen.
    pub(crate) fn clear(&mut self) {
        if let Progress::Bars(multi, _) = self {
            let _ = multi.clear();
        }
    }
}
