//! Reads every public benchmark instance under `../shared/bench/scheduling` (relative to the workspace
//! root) and solves each with a tiny iteration budget, checking the schedule with the independent checker.
//! When the folder is absent (a checkout without the shared data) the test prints a note and passes.

use std::path::PathBuf;

use scheduler::{Config, check, formats, solve};

#[test]
fn every_benchmark_instance_parses_and_solves_feasibly() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/scheduling");
    if !root.is_dir() {
        println!("note: {} not found; benchmark instances skipped", root.display());
        return;
    }
    let mut count = 0;
    for family in ["jssp", "fjsp"] {
        let dir = root.join(family);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("txt" | "fjs")))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).expect("readable instance");
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let format = formats::detect(path.file_name().and_then(|s| s.to_str()), &text)
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            let problem = formats::parse(&text, format, name).unwrap_or_else(|err| panic!("{name}: {err}"));
            let config = Config { iteration_limit: Some(20), time_limit: None, ..Config::default() };
            let solution = solve(&problem, &config);
            let violations = check(&problem, &solution.operations);
            assert!(violations.is_empty(), "{name}: {:?}", &violations[..violations.len().min(3)]);
            count += 1;
        }
    }
    assert_eq!(count, 375, "all public instances were read");
}
