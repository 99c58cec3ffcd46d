//! Interoperability with third-party MQTT software: the Mosquitto command-line clients
//! (`mosquitto_pub`, `mosquitto_sub`, Debian package `mosquitto-clients`) against our broker, and
//! our client (and raw codec output) against a real `mosquitto` broker (Debian package
//! `mosquitto`) started on a free port. Each test prints a note and passes when its binaries are
//! not installed, so the suite stays hermetic; CI installs both packages.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use mqtt::codec::{self, Connect, LastWill, Packet};
use mqtt::{
    AuthRejection, Broker, BrokerConfig, BrokerHandle, Client, ClientOptions, Counter, Credentials, Hooks,
    Identity, QoS,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Looks for an executable on PATH and in the sbin directories Debian installs daemons into.
fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn require(name: &str, package: &str) -> Option<PathBuf> {
    let found = find_binary(name);
    if found.is_none() {
        eprintln!("SKIPPED: `{name}` not found; install the Debian package `{package}` to run this test");
    }
    found
}

/// User `dev-a` / `secret` is "device site=a" and may publish under `site/a/`.
struct DeviceHooks;

impl Hooks for DeviceHooks {
    async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Identity, AuthRejection> {
        match (credentials.username, credentials.password) {
            (Some("dev-a"), Some(b"secret")) => Ok(Identity::new("device site=a")),
            (None, None) => Ok(Identity::new("anonymous")),
            _ => Err(AuthRejection::BadUserNameOrPassword),
        }
    }

    fn may_publish(&self, identity: &Identity, topic: &str) -> bool {
        identity.as_str() == "device site=a" && topic.starts_with("site/a/")
    }

    fn may_subscribe(&self, _identity: &Identity, _filter: &str) -> bool {
        true
    }
}

async fn start_broker() -> (BrokerHandle, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker = Broker::start(listener, BrokerConfig::default(), DeviceHooks);
    let addr = broker.local_addr().unwrap();
    (broker, addr)
}

async fn run(program: &Path, args: Vec<String>) -> Output {
    let program = program.to_owned();
    tokio::task::spawn_blocking(move || Command::new(program).args(args).output().unwrap()).await.unwrap()
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

#[tokio::test]
async fn mosquitto_pub_reaches_an_in_process_subscriber() {
    let Some(mosquitto_pub) = require("mosquitto_pub", "mosquitto-clients") else { return };
    let (broker, addr) = start_broker().await;
    let port = addr.port().to_string();
    let mut messages = broker.subscribe("site/a/#").unwrap();
    for qos in ["0", "1", "2"] {
        let output = run(
            &mosquitto_pub,
            args(&[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-i",
                "machine-1",
                "-u",
                "dev-a",
                "-P",
                "secret",
                "-q",
                qos,
                "-t",
                "site/a/telemetry",
                "-m",
                &format!("reading at qos {qos}"),
            ]),
        )
        .await;
        assert!(
            output.status.success(),
            "mosquitto_pub -q {qos}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let message = tokio::time::timeout(Duration::from_secs(5), messages.recv()).await.unwrap().unwrap();
        assert_eq!(&*message.topic, "site/a/telemetry");
        assert_eq!(&*message.payload, format!("reading at qos {qos}").as_bytes());
        assert_eq!(message.publisher, Identity::new("device site=a"));
    }

    let refused = run(
        &mosquitto_pub,
        args(&["-h", "127.0.0.1", "-p", &port, "-u", "dev-a", "-P", "wrong", "-t", "site/a/x", "-m", "x"]),
    )
    .await;
    assert!(!refused.status.success());
    assert_eq!(broker.counters().get(Counter::AuthFailures), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn mosquitto_sub_receives_retained_and_live_messages() {
    let Some(mosquitto_sub) = require("mosquitto_sub", "mosquitto-clients") else { return };
    let (broker, addr) = start_broker().await;
    broker.publish("site/a/state", b"running", QoS::AtLeastOnce, true).await.unwrap();
    let port = addr.port().to_string();
    let program = mosquitto_sub.clone();
    let subscriber = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-t", "site/a/#", "-v", "-C", "2", "-W", "10"])
            .output()
            .unwrap()
    });
    // Publish live messages until the subscriber has seen one (it exits after two messages).
    while !subscriber.is_finished() {
        broker.publish("site/a/live", b"hello", QoS::AtLeastOnce, false).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = subscriber.await.unwrap();
    assert!(output.status.success(), "mosquitto_sub: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "site/a/state running\nsite/a/live hello\n");
    broker.shutdown().await;
}

/// A `mosquitto` broker on a free local port, killed when dropped.
struct Mosquitto {
    child: Child,
    addr: SocketAddr,
    _config_dir: TempDir,
}

impl Mosquitto {
    async fn start(program: &Path) -> Mosquitto {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let config_dir = TempDir::new(&format!("mosquitto-{port}"));
        let config = config_dir.0.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new(program)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Owned before waiting, so a failed start still kills the process.
        let mosquitto = Mosquitto { child, addr: ([127, 0, 0, 1], port).into(), _config_dir: config_dir };
        for _ in 0..100 {
            if TcpStream::connect(mosquitto.addr).await.is_ok() {
                return mosquitto;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("mosquitto did not start listening on {}", mosquitto.addr);
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("mqtt-test-{prefix}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn next(subscription: &mut mqtt::Subscription) -> mqtt::Publish {
    tokio::time::timeout(Duration::from_secs(5), subscription.recv())
        .await
        .expect("timed out")
        .expect("closed")
}

#[tokio::test]
async fn our_client_works_against_mosquitto() {
    let Some(program) = require("mosquitto", "mosquitto") else { return };
    let mosquitto = Mosquitto::start(&program).await;
    let mut options = ClientOptions::new("ours-1");
    options.keep_alive = Duration::from_secs(1);
    let client = Client::connect(mosquitto.addr, options).await.unwrap();
    let mut everything = client.subscribe("plant/#", QoS::ExactlyOnce).await.unwrap();
    assert_eq!(everything.granted, QoS::ExactlyOnce);

    client.publish("plant/m1/temp", b"21.5".to_vec(), QoS::AtMostOnce, false).await.unwrap();
    client.publish("plant/m1/temp", b"21.6".to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    let first = next(&mut everything).await;
    assert_eq!(
        (first.topic.as_str(), &first.payload[..], first.qos),
        ("plant/m1/temp", &b"21.5"[..], QoS::AtMostOnce)
    );
    let second = next(&mut everything).await;
    assert_eq!((&second.payload[..], second.qos), (&b"21.6"[..], QoS::AtLeastOnce));

    // Retained messages reach a later subscriber with the retain flag.
    client.publish("plant/m1/state", b"running".to_vec(), QoS::AtLeastOnce, true).await.unwrap();
    assert_eq!(&next(&mut everything).await.payload[..], b"running");
    let other = Client::connect(mosquitto.addr, ClientOptions::new("ours-2")).await.unwrap();
    let mut state = other.subscribe("plant/+/state", QoS::AtLeastOnce).await.unwrap();
    let retained = next(&mut state).await;
    assert!(retained.retain);
    assert_eq!(&retained.payload[..], b"running");

    // QoS 2 from a third-party publisher exercises our PUBREC/PUBREL/PUBCOMP handling.
    if let Some(mosquitto_pub) = require("mosquitto_pub", "mosquitto-clients") {
        let port = mosquitto.addr.port().to_string();
        let output = run(
            &mosquitto_pub,
            args(&["-h", "127.0.0.1", "-p", &port, "-q", "2", "-t", "plant/m2/x", "-m", "q2"]),
        )
        .await;
        assert!(output.status.success());
        let exactly_once = next(&mut everything).await;
        assert_eq!((&exactly_once.payload[..], exactly_once.qos), (&b"q2"[..], QoS::ExactlyOnce));
    }

    // Past 1.5 x keepalive: our pings kept the connection open.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!client.is_closed());
    client.publish("plant/m1/temp", b"22".to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    assert_eq!(&next(&mut everything).await.payload[..], b"22");

    client.unsubscribe("plant/#").await.unwrap();
    assert!(everything.recv().await.is_none());
    client.disconnect().await.unwrap();
    other.disconnect().await.unwrap();
}

async fn delivery(inbox: &mut mqtt::Inbox) -> mqtt::Delivery {
    tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await.expect("timed out").expect("closed")
}

fn keeper() -> ClientOptions {
    let mut options = ClientOptions::new("keeper");
    options.clean_session = false;
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_sends_again_what_an_inbox_did_not_release_before_a_crash() {
    let Some(program) = require("mosquitto", "mosquitto") else { return };
    let mosquitto = Mosquitto::start(&program).await;
    let addr = mosquitto.addr;
    let publisher = Client::connect(addr, ClientOptions::new("machine")).await.unwrap();

    // The keeper takes a message and "crashes" before storing it: its runtime is dropped, which
    // closes the socket without DISCONNECT and without releasing the receipt.
    let publisher_in_thread = publisher.clone();
    let held = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let held = runtime.block_on(async {
            let (client, mut inbox) = Client::connect_with_inbox(addr, keeper(), 16).await.unwrap();
            client.subscribe("plant/#", QoS::AtLeastOnce).await.unwrap();
            publisher_in_thread
                .publish("plant/m1/count", b"a".to_vec(), QoS::AtLeastOnce, false)
                .await
                .unwrap();
            delivery(&mut inbox).await
        });
        drop(runtime);
        held
    })
    .await
    .unwrap();
    assert_eq!(&held.publish.payload[..], b"a");
    publisher.publish("plant/m1/count", b"b".to_vec(), QoS::AtLeastOnce, false).await.unwrap();

    // Back with the same client id and no new subscription: the unacknowledged message comes
    // again (marked as a duplicate), then the one sent while away.
    let (client, mut inbox) = Client::connect_with_inbox(addr, keeper(), 16).await.unwrap();
    let again = delivery(&mut inbox).await;
    assert_eq!((&again.publish.payload[..], again.publish.dup), (&b"a"[..], true));
    let away = delivery(&mut inbox).await;
    assert_eq!(&away.publish.payload[..], b"b");
    again.receipt.release();
    away.receipt.release();
    // Released, they are acknowledged: the next session starts with the next message.
    client.publish("plant/m1/ping", b"sync".to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    let sync = delivery(&mut inbox).await;
    assert_eq!(&sync.publish.payload[..], b"sync");
    sync.receipt.release();
    client.disconnect().await.unwrap();
    publisher.publish("plant/m1/count", b"c".to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    let (client, mut inbox) = Client::connect_with_inbox(addr, keeper(), 16).await.unwrap();
    let last = delivery(&mut inbox).await;
    assert_eq!(&last.publish.payload[..], b"c");
    last.receipt.release();
    client.disconnect().await.unwrap();
    drop(held);
    publisher.disconnect().await.unwrap();
}

#[tokio::test]
async fn mosquitto_publishes_the_will_from_our_connect_packet() {
    let Some(program) = require("mosquitto", "mosquitto") else { return };
    let mosquitto = Mosquitto::start(&program).await;
    let watcher = Client::connect(mosquitto.addr, ClientOptions::new("watcher")).await.unwrap();
    let mut deaths = watcher.subscribe("plant/+/death", QoS::AtLeastOnce).await.unwrap();

    let connect = Connect {
        client_id: "doomed".into(),
        keep_alive: 30,
        clean_session: true,
        will: Some(LastWill {
            topic: "plant/m3/death".into(),
            payload: b"offline".to_vec(),
            qos: QoS::AtLeastOnce,
            retain: false,
        }),
        username: Some("someone".into()),
        password: Some(b"pw".to_vec()),
    };
    let mut out = Vec::new();
    codec::encode(&Packet::Connect(connect), &mut out).unwrap();
    let mut stream = TcpStream::connect(mosquitto.addr).await.unwrap();
    stream.write_all(&out).await.unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    drop(stream);

    let will = next(&mut deaths).await;
    assert_eq!((will.topic.as_str(), &will.payload[..]), ("plant/m3/death", &b"offline"[..]));
    watcher.disconnect().await.unwrap();
}

/// Whether `python3` can import paho-mqtt (PyPI), which the Paho test needs.
fn paho_available() -> bool {
    let available = Command::new("python3")
        .args(["-c", "import paho.mqtt.client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !available {
        eprintln!(
            "SKIPPED: python3 with the PyPI package `paho-mqtt` not found; `pip install paho-mqtt` to run this test"
        );
    }
    available
}

#[tokio::test]
async fn paho_python_client_talks_to_our_broker() {
    if !paho_available() {
        return;
    }
    let (broker, addr) = start_broker().await;
    let mut messages = broker.subscribe("site/a/paho").unwrap();
    let mut wills = broker.subscribe("site/a/death").unwrap();
    broker.publish("site/a/echo", b"hello", QoS::AtLeastOnce, true).await.unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/paho_interop.py");
    let port = addr.port().to_string();
    let python = PathBuf::from("python3");
    let script = script.to_str().unwrap();

    let output = run(&python, args(&[script, "127.0.0.1", &port, "secret"])).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        stdout,
        "connected\ngranted [1]\nreceived site/a/echo hello retain=1\n\
         published qos 0 ok=True\npublished qos 1 ok=True\npublished qos 2 ok=True\n"
    );
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let message = tokio::time::timeout(Duration::from_secs(5), messages.recv()).await.unwrap().unwrap();
        assert_eq!(&*message.payload, format!("paho qos {}", qos as u8).as_bytes());
        assert_eq!((message.qos, &message.publisher), (qos, &Identity::new("device site=a")));
    }
    for _ in 0..500 {
        if broker.counters().get(Counter::ConnectionsOpen) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(broker.counters().get(Counter::ConnectionsOpen), 0);
    assert_eq!(broker.counters().get(Counter::WillsPublished), 0, "a clean DISCONNECT discards the will");
    assert!(wills.try_recv().is_err());

    let refused = run(&python, args(&[script, "127.0.0.1", &port, "wrong"])).await;
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert!(stdout.starts_with("refused "), "{stdout}{}", String::from_utf8_lossy(&refused.stderr));
    println!("paho on a wrong password: {}", stdout.trim());
    broker.shutdown().await;
}
