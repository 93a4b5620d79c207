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

    pub fn note(&mut self, note: String) {
        println!("  {note}");
        self.notes.push(note);
    }

    pub fn write(&self, folder: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(folder)?;
        std::fs::write(folder.join("results.json"), serde_json::to_string_pretty(self).expect("serializable") + "\n")?;
        let mut page = String::from("# Benchmark results\n\nWritten by `bench/run.sh`; do not edit by hand.\n\n");
        page += &format!("- Command: `{}`\n- Git commit: `{}`\n- Date: {}\n", self.command, self.git_commit, self.date);
        for (name, value) in &self.machine {
            page += &format!("- {name}: {value}\n");
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
        if !self.notes.is_empty() {
            page += "\n## Findings\n\n";
            for note in &self.notes {
                page += &format!("- {note}\n");
            }
        }
        std::fs::write(folder.join("RESULTS.md"), page)
    }
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
