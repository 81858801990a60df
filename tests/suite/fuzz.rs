//! The fuzz campaign in the test suite: a few hundred seeded mutations of real files per reader
//! (`huelab fuzz`, each case read in a child process under a memory limit). Every case must end
//! in an error naming the file or be accepted; a panic, a C++ backtrace, an unnamed error, a
//! refused allocation, a crash, a hang, or a structural mutation that must be refused (a FIFO, a
//! link out, an impossible value) read without an error fails the test. The longer campaign is the same
//! command with more cases (see the README).
use std::process::Command;

const CASES: u64 = 200;

#[test]
fn every_reader_turns_mutated_files_into_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("fuzz.json");
    let out = Command::new(env!("CARGO_BIN_EXE_huelab"))
        .args(["fuzz", "--cases", &CASES.to_string(), "--seed", "1", "--memory-limit-mb", "3072", "--out"])
        .arg(&report)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(reports.len(), 15, "one report per reader and the script surface");
    for r in &reports {
        let count = |k: &str| r["counts"][k].as_u64().unwrap_or(0);
        let total: u64 = r["counts"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(total, CASES, "{r}");
        // The mutations must really break files: most cases are errors, and some survive.
        assert!(count("clean_error") >= CASES / 2, "{}: only {} clean errors", r["reader"], count("clean_error"));
        assert_eq!(count("clean_error") + count("accepted"), CASES, "{r}");
        assert!(r["max_peak_rss_mb"].as_f64().unwrap() < 3072.0, "{r}");
        // Structural mutations (special files, links out, sparse files, lying headers, NaN
        // tensors, impossible values) ran, and every one of them was refused.
        if r["reader"] != "script" {
            assert!(r["must_refuse"].as_u64().unwrap() >= CASES / 10, "{}: {} structural cases", r["reader"], r["must_refuse"]);
        }
    }
}
