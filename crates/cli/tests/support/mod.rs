//! Helpers for end-to-end tests: start the real `microfactory` binary on a free port with a fresh
//! data directory, and talk HTTP/1.1 to it over a plain TCP socket.

#![allow(dead_code, reason = "each test binary uses a different part of the support module")]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether a test must be skipped because something it needs is `missing` (said on stderr). With
/// the environment variable `required_by` set, as CI sets it, something missing fails the test
/// instead, so CI never passes by skipping.
pub fn skip_without(missing: Option<&str>, required_by: &str) -> bool {
    let Some(what) = missing else { return false };
    assert!(std::env::var(required_by).is_err(), "{required_by} is set but {what} is missing");
    eprintln!("skipped: {what} is not available");
    true
}

/// The API token every test server is bootstrapped with.
pub const TOKEN: &str = "e2e-bootstrap-token-0123456789";

/// A fresh, empty directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::UNIX_EPOCH.elapsed().map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("mf-e2e-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub address: SocketAddr,
    /// The embedded MQTT broker.
    pub mqtt: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit, at most `limit`; its status.
pub fn wait_for_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends the signal `name` (`TERM`, `INT`) to process `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `microfactory <command>` on free ports over `data_dir`, without the simulated factory,
/// and waits until it is healthy.
pub fn start(command: &str, data_dir: &Path) -> Server {
    start_with(command, data_dir, if command == "demo" { &["--no-sim"] } else { &[] })
}

/// Like [`start`], with extra arguments.
pub fn start_with(command: &str, data_dir: &Path, extra: &[&str]) -> Server {
    let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mqtt: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut arguments = vec![command.to_string(), "--listen".into(), address.to_string()];
    if !extra.contains(&"--mqtt-broker") {
        arguments.extend(["--mqtt-listen".into(), mqtt.to_string()]);
    }
    let child = Command::new(env!("CARGO_BIN_EXE_microfactory"))
        .args(arguments)
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .env("MICROFACTORY_BOOTSTRAP_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, address, mqtt };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(reply) = request(address, "GET", "/healthz", None, None)
            && reply.status == 200
        {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server did not become healthy");
}

/// An HTTP reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One request on a new connection.
pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = json.unwrap_or("");
    if json.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other("no HTTP head"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok(Reply { status, body: body.to_string() })
}

/// Every order number in the store, following the cursor through all pages.
pub fn all_order_numbers(address: SocketAddr) -> Vec<String> {
    let mut numbers = Vec::new();
    let mut path = "/api/v1/orders?limit=500".to_string();
    loop {
        let page = request(address, "GET", &path, Some(TOKEN), None).unwrap().json();
        numbers.extend(
            page["items"].as_array().unwrap().iter().map(|o| o["number"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/orders?limit=500&cursor={cursor}"),
            None => return numbers,
        }
    }
}

/// Debian's `mosquitto` broker when it and `mosquitto_pub` are installed. Otherwise `None`, with a
/// note, unless `MF_REQUIRE_INTEROP` is set (as CI does), which makes the absence a failure.
pub fn mosquitto() -> Option<&'static str> {
    let broker =
        ["mosquitto", "/usr/sbin/mosquitto"].into_iter().find(|b| Command::new(b).arg("-h").output().is_ok());
    let clients = Command::new("mosquitto_pub").arg("--help").output().is_ok();
    if broker.is_none() || !clients {
        assert!(
            std::env::var("MF_REQUIRE_INTEROP").is_err(),
            "MF_REQUIRE_INTEROP is set but mosquitto is missing"
        );
        eprintln!("skipped: install Debian's mosquitto and mosquitto-clients");
        return None;
    }
    broker
}

/// A Mosquitto broker on a free local port (anonymous, no persistence), killed when dropped.
pub struct Mosquitto {
    binary: &'static str,
    config: PathBuf,
    child: Child,
    pub port: u16,
}

impl Mosquitto {
    /// Writes a config with `extra` lines into `dir` and starts the broker.
    pub fn start(binary: &'static str, dir: &Path, extra: &str) -> Mosquitto {
        let port = free_port();
        let config = dir.join("mosquitto.conf");
        std::fs::write(&config, format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra}")).unwrap();
        let child = Mosquitto::spawn(binary, &config, port);
        Mosquitto { binary, config, child, port }
    }

    /// Kills the broker (its sessions die with it) and starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Mosquitto::spawn(self.binary, &self.config, self.port);
    }

    /// Kills the broker; `restart` brings it back on the same port.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The `--mqtt-broker` flag for this broker.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(binary: &str, config: &Path, port: u16) -> Child {
        let child = Command::new(binary)
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
