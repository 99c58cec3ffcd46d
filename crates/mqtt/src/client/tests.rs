//! The client against a scripted server: what it sends, and when.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::*;
use crate::codec::ConnAck;

fn id(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn publish(topic: &str, qos: QoS, packet_id: Option<PacketId>) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id,
        payload: topic.as_bytes().to_vec(),
    })
}

/// A server that accepts one client, checks that it asks to keep its session, sends it three
/// messages of that session (no SUBSCRIBE has been made on this connection) and reports the
/// packets the client sends back, in order, until it has three.
async fn session_server(listener: TcpListener) -> Vec<Packet> {
    let (stream, _) = listener.accept().await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut input = PacketReader::new(read, codec::DEFAULT_MAX_PACKET_SIZE);
    let Ok(Some(Packet::Connect(connect))) = input.next_packet().await else { panic!("expected CONNECT") };
    assert!(!connect.clean_session, "the client asked for a clean session");
    let mut out = Vec::new();
    let accepted = ConnAck { session_present: true, code: ConnectReturnCode::Accepted };
    codec::encode(&Packet::ConnAck(accepted), &mut out).unwrap();
    codec::encode(&publish("kept/1", QoS::AtLeastOnce, Some(id(1))), &mut out).unwrap();
    codec::encode(&publish("kept/2", QoS::AtLeastOnce, Some(id(2))), &mut out).unwrap();
    codec::encode(&publish("kept/3", QoS::AtMostOnce, None), &mut out).unwrap();
    write.write_all(&out).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let packet = input.next_packet().await.unwrap().expect("the client hung up");
        if let Packet::Publish(Publish { packet_id: Some(answer), .. }) = &packet {
            out.clear();
            codec::encode(&Packet::PubAck(*answer), &mut out).unwrap();
            write.write_all(&out).await.unwrap();
        }
        seen.push(packet);
    }
    seen
}

#[tokio::test]
async fn an_inbox_acknowledges_qos1_only_after_release_and_in_arrival_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(session_server(listener));
    let mut options = ClientOptions::new("platform-1");
    options.clean_session = false;
    let (client, mut inbox) = Client::connect_with_inbox(addr, options, 8).await.unwrap();
    let first = inbox.recv().await.unwrap();
    let second = inbox.recv().await.unwrap();
    let third = inbox.recv().await.unwrap();
    assert_eq!(
        [&*first.publish.topic, &*second.publish.topic, &*third.publish.topic],
        ["kept/1", "kept/2", "kept/3"]
    );
    // Nothing acknowledged yet: the first packet the server sees is this publish.
    client.publish("out/1", b"x".to_vec(), QoS::AtLeastOnce, false).await.unwrap();
    // Released out of order, acknowledged in order.
    second.receipt.release();
    third.receipt.release();
    first.receipt.release();
    let seen = server.await.unwrap();
    assert!(matches!(&seen[0], Packet::Publish(p) if p.topic == "out/1"), "{seen:?}");
    assert_eq!(seen[1..], [Packet::PubAck(id(1)), Packet::PubAck(id(2))]);
}
