//! The dashboard in a real browser: runs `tests/browser/dashboard.mjs` (playwright-core driving
//! headless Debian chromium) against a `microfactory demo` with the simulated factory running.
//! Screenshots of every page land in `test-artifacts/dashboard/` at the repository root.
//! Skipped with a note when node, chromium or playwright-core are missing, unless
//! MF_REQUIRE_BROWSER=1 (CI sets it and installs them).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{TOKEN, TempDir, start_with};

/// The repository root (this crate lives in `crates/cli`).
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// What is missing to run the browser test, if anything.
fn missing(scripts: &Path) -> Option<&'static str> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("/usr/bin/chromium (apt-get install chromium)");
    }
    if !scripts.join("node_modules/playwright-core").exists() {
        return Some("playwright-core (npm ci in tests/browser)");
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node");
    }
    None
}

#[test]
fn dashboard_works_in_chromium() {
    let root = repository();
    let scripts = root.join("tests/browser");
    if support::skip_without(missing(&scripts), "MF_REQUIRE_BROWSER") {
        return;
    }
    let dir = TempDir::new("browser");
    let server = start_with("demo", &dir.0, &["--sim-speed", "60"]);
    let artifacts = root.join("test-artifacts/dashboard");
    let output = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&scripts)
        .env("MF_BASE_URL", format!("http://{}", server.address))
        .env("MF_TOKEN", TOKEN)
        .env("MF_ARTIFACTS", &artifacts)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all dashboard checks passed"), "{stdout}");
    for page in
        ["overview", "machine", "plan", "orders", "order", "alarms", "settings", "station", "overview-zh"]
    {
        assert!(artifacts.join(format!("{page}.png")).exists(), "no screenshot of {page}");
    }
}
