//! The computing-node binary on its own: help, and a bad flag is a clear error.

use std::process::Command;

#[test]
fn help_names_the_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_computing-node"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--domain",
        "--network",
        "--name",
        "--work-time",
        "--max-jobs",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
}

#[test]
fn an_invalid_domain_is_refused_with_its_range() {
    let out = Command::new(env!("CARGO_BIN_EXE_computing-node"))
        .args(["--domain", "500"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("500") && err.contains("0..=232"), "{err}");
}
