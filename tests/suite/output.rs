//! Atomic result files.
use std::os::unix::fs::PermissionsExt;

use huelab::files::write_atomic;

#[test]
fn write_atomic_creates_parents_replaces_whole_files_and_leaves_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/result.json");
    write_atomic(&path, b"first version, longer").unwrap();
    write_atomic(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("result.json")]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "result files are readable by others, mode {mode:o}");
}

#[test]
fn write_atomic_into_an_unwritable_place_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = write_atomic(&blocker.join("inside.csv"), b"y").unwrap_err().to_string();
    assert!(err.contains("file"), "{err}");
}
