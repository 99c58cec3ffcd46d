//! Broker end-to-end tests on 127.0.0.1:0 with the crate's client and raw sockets: authentication,
//! permissions, retained messages, wills, QoS 1, takeover, back-pressure and shutdown.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::client::{Client, ClientOptions};
use crate::codec::{ConnectReturnCode, LastWill, Packet};

/// Devices: user `dev-a` (password `secret`) is "device site=a" and may publish under `site/a/`;
/// user `nobody` is refused as not authorized; anything else has a bad password. Filters under
/// `private/` may not be subscribed.
struct TestHooks;

impl Hooks for TestHooks {
    async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Identity, AuthRejection> {
        match (credentials.username, credentials.password) {
            (Some("dev-a"), Some(b"secret")) => Ok(Identity::new("device site=a")),
            // The same account signed in with another of its tokens.
            (Some("dev-a-new-token"), Some(b"secret")) => {
                Ok(Identity::of_account("device site=a, new token", "device site=a"))
            }
            (Some("viewer"), Some(b"secret")) => Ok(Identity::new("viewer")),
            (Some("nobody"), _) => Err(AuthRejection::NotAuthorized),
            _ => Err(AuthRejection::BadUserNameOrPassword),
        }
    }

    fn may_publish(&self, identity: &Identity, topic: &str) -> bool {
        identity.as_str() == "device site=a" && topic.starts_with("site/a/")
    }

    fn may_subscribe(&self, _identity: &Identity, filter: &str) -> bool {
        !filter.starts_with("private/")
    }
}

async fn start(config: BrokerConfig) -> (BrokerHandle, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = Broker::start(listener, config, TestHooks);
    let addr = handle.local_addr().unwrap();
    (handle, addr)
}

fn options(client_id: &str, user: &str) -> ClientOptions {
    let mut options = ClientOptions::new(client_id);
    options.username = Some(user.to_owned());
    options.password = Some(b"secret".to_vec());
    options
}

async fn recv<T>(receiver: &mut mpsc::Receiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await.expect("timed out").expect("closed")
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Sends a raw CONNECT and reads the CONNACK.
async fn raw_connect(addr: SocketAddr, connect: Connect) -> (TcpStream, ConnAckBytes) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    codec::encode(&Packet::Connect(connect), &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await.unwrap();
    (stream, connack)
}

type ConnAckBytes = [u8; 4];
use crate::codec::Connect;

fn device_connect(client_id: &str, keep_alive: u16, will: Option<LastWill>) -> Connect {
    Connect {
        client_id: client_id.into(),
        keep_alive,
        clean_session: true,
        will,
        username: Some("dev-a".into()),
        password: Some(b"secret".to_vec()),
    }
}

/// Subscribes a raw connection to one filter and returns the SUBACK's bytes.
async fn raw_subscribe(stream: &mut TcpStream, filter: &str, qos: QoS) -> [u8; 5] {
    let mut out = Vec::new();
    let subscribe = Packet::Subscribe(codec::Subscribe {
        packet_id: codec::PacketId::new(1).unwrap(),
        filters: vec![codec::SubscribeFilter { filter: filter.into(), qos }],
    });
    codec::encode(&subscribe, &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
    let mut suback = [0u8; 5];
    stream.read_exact(&mut suback).await.unwrap();
    suback
}

/// An in-process subscriber standing in for the store: takes every message under `filter` and
/// lets go of it at once; the task ends with how many it took when the broker shuts down.
fn counting_store(broker: &BrokerHandle, filter: &str) -> tokio::task::JoinHandle<usize> {
    let mut store = broker.subscribe(filter).unwrap();
    tokio::spawn(async move {
        let mut count = 0;
        while let Some(message) = store.recv().await {
            message.receipt.release();
            count += 1;
        }
        count
    })
}

#[tokio::test]
async fn bad_credentials_are_refused_with_the_right_return_code() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let wrong = Client::connect(addr, ClientOptions::new("x")).await.unwrap_err();
    assert!(matches!(wrong, Error::ConnectionRefused(ConnectReturnCode::BadUserNameOrPassword)), "{wrong}");
    let refused = Client::connect(addr, options("y", "nobody")).await.unwrap_err();
    assert!(matches!(refused, Error::ConnectionRefused(ConnectReturnCode::NotAuthorized)), "{refused}");
    assert!(!refused.is_retryable());
    assert_eq!(broker.counters().get(Counter::AuthFailures), 2);
    broker.shutdown().await;
}

#[tokio::test]
async fn in_process_subscriber_sees_device_messages_with_the_publisher_identity() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let mut messages = broker.subscribe("site/+/telemetry").unwrap();
    let device = Client::connect(addr, options("dev-a-1", "dev-a")).await.unwrap();
    device.publish("site/a/telemetry", b"{\"t\":1}".to_vec(), QoS::AtMostOnce, false).await.unwrap();
    device.publish("site/a/telemetry", b"{\"t\":2}".to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    let first = recv(&mut messages).await;
    assert_eq!(&*first.topic, "site/a/telemetry");
    assert_eq!(&*first.payload, b"{\"t\":1}");
    assert_eq!(first.qos, QoS::AtMostOnce);
    assert_eq!(first.publisher, Identity::new("device site=a"));
    let second = recv(&mut messages).await;
    assert_eq!((&*second.payload, second.qos), (&b"{\"t\":2}"[..], QoS::AtLeastOnce));
    let counters = broker.counters();
    assert_eq!(counters.get(Counter::MessagesReceived), 2);
    assert_eq!(counters.get(Counter::MessagesDelivered), 2);
    assert_eq!(counters.get(Counter::ConnectionsOpen), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn publishes_outside_the_device_permission_are_dropped_and_counted() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let mut messages = broker.subscribe("#").unwrap();
    let device = Client::connect(addr, options("dev-a-1", "dev-a")).await.unwrap();
    device.publish("site/b/telemetry", b"x".to_vec(), QoS::AtMostOnce, false).await.unwrap();
    // QoS 1 is still acknowledged: MQTT 3.1.1 has no negative PUBACK.
    device.publish("site/b/telemetry", b"y".to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    device.publish("site/a/telemetry", b"ok".to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    let delivered = recv(&mut messages).await;
    assert_eq!(&*delivered.payload, b"ok");
    assert_eq!(broker.counters().get(Counter::DroppedNotPermitted), 2);

    let refused = device.subscribe("private/x", QoS::AtMostOnce).await.unwrap_err();
    assert!(matches!(refused, Error::SubscriptionRefused(_)));
    assert_eq!(broker.counters().get(Counter::SubscriptionsDenied), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn retained_messages_reach_late_subscribers_until_cleared() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let device = Client::connect(addr, options("dev-a-1", "dev-a")).await.unwrap();
    device.publish("site/a/state", b"running".to_vec(), QoS::AtLeastOnce, true).await.unwrap();
    device.publish("site/a/other", b"live".to_vec(), QoS::AtLeastOnce, false).await.unwrap();

    let viewer = Client::connect(addr, options("viewer-1", "viewer")).await.unwrap();
    let mut subscription = viewer.subscribe("site/a/#", QoS::AtLeastOnce).await.unwrap();
    assert_eq!(subscription.granted, QoS::AtLeastOnce);
    let retained = tokio::time::timeout(Duration::from_secs(5), subscription.recv()).await.unwrap().unwrap();
    assert_eq!(
        (retained.topic.as_str(), &retained.payload[..], retained.retain),
        ("site/a/state", &b"running"[..], true)
    );

    let mut in_process = broker.subscribe("site/a/state").unwrap();
    let retained = recv(&mut in_process).await;
    assert!(retained.retain);
    assert_eq!(retained.publisher, Identity::new("device site=a"));

    // Live delivery of a retained publish carries retain = 0 to existing subscribers.
    device.publish("site/a/state", b"idle".to_vec(), QoS::AtLeastOnce, true).await.unwrap();
    let live = tokio::time::timeout(Duration::from_secs(5), subscription.recv()).await.unwrap().unwrap();
    assert_eq!((&live.payload[..], live.retain), (&b"idle"[..], false));

    // An empty retained payload clears it.
    device.publish("site/a/state", Vec::new(), QoS::AtLeastOnce, true).await.unwrap();
    let mut late = broker.subscribe("site/a/state").unwrap();
    device.publish("site/a/state", b"marker".to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    assert_eq!(&*recv(&mut late).await.payload, b"marker");
    broker.shutdown().await;
}

#[tokio::test]
async fn will_is_published_when_the_socket_drops_but_not_after_disconnect() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let mut wills = broker.subscribe("site/a/death").unwrap();
    let will = LastWill {
        topic: "site/a/death".into(),
        payload: b"gone".to_vec(),
        qos: QoS::AtLeastOnce,
        retain: false,
    };

    let mut options_with_will = options("polite", "dev-a");
    options_with_will.will = Some(will.clone());
    let polite = Client::connect(addr, options_with_will).await.unwrap();
    polite.disconnect().await.unwrap();

    let (stream, connack) = raw_connect(addr, device_connect("dropper", 0, Some(will))).await;
    assert_eq!(connack, [0x20, 2, 0, 0]);
    drop(stream);
    let message = recv(&mut wills).await;
    assert_eq!((&*message.payload, &message.publisher), (&b"gone"[..], &Identity::new("device site=a")));
    assert_eq!(broker.counters().get(Counter::WillsPublished), 1);
    assert!(wills.try_recv().is_err(), "the DISCONNECTed client's will must not be published");
    broker.shutdown().await;
}

#[tokio::test]
async fn keepalive_timeout_closes_the_connection_and_publishes_the_will() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let mut wills = broker.subscribe("site/a/death").unwrap();
    let will = LastWill {
        topic: "site/a/death".into(),
        payload: b"silent".to_vec(),
        qos: QoS::AtMostOnce,
        retain: false,
    };
    let started = tokio::time::Instant::now();
    let (_stream, _) = raw_connect(addr, device_connect("silent", 1, Some(will))).await;
    let message = recv(&mut wills).await;
    assert_eq!(&*message.payload, b"silent");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1400), "closed after {waited:?}, before 1.5 x keepalive");
    assert_eq!(broker.counters().get(Counter::KeepaliveTimeouts), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn qos1_messages_flow_to_network_subscribers() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let viewer = Client::connect(addr, options("viewer-1", "viewer")).await.unwrap();
    let mut at_least_once = viewer.subscribe("site/a/+", QoS::ExactlyOnce).await.unwrap();
    assert_eq!(at_least_once.granted, QoS::AtLeastOnce, "the broker grants at most QoS 1");
    let mut at_most_once = viewer.subscribe("site/a/x", QoS::AtMostOnce).await.unwrap();
    let device = Client::connect(addr, options("dev-a-1", "dev-a")).await.unwrap();
    for idx in 0..300u32 {
        device.publish("site/a/x", idx.to_be_bytes().to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    }
    for idx in 0..300u32 {
        let message =
            tokio::time::timeout(Duration::from_secs(5), at_least_once.recv()).await.unwrap().unwrap();
        assert_eq!(message.payload, idx.to_be_bytes());
        // Overlapping subscriptions get one delivery, at the higher QoS.
        assert_eq!(message.qos, QoS::AtLeastOnce);
        assert!(message.packet_id.is_some());
        let copy = at_most_once.recv().await.unwrap();
        assert_eq!(copy.payload, idx.to_be_bytes());
    }
    // 300 > max_inflight would stall unless the client's PUBACKs free the window.
    assert_eq!(broker.counters().get(Counter::MessagesDelivered), 300);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_second_connection_with_the_same_client_id_takes_over() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let mut wills = broker.subscribe("site/a/death").unwrap();
    let mut first_options = options("machine-7", "dev-a");
    first_options.will = Some(LastWill {
        topic: "site/a/death".into(),
        payload: b"x".to_vec(),
        qos: QoS::AtMostOnce,
        retain: false,
    });
    let first = Client::connect(addr, first_options).await.unwrap();
    let second = Client::connect(addr, options("machine-7", "dev-a")).await.unwrap();
    wait_for("the first connection to close", || first.is_closed()).await;
    assert_eq!(broker.counters().get(Counter::Takeovers), 1);
    second.publish("site/a/ok", b"1".to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    assert!(wills.try_recv().is_err(), "no will on takeover");
    // The same account with another token may: a device back with a new token.
    let rotated = Client::connect(addr, options("machine-7", "dev-a-new-token")).await.unwrap();
    wait_for("the second connection to close", || second.is_closed()).await;
    assert_eq!(broker.counters().get(Counter::Takeovers), 2);
    let second = rotated;
    // Another account may not take the id: refused, and the device stays connected.
    let intruder = Client::connect(addr, options("machine-7", "viewer")).await.unwrap_err();
    assert!(
        matches!(intruder, Error::ConnectionRefused(ConnectReturnCode::IdentifierRejected)),
        "{intruder}"
    );
    assert!(!second.is_closed());
    assert_eq!(broker.counters().get(Counter::Takeovers), 2);
    broker.shutdown().await;
}

#[tokio::test]
async fn connections_whose_permission_is_withdrawn_are_closed_with_their_will() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let mut wills = broker.subscribe("site/a/death").unwrap();
    let mut device_options = options("dev-a-1", "dev-a");
    device_options.will = Some(LastWill {
        topic: "site/a/death".into(),
        payload: b"gone".to_vec(),
        qos: QoS::AtMostOnce,
        retain: false,
    });
    let device = Client::connect(addr, device_options).await.unwrap();
    let viewer = Client::connect(addr, options("viewer-1", "viewer")).await.unwrap();
    assert_eq!(broker.connected_identities(), [Identity::new("device site=a"), Identity::new("viewer")]);
    assert_eq!(broker.disconnect_where(|identity| identity.as_str() == "device site=a"), 1);
    wait_for("the device to be disconnected", || device.is_closed()).await;
    assert_eq!(&*recv(&mut wills).await.payload, b"gone");
    assert!(!viewer.is_closed());
    wait_for("the device to be forgotten", || broker.connected_identities() == [Identity::new("viewer")])
        .await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_network_subscribers_lose_qos0_messages_instead_of_growing_queues() {
    let config = BrokerConfig { subscriber_queue_capacity: 16, ..BrokerConfig::default() };
    let (broker, addr) = start(config).await;
    // Subscribes, then never reads: the socket buffers fill, then the bounded queue.
    let (mut stream, _) = raw_connect(
        addr,
        Connect {
            client_id: "sleepy".into(),
            keep_alive: 0,
            clean_session: true,
            will: None,
            username: Some("viewer".into()),
            password: Some(b"secret".to_vec()),
        },
    )
    .await;
    assert_eq!(raw_subscribe(&mut stream, "bulk/#", QoS::AtMostOnce).await, [0x90, 3, 0, 1, 0]);

    let payload = vec![7u8; 1024];
    let n_messages = 20_000u64;
    for idx in 0..n_messages {
        broker.publish("bulk/data", &payload, QoS::AtMostOnce, false).await.unwrap();
        if idx % 64 == 0 {
            // Let the connection's writer run, as it would on a busy broker.
            tokio::task::yield_now().await;
        }
    }
    let counters = broker.counters();
    let dropped = counters.get(Counter::DroppedQueueFull);
    let delivered = counters.get(Counter::MessagesDelivered);
    assert_eq!(dropped + delivered, n_messages);
    // What was not dropped is the 16-message queue plus what the kernel's socket buffers took
    // (about 3 MB here); the other 17 MB were dropped instead of queued.
    assert!(delivered < n_messages / 2, "delivered {delivered}, dropped {dropped}");
    drop(stream);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_full_in_process_channel_holds_back_the_publisher() {
    let config = BrokerConfig { in_process_capacity: 4, ..BrokerConfig::default() };
    let (broker, addr) = start(config).await;
    let mut messages = broker.subscribe("site/a/#").unwrap();
    let device = Client::connect(addr, options("dev-a-1", "dev-a")).await.unwrap();
    let publisher = tokio::spawn(async move {
        for idx in 0..50u32 {
            device.publish("site/a/x", idx.to_be_bytes().to_vec(), QoS::AtLeastOnce, false).await.unwrap();
        }
    });
    // The channel holds 4; the fifth publish waits inside the broker, so its PUBACK is held too.
    wait_for("the channel to fill", || broker.counters().get(Counter::MessagesDelivered) == 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(broker.counters().get(Counter::MessagesDelivered), 4);
    assert!(!publisher.is_finished());
    for idx in 0..50u32 {
        assert_eq!(&*recv(&mut messages).await.payload, idx.to_be_bytes());
    }
    publisher.await.unwrap();
    assert_eq!(broker.counters().get(Counter::DroppedQueueFull), 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn malformed_and_oversized_input_closes_only_that_connection() {
    let config = BrokerConfig { max_packet_size: 2048, ..BrokerConfig::default() };
    let (broker, addr) = start(config).await;
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage.write_all(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).await.unwrap();
    let mut rest = Vec::new();
    garbage.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());

    let device = Client::connect(addr, options("dev-a-1", "dev-a")).await.unwrap();
    let too_big = device.publish("site/a/x", vec![0u8; 4096], QoS::AtMostOnce, false).await;
    assert!(too_big.is_ok(), "the client does not know the broker's limit");
    wait_for("the oversized publisher to be disconnected", || device.is_closed()).await;
    assert_eq!(broker.counters().get(Counter::ProtocolErrors), 2);

    // A protocol level other than 4 gets return code 1.
    let mut old = TcpStream::connect(addr).await.unwrap();
    old.write_all(&[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 0, 0, 1, b'c']).await.unwrap();
    let mut connack = [0u8; 4];
    old.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 1]);

    let ok = Client::connect(addr, options("dev-a-2", "dev-a")).await.unwrap();
    ok.publish("site/a/x", b"fine".to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn a_connect_larger_than_sign_in_needs_closes_the_connection() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    // A CONNECT announcing 100 KB (under the 1 MiB packet limit of signed-in clients).
    let mut big = TcpStream::connect(addr).await.unwrap();
    let remaining = 100_000u32;
    let mut header = vec![0x10];
    let mut left = remaining;
    loop {
        let byte = (left % 128) as u8;
        left /= 128;
        header.push(if left > 0 { byte | 0x80 } else { byte });
        if left == 0 {
            break;
        }
    }
    big.write_all(&header).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), big.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty(), "closed without an answer");
    assert_eq!(broker.counters().get(Counter::ProtocolErrors), 1);
    // Signed in, a client may send packets of that size.
    let mut messages = broker.subscribe("site/a/big").unwrap();
    let device = Client::connect(addr, options("dev-a-1", "dev-a")).await.unwrap();
    device.publish("site/a/big", vec![7u8; 100_000], QoS::AtLeastOnce, false).await.unwrap();
    assert_eq!(recv(&mut messages).await.payload.len(), 100_000);
    broker.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_clients_and_in_process_subscriptions() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let mut messages = broker.subscribe("#").unwrap();
    let mut wills = broker.subscribe("site/a/death").unwrap();
    let mut with_will = options("dev-a-1", "dev-a");
    with_will.will = Some(LastWill {
        topic: "site/a/death".into(),
        payload: b"x".to_vec(),
        qos: QoS::AtMostOnce,
        retain: false,
    });
    let device = Client::connect(addr, with_will).await.unwrap();
    broker.shutdown().await;
    wait_for("the client to see the close", || device.is_closed()).await;
    assert!(tokio::time::timeout(Duration::from_secs(5), messages.recv()).await.unwrap().is_none());
    assert!(wills.recv().await.is_none(), "no will at shutdown");
    assert_eq!(broker.counters().get(Counter::ConnectionsOpen), 0);
    assert!(matches!(broker.publish("a", b"x", QoS::AtMostOnce, false).await, Err(Error::ShutDown)));
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
    broker.shutdown().await;
}

#[tokio::test]
async fn the_retained_store_is_bounded_by_count_and_bytes() {
    let config = BrokerConfig { max_retained: 2, max_retained_bytes: 100, ..BrokerConfig::default() };
    let (broker, _) = start(config).await;
    broker.publish("r/a", b"1", QoS::AtMostOnce, true).await.unwrap();
    broker.publish("r/b", b"2", QoS::AtMostOnce, true).await.unwrap();
    broker.publish("r/c", b"3", QoS::AtMostOnce, true).await.unwrap();
    assert_eq!(broker.counters().get(Counter::DroppedRetainedFull), 1);
    // Replacing an existing topic is allowed while the bytes fit.
    broker.publish("r/a", &[b'x'; 90], QoS::AtMostOnce, true).await.unwrap();
    broker.publish("r/b", &[b'y'; 20], QoS::AtMostOnce, true).await.unwrap();
    assert_eq!(broker.counters().get(Counter::DroppedRetainedFull), 2);
    // Clearing frees room for a new topic.
    broker.publish("r/a", b"", QoS::AtMostOnce, true).await.unwrap();
    broker.publish("r/c", b"3", QoS::AtMostOnce, true).await.unwrap();
    let mut retained = broker.subscribe("r/#").unwrap();
    let mut payloads = [recv(&mut retained).await, recv(&mut retained).await];
    payloads.sort_by(|a, b| a.topic.cmp(&b.topic));
    let got: Vec<(&str, &[u8])> = payloads.iter().map(|m| (&*m.topic, &*m.payload)).collect();
    assert_eq!(got, [("r/b", &b"2"[..]), ("r/c", &b"3"[..])]);
    assert_eq!(broker.counters().get(Counter::DroppedRetainedFull), 2);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_keeps_its_connection_and_loses_nothing_at_qos1() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let mut viewer_options = options("viewer-1", "viewer");
    viewer_options.keep_alive = Duration::from_secs(1);
    viewer_options.subscription_capacity = 2;
    let viewer = Client::connect(addr, viewer_options).await.unwrap();
    let mut subscription = viewer.subscribe("site/a/#", QoS::AtLeastOnce).await.unwrap();
    let device = Client::connect(addr, options("dev-a-1", "dev-a")).await.unwrap();
    for idx in 0..20u32 {
        device.publish("site/a/x", idx.to_be_bytes().to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    }
    // Longer than 1.5 x keepalive with the subscription full and reading paused.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!viewer.is_closed());
    for idx in 0..20u32 {
        let message =
            tokio::time::timeout(Duration::from_secs(5), subscription.recv()).await.unwrap().unwrap();
        assert_eq!(message.payload, idx.to_be_bytes());
    }
    assert_eq!(broker.counters().get(Counter::KeepaliveTimeouts), 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn pipelined_qos1_publishes_are_all_acknowledged_in_order() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let mut messages = broker.subscribe("site/a/#").unwrap();
    let consumer = tokio::spawn(async move {
        for idx in 0..2000u32 {
            let message = recv(&mut messages).await;
            assert_eq!((&*message.payload, message.qos), (&idx.to_be_bytes()[..], QoS::AtLeastOnce));
        }
    });
    let device = Client::connect(addr, options("dev-a-1", "dev-a")).await.unwrap();
    let mut pending = Vec::new();
    for idx in 0..2000u32 {
        let payload = idx.to_be_bytes().to_vec();
        pending.push(device.start_publish("site/a/x", payload, QoS::AtLeastOnce, false).await.unwrap());
    }
    for ack in pending {
        ack.acknowledged().await.unwrap();
    }
    consumer.await.unwrap();
    assert_eq!(broker.counters().get(Counter::MessagesReceived), 2000);
    broker.shutdown().await;
}

#[test]
fn counters_are_listed_once_in_declaration_order_with_unique_names() {
    let mut names = std::collections::HashSet::new();
    for (idx, counter) in Counter::ALL.iter().enumerate() {
        assert_eq!(*counter as usize, idx, "{counter:?}");
        assert!(counter.name().starts_with("mqtt_"));
        assert!(names.insert(counter.name()), "duplicate name {}", counter.name());
    }
    let snapshot = Router::new(BrokerConfig::default()).counters.snapshot();
    assert_eq!(snapshot.iter().count(), Counter::ALL.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_qos1_subscriber_is_disconnected_after_the_timeout_and_its_will_published() {
    let config = BrokerConfig {
        subscriber_queue_capacity: 8,
        max_inflight: 8,
        slow_subscriber_timeout: Duration::from_millis(200),
        ..BrokerConfig::default()
    };
    let (broker, addr) = start(config).await;
    let mut wills = broker.subscribe("site/a/death").unwrap();
    let will = LastWill {
        topic: "site/a/death".into(),
        payload: b"stuck".to_vec(),
        qos: QoS::AtMostOnce,
        retain: false,
    };
    let (mut stream, _) = raw_connect(addr, device_connect("stuck", 0, Some(will))).await;
    assert_eq!(raw_subscribe(&mut stream, "site/a/bulk", QoS::AtLeastOnce).await, [0x90, 3, 0, 1, 1]);

    // It never sends PUBACK: 8 in flight, 8 queued, then what finds the queue full is dropped
    // without the publisher waiting, and once it has been full for 200 ms the subscriber goes.
    let started = std::time::Instant::now();
    while broker.counters().get(Counter::DroppedSlowSubscriber) == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the stuck subscriber was never dropped");
        let publish = broker.publish("site/a/bulk", b"x", QoS::AtLeastOnce, false);
        tokio::time::timeout(Duration::from_millis(50), publish).await.expect("a publisher waited").unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(broker.counters().get(Counter::DroppedSlowSubscriber), 1);
    assert!(broker.counters().get(Counter::DroppedQueueFull) > 0);
    assert_eq!(&*recv(&mut wills).await.payload, b"stuck");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await.unwrap().unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn durable_acks_wait_until_the_in_process_subscriber_lets_go() {
    let (broker, addr) = start(BrokerConfig { durable_acks: true, ..BrokerConfig::default() }).await;
    let mut store = broker.subscribe("site/a/#").unwrap();
    let client = Client::connect(addr, options("dev-a-1", "dev-a")).await.unwrap();
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.publish("site/a/m1", b"one".to_vec(), QoS::AtLeastOnce, false).await }
    });
    let second = tokio::spawn({
        let client = client.clone();
        async move { client.publish("site/a/m1", b"two".to_vec(), QoS::AtLeastOnce, false).await }
    });
    let one = recv(&mut store).await;
    let two = recv(&mut store).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !first.is_finished() && !second.is_finished(),
        "no PUBACK while the subscriber holds the messages"
    );
    // Releasing the second first must not let its PUBACK overtake the first's.
    two.receipt.release();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!first.is_finished() && !second.is_finished(), "PUBACKs go out in arrival order");
    one.receipt.release();
    tokio::time::timeout(Duration::from_secs(5), first).await.unwrap().unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(5), second).await.unwrap().unwrap().unwrap();
    // Messages nobody subscribed to are acknowledged at once.
    tokio::time::timeout(
        Duration::from_secs(5),
        client.publish("site/a-other", b"x".to_vec(), QoS::AtLeastOnce, false),
    )
    .await
    .unwrap()
    .unwrap();
    broker.shutdown().await;
}

/// What the in-process subscriber drops unreleased (it stopped before storing it) is never
/// acknowledged: the publisher is disconnected and sends it again after reconnecting.
#[tokio::test]
async fn a_message_the_store_drops_unreleased_is_never_acknowledged() {
    let (broker, addr) = start(BrokerConfig { durable_acks: true, ..BrokerConfig::default() }).await;
    let mut store = broker.subscribe("site/a/#").unwrap();
    let (mut stream, _) = raw_connect(addr, device_connect("dev-a-lost", 0, None)).await;
    let mut out = Vec::new();
    codec::encode_publish(
        "site/a/x",
        b"1",
        QoS::AtLeastOnce,
        false,
        false,
        codec::PacketId::new(5),
        &mut out,
    )
    .unwrap();
    stream.write_all(&out).await.unwrap();
    let taken = recv(&mut store).await;
    drop(taken);
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty(), "no PUBACK for a message nobody stored: {rest:?}");
    // One still queued for the subscriber when it goes is not acknowledged either.
    let (mut second, _) = raw_connect(addr, device_connect("dev-a-queued", 0, None)).await;
    out.clear();
    codec::encode_publish(
        "site/a/y",
        b"2",
        QoS::AtLeastOnce,
        false,
        false,
        codec::PacketId::new(6),
        &mut out,
    )
    .unwrap();
    second.write_all(&out).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(store);
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty(), "no PUBACK for a message left in the queue: {rest:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_filter_deeper_than_the_limit_closes_only_that_connection() {
    let (broker, addr) = start(BrokerConfig::default()).await;
    let (mut stream, connack) = raw_connect(addr, device_connect("dev-a-deep", 0, None)).await;
    assert_eq!(connack, [0x20, 2, 0, 0]);
    // 15,000 levels: the subscription tree, walked recursively, would overflow the stack.
    let deep = vec!["+"; 15_000].join("/");
    let mut out = vec![0x82];
    let body_len = 2 + 2 + deep.len() + 1;
    let mut remaining = body_len;
    loop {
        let byte = (remaining % 128) as u8;
        remaining /= 128;
        out.push(if remaining > 0 { byte | 0x80 } else { byte });
        if remaining == 0 {
            break;
        }
    }
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(deep.len() as u16).to_be_bytes());
    out.extend_from_slice(deep.as_bytes());
    out.push(0);
    stream.write_all(&out).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty(), "no SUBACK for a filter of 15,000 levels: {:?}", &rest[..rest.len().min(8)]);
    assert_eq!(broker.counters().get(Counter::ProtocolErrors), 1);
    let viewer = Client::connect(addr, options("viewer-1", "viewer")).await.unwrap();
    viewer.subscribe(&vec!["+"; 200].join("/"), QoS::AtLeastOnce).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn durable_acks_wait_for_the_store_only_not_for_retained_copies_or_other_clients() {
    let config = BrokerConfig { durable_acks: true, max_inflight: 8, ..BrokerConfig::default() };
    let (broker, addr) = start(config).await;
    let stored = counting_store(&broker, "site/a/#");
    // Another client subscribes at QoS 1 and never acknowledges anything.
    let (mut silent, _) = raw_connect(addr, device_connect("dev-a-silent", 0, None)).await;
    raw_subscribe(&mut silent, "site/a/#", QoS::AtLeastOnce).await;

    let device = Client::connect(addr, options("dev-a-1", "dev-a")).await.unwrap();
    let publishing = async {
        // A retained message is kept by the broker, yet acknowledged once stored.
        device.publish("site/a/status", b"online".to_vec(), QoS::AtLeastOnce, true).await.unwrap();
        // Far more than the silent client's in-flight window of 8.
        for i in 0..300 {
            device
                .publish("site/a/telemetry", format!("{i}").into_bytes(), QoS::AtLeastOnce, false)
                .await
                .unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(5), publishing).await.expect("a PUBACK was held back");
    broker.shutdown().await;
    assert_eq!(stored.await.unwrap(), 301);
    drop(silent);
}

#[tokio::test]
async fn with_durable_acks_a_qos2_pubrec_waits_until_the_message_is_stored() {
    let (broker, addr) = start(BrokerConfig { durable_acks: true, ..BrokerConfig::default() }).await;
    let mut store = broker.subscribe("site/a/#").unwrap();
    let (mut stream, _) = raw_connect(addr, device_connect("dev-a-q2", 0, None)).await;
    let mut out = Vec::new();
    let id = codec::PacketId::new(7);
    codec::encode_publish("site/a/x", b"once", QoS::ExactlyOnce, false, false, id, &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
    let held = recv(&mut store).await;
    let mut pubrec = [0u8; 4];
    let early = tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut pubrec)).await;
    assert!(early.is_err(), "PUBREC before the store let go of the message");
    // The same PUBLISH again (DUP): routed once, and its PUBREC waits behind the first.
    stream.write_all(&out).await.unwrap();
    held.receipt.release();
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut pubrec)).await.unwrap().unwrap();
        assert_eq!(pubrec, [0x50, 2, 0, 7]);
    }
    assert!(tokio::time::timeout(Duration::from_millis(200), store.recv()).await.is_err(), "routed twice");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_that_cannot_keep_up_never_holds_a_publisher_back() {
    let config = BrokerConfig {
        subscriber_queue_capacity: 16,
        max_inflight: 8,
        slow_subscriber_timeout: Duration::from_secs(30),
        ..BrokerConfig::default()
    };
    let (broker, addr) = start(config).await;
    let stored = counting_store(&broker, "site/a/#");
    // Subscribed at QoS 1, reading nothing: its 8 in flight and 16 queued fill at once.
    let (mut slow, _) = raw_connect(addr, device_connect("dev-a-slow", 0, None)).await;
    raw_subscribe(&mut slow, "site/a/#", QoS::AtLeastOnce).await;
    let device = Client::connect(addr, options("dev-a-1", "dev-a")).await.unwrap();
    let publishing = async {
        for i in 0..300 {
            device
                .publish("site/a/telemetry", format!("{i}").into_bytes(), QoS::AtLeastOnce, false)
                .await
                .unwrap();
        }
    };
    // Well inside the 30 s the slow subscriber may stay full: the publisher never waited for it.
    tokio::time::timeout(Duration::from_secs(5), publishing).await.expect("the publisher was held back");
    assert!(broker.counters().get(Counter::DroppedQueueFull) >= 250);
    broker.shutdown().await;
    assert_eq!(stored.await.unwrap(), 300, "the store got every message");
    drop(slow);
}

#[test]
fn the_first_reason_to_close_a_connection_decides() {
    use super::router::{Kick, kick_once};
    let (kick, reason) = watch::channel(None);
    assert!(kick_once(&kick, Kick::Revoked));
    assert!(!kick_once(&kick, Kick::SlowSubscriber), "a second reason is not taken");
    assert_eq!(*reason.borrow(), Some(Kick::Revoked));
}
