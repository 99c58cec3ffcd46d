//! Tidy checks that keep the workspace honest, run under plain `cargo test`: every source file
//! says what it owns in a `//!` doc, and crate dependencies only point the ways the table in
//! ARCHITECTURE.md allows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target" && n != "proptest-regressions") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//!"))
        .map(|path| path.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a leading //! doc: {missing:#?}");
}

/// Reads the crate table of ARCHITECTURE.md: rows `| `name` | ... | `dep`, `dep` |` whose last
/// cell lists the internal crates the crate may depend on (`—` for none).
fn allowed_dependencies(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let section =
        text.split("## Crate graph").nth(1).expect("ARCHITECTURE.md has a '## Crate graph' section");
    let mut allowed = BTreeMap::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 2 || !cells[0].starts_with('`') {
            continue;
        }
        let name = cells[0].trim_matches('`').to_string();
        let deps = cells[cells.len() - 1]
            .split(',')
            .map(|d| d.trim().trim_matches('`').to_string())
            .filter(|d| !d.is_empty() && d != "—");
        allowed.insert(name, deps.collect());
    }
    allowed
}

fn internal_dependencies(manifest: &str, internal: &BTreeSet<String>) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    let mut in_dependencies = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies
            && let Some(name) = line.split(['.', ' ', '=']).next()
            && internal.contains(name)
        {
            deps.insert(name.to_string());
        }
    }
    deps
}

#[test]
fn crate_dependencies_point_only_the_allowed_way() {
    let root = workspace_root();
    let allowed = allowed_dependencies(&root);
    let mut crates = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("crates")).unwrap() {
        let path = entry.unwrap().path();
        if path.join("Cargo.toml").exists() {
            crates.insert(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    let undocumented: Vec<_> = crates.iter().filter(|c| !allowed.contains_key(*c)).collect();
    assert!(undocumented.is_empty(), "crates missing from ARCHITECTURE.md's crate graph: {undocumented:?}");
    for name in &crates {
        let manifest = std::fs::read_to_string(root.join("crates").join(name).join("Cargo.toml")).unwrap();
        let actual = internal_dependencies(&manifest, &crates);
        let forbidden: Vec<_> = actual.difference(&allowed[name]).collect();
        assert!(
            forbidden.is_empty(),
            "crate {name} depends on {forbidden:?}, which ARCHITECTURE.md does not allow"
        );
    }
}
