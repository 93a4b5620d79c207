//! The results page: figures with min/median/max over repeated runs, the machine and the command.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

#[derive(Serialize)]
pub struct Figure {
    pub section: String,
    pub name: String,
    pub unit: String,
    pub runs: Vec<f64>,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

#[derive(Serialize)]
pub struct Report {
    command: String,
    git_commit: String,
    date: String,
    machine: Vec<(String, String)>,
    figures: Vec<Figure>,
    /// Derived statements (ratios, targets) shown under the figures.
    notes: Vec<String>,
    comparisons: Vec<Comparison>,
    charts: Vec<Chart>,
    /// Correctness checks that failed (each is also a note).
    failures: usize,
}

/// A Livebase figure next to its baseline's, with the ratio of the two.
#[derive(Serialize)]
pub struct Comparison {
    pub livebase: String,
    pub livebase_value: f64,
    pub baseline: String,
    pub baseline_value: f64,
    pub unit: String,
    pub ratio: f64,
    /// The least ratio an issue asks for, if any.
    pub target_ratio: Option<f64>,
}

/// A line chart against a number of clients (log scales), drawn next to the results page.
#[derive(Serialize)]
pub struct Chart {
    /// The PNG's file name, in the results folder.
    pub file: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Named lines of `(clients, value)` points.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

impl Report {
    pub fn new(command: String) -> Report {
        Report {
            command,
            git_commit: shell("git rev-parse --short HEAD"),
            date: shell("date -u +%Y-%m-%dT%H:%MZ"),
            machine: machine(),
            figures: Vec::new(),
            notes: Vec::new(),
            comparisons: Vec::new(),
            charts: Vec::new(),
            failures: 0,
        }
    }

    /// Records a figure from its runs and prints it.
    pub fn add(&mut self, section: &str, name: &str, unit: &str, runs: Vec<f64>) -> f64 {
        assert!(!runs.is_empty(), "a figure needs at least one run");
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "  {name}: median {} {unit} (min {}, max {})",
            format(median),
            format(sorted[0]),
            format(sorted[sorted.len() - 1])
        );
        self.figures.push(Figure {
            section: section.to_owned(),
            name: name.to_owned(),
            unit: unit.to_owned(),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            median,
            runs,
        });
        median
    }

    /// Adds a line to the description of the machine (once per name): what else the figures
    /// depend on.
    pub fn context(&mut self, name: &str, value: &str) {
        if !self.machine.iter().any(|(known, _)| known == name) {
            self.machine.push((name.to_owned(), value.to_owned()));
        }
    }

    /// The median of a figure recorded earlier in this run.
    pub fn median(&self, section: &str, name: &str) -> Option<f64> {
        self.figures.iter().find(|figure| figure.section == section && figure.name == name).map(|figure| figure.median)
    }

    pub fn note(&mut self, note: String) {
        println!("  {note}");
        self.notes.push(note);
    }

    /// A scenario that could not run, said loudly on the console and on the results page.
    pub fn skipped(&mut self, why: &str) {
        println!("  !!! {why}");
        self.notes.push(format!("**{why}**"));
    }

    /// A correctness check that failed: said loudly on the console and on the results page, and the
    /// harness exits with an error once the page is written.
    pub fn failed(&mut self, what: &str) {
        eprintln!("  !!! FAILED: {what}");
        self.notes.push(format!("**FAILED: {what}**"));
        self.failures += 1;
    }

    pub fn failures(&self) -> usize {
        self.failures
    }

    /// Puts a Livebase figure next to its baseline (`(name, median)` each); `target_ratio` is the
    /// least `livebase / baseline` an issue asks for.
    pub fn compare(&mut self, livebase: (&str, f64), baseline: (&str, f64), unit: &str, target_ratio: Option<f64>) {
        let ratio = livebase.1 / baseline.1;
        let target =
            target_ratio.map_or(String::new(), |target| format!("; target >= {target}x: {}", verdict(ratio >= target)));
        println!("  {} / {}: {ratio:.2}x{target}", livebase.0, baseline.0);
        self.comparisons.push(Comparison {
            livebase: livebase.0.to_owned(),
            livebase_value: livebase.1,
            baseline: baseline.0.to_owned(),
            baseline_value: baseline.1,
            unit: unit.to_owned(),
            ratio,
            target_ratio,
        });
    }

    pub fn chart(&mut self, chart: Chart) {
        self.charts.push(chart);
    }

    pub fn write(&self, folder: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(folder)?;
        // A chart that cannot be drawn (no font) costs the chart, not the figures.
        let drawn: Vec<Result<(), String>> =
            self.charts.iter().map(|chart| crate::chart::draw(chart, &folder.join(&chart.file))).collect();
        std::fs::write(folder.join("results.json"), serde_json::to_string_pretty(self).expect("serializable") + "\n")?;
        let mut page = String::from("# Benchmark results\n\nWritten by `bench/run.sh`; do not edit by hand.\n\n");
        page += &format!("- Command: `{}`\n- Git commit: `{}`\n- Date: {}\n", self.command, self.git_commit, self.date);
        for (name, value) in &self.machine {
            page += &format!("- {name}: {value}\n");
        }
        if !self.comparisons.is_empty() {
            page += "\n## Livebase against its baselines\n\n| Livebase | median | baseline | median | unit | ratio | target |\n\
                     |---|---:|---|---:|---|---:|---|\n";
            for comparison in &self.comparisons {
                let target = comparison
                    .target_ratio
                    .map_or(String::new(), |target| format!(">= {target}x: {}", verdict(comparison.ratio >= target)));
                page += &format!(
                    "| {} | {} | {} | {} | {} | {:.2}x | {target} |\n",
                    comparison.livebase,
                    format(comparison.livebase_value),
                    comparison.baseline,
                    format(comparison.baseline_value),
                    comparison.unit,
                    comparison.ratio
                );
            }
        }
        let mut section = "";
        for figure in &self.figures {
            if figure.section != section {
                section = &figure.section;
                page += &format!(
                    "\n## {section}\n\n| figure | median | min | max | unit | runs |\n|---|---:|---:|---:|---|---:|\n"
                );
            }
            page += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                figure.name,
                format(figure.median),
                format(figure.min),
                format(figure.max),
                figure.unit,
                figure.runs.len()
            );
        }
        if !self.charts.is_empty() {
            page += "\n## Charts\n\n";
            for (chart, drawn) in self.charts.iter().zip(&drawn) {
                match drawn {
                    Ok(()) => page += &format!("![{}]({})\n\n", chart.title, chart.file),
                    Err(error) => {
                        eprintln!("chart not drawn: {error}");
                        page += &format!("**{}: not drawn: {error}**\n\n", chart.title);
                    }
                }
            }
        }
        if !self.notes.is_empty() {
            page += "\n## Findings\n\n";
            for note in &self.notes {
                page += &format!("- {note}\n");
            }
        }
        std::fs::write(folder.join("RESULTS.md"), page)
    }
}

/// How a target fared, as the results page says it.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// The `q` quantile (0 to 1) of `values`, by the nearest rank; 0 when there are none.
pub fn percentile(values: &[u64], q: f64) -> f64 {
    assert!((0.0..=1.0).contains(&q), "a quantile is between 0 and 1");
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

fn format(value: f64) -> String {
    if value >= 100.0 { format!("{value:.0}") } else { format!("{value:.2}") }
}

fn shell(command: &str) -> String {
    Command::new("sh")
        .args(["-c", command])
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|output| !output.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn machine() -> Vec<(String, String)> {
    vec![
        ("CPU".to_owned(), shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")),
        ("Cores".to_owned(), shell("nproc")),
        ("Memory".to_owned(), shell("grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2-3")),
        ("Kernel".to_owned(), shell("uname -r")),
        ("Disk (data dirs)".to_owned(), shell("df -h \"${TMPDIR:-/tmp}\" | tail -1 | tr -s ' ' | cut -d' ' -f1,2")),
        ("Rust".to_owned(), shell("rustc --version")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_ranks() {
        let values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
        assert_eq!(percentile(&values, 0.5), 5.0);
        assert_eq!(percentile(&values, 0.99), 10.0);
        assert_eq!(percentile(&values, 1.0), 10.0);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn comparisons_say_whether_a_target_is_met() {
        let mut report = Report::new("test".to_owned());
        report.compare(("livebase", 30.0), ("baseline", 100.0), "ops/s", Some(0.5));
        report.compare(("livebase", 60.0), ("baseline", 100.0), "ops/s", Some(0.5));
        let folder = tempfile::tempdir().expect("temporary directory");
        report.write(folder.path()).expect("write");
        let page = std::fs::read_to_string(folder.path().join("RESULTS.md")).expect("page");
        assert!(page.contains("| livebase | 30.00 | baseline | 100 | ops/s | 0.30x | >= 0.5x: MISSED |"), "{page}");
        assert!(page.contains("| livebase | 60.00 | baseline | 100 | ops/s | 0.60x | >= 0.5x: met |"), "{page}");
    }
}
