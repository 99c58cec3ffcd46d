//! One client connection inside the broker: the CONNECT handshake and authentication, then a reader
//! (this task: decode, check permissions, route, answer) and a writer task that owns the socket's
//! write half and drains two bounded queues — control packets (acks, pings) first, then messages
//! for this subscriber, batching whatever is ready into one write.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};

use super::counters::Counter;
use super::router::{Kick, Outbound, Router, Sink};
use super::subscriptions::SubscriberKey;
use super::{AuthRejection, Credentials, Hooks, Identity, Message};
use crate::codec::{
    self, CodecError, ConnAck, ConnectReturnCode, LastWill, Packet, PacketId, QoS, SubAck,
    SubscribeReturnCode,
};
use crate::io::{PacketReader, ReadError};

/// Control packets waiting for the writer; small, since the reader waits when it is full.
const CONTROL_QUEUE_CAPACITY: usize = 64;
/// The writer stops batching once this much is encoded and writes it.
const WRITE_BATCH_BYTES: usize = 64 * 1024;
/// How long a finished connection's writer may take to flush before it is aborted.
const WRITER_GRACE: Duration = Duration::from_secs(1);

/// Why a connection ended; decides whether the will is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Disconnect,
    SocketClosed,
    KeepaliveTimeout,
    ProtocolError,
    Kicked(Kick),
    Shutdown,
}

impl End {
    fn publishes_will(self) -> bool {
        match self {
            End::SocketClosed | End::KeepaliveTimeout | End::ProtocolError => true,
            End::Kicked(kick) => !matches!(kick, Kick::Takeover | Kick::Abandoned),
            End::Disconnect | End::Shutdown => false,
        }
    }
}

/// What the reader asks the writer to do.
#[derive(Debug)]
enum Control {
    Send(Packet),
    /// The client acknowledged a QoS 1 message we sent.
    Acked(PacketId),
}

/// The largest CONNECT packet accepted (client id, user name, token and will together).
pub(crate) const MAX_CONNECT_PACKET: usize = 16 * 1024;

/// Serves one accepted socket until it closes.
pub(crate) async fn serve<H: Hooks>(
    stream: TcpStream,
    peer: SocketAddr,
    router: Arc<Router>,
    hooks: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "set TCP_NODELAY failed");
    }
    router.counters.incr(Counter::ConnectionsOpen);
    let _open = OpenConnection(&router);
    let (read_half, mut write_half) = stream.into_split();
    // Until it signs in, a connection may send no more than a CONNECT needs: unauthenticated
    // clients announcing megabyte packets would otherwise hold a megabyte each.
    let mut input = PacketReader::new(read_half, router.config.max_packet_size.min(MAX_CONNECT_PACKET));

    let connect = tokio::select! {
        first = tokio::time::timeout(router.config.connect_timeout, input.next_packet()) => first,
        () = super::stopped(&mut shutdown) => return,
    };
    let mut connect = match connect {
        Ok(Ok(Some(Packet::Connect(connect)))) => connect,
        Ok(Err(ReadError::Codec(CodecError::UnsupportedProtocolLevel(level)))) => {
            tracing::debug!(%peer, level, "refused unsupported protocol level");
            refuse(&mut write_half, ConnectReturnCode::UnacceptableProtocolVersion).await;
            return;
        }
        Ok(Ok(None) | Err(ReadError::Io(_))) | Err(_) => return,
        Ok(Ok(Some(_)) | Err(ReadError::Codec(_))) => {
            router.counters.incr(Counter::ProtocolErrors);
            return;
        }
    };
    let key = router.next_key();
    if connect.client_id.is_empty() {
        if !connect.clean_session {
            router.counters.incr(Counter::AuthFailures);
            refuse(&mut write_half, ConnectReturnCode::IdentifierRejected).await;
            return;
        }
        connect.client_id = format!("auto-{key}");
    }
    let credentials = Credentials {
        client_id: &connect.client_id,
        username: connect.username.as_deref(),
        password: connect.password.as_deref(),
        peer,
    };
    let verdict = tokio::time::timeout(router.config.connect_timeout, hooks.authenticate(credentials))
        .await
        .unwrap_or(Err(AuthRejection::ServerUnavailable));
    let identity = match verdict {
        Ok(identity) => identity,
        Err(rejection) => {
            router.counters.incr(Counter::AuthFailures);
            tracing::debug!(%peer, client_id = %connect.client_id, ?rejection, "mqtt connect refused");
            let code = match rejection {
                AuthRejection::IdentifierRejected => ConnectReturnCode::IdentifierRejected,
                AuthRejection::ServerUnavailable => ConnectReturnCode::ServerUnavailable,
                AuthRejection::BadUserNameOrPassword => ConnectReturnCode::BadUserNameOrPassword,
                AuthRejection::NotAuthorized => ConnectReturnCode::NotAuthorized,
            };
            refuse(&mut write_half, code).await;
            return;
        }
    };
    // The password is not needed any more; don't keep it in memory for the connection's lifetime.
    connect.password = None;
    input.set_max_packet_size(router.config.max_packet_size);

    let (kick_tx, mut kick_rx) = watch::channel(None);
    let kick = Arc::new(kick_tx);
    let (data_tx, data_rx) = mpsc::channel(router.config.subscriber_queue_capacity);
    let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE_CAPACITY);
    let sink = Sink::network(data_tx, kick.clone());
    if !router.connect(key, &connect.client_id, &identity, sink.clone()) {
        router.counters.incr(Counter::AuthFailures);
        tracing::debug!(%peer, client_id = %connect.client_id, %identity, "mqtt client id held by another identity");
        refuse(&mut write_half, ConnectReturnCode::IdentifierRejected).await;
        return;
    }
    let accepted = ConnAck { session_present: false, code: ConnectReturnCode::Accepted };
    // Cannot fail: the queue is new and empty.
    let _ = control_tx.try_send(Control::Send(Packet::ConnAck(accepted)));
    let acks = router.config.durable_acks.then(|| {
        // Bounded by the in-flight window: a client that floods QoS 1 waits for its acks.
        let (acks, mut pending) =
            mpsc::channel::<(Packet, tokio::sync::oneshot::Receiver<()>)>(router.config.max_inflight);
        let (control, kick) = (control_tx.clone(), kick.clone());
        tokio::spawn(async move {
            while let Some((ack, released)) = pending.recv().await {
                // Every copy gone, the message is done with: acknowledge it now. One abandoned
                // (not stored) gets no acknowledgement, nor may any after it (they keep their
                // order): the client is disconnected and sends them again.
                if released.await.is_err() {
                    super::router::kick_once(&kick, Kick::Abandoned);
                    break;
                }
                if control.send(Control::Send(ack)).await.is_err() {
                    break;
                }
            }
        });
        acks
    });
    let writer = tokio::spawn(write_loop(write_half, control_rx, data_rx, router.config.max_inflight, kick));
    tracing::debug!(%peer, client_id = %connect.client_id, %identity, "mqtt client connected");

    let mut session = Session {
        router: router.clone(),
        hooks: hooks.clone(),
        identity,
        key,
        sink,
        control: control_tx,
        qos2_received: HashSet::new(),
        acks,
    };
    let keepalive =
        (connect.keep_alive > 0).then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
    let end = tokio::select! {
        end = session.run(&mut input, keepalive) => end,
        kick = kick_rx.wait_for(Option::is_some) => match kick {
            Ok(kick) => End::Kicked(kick.unwrap_or(Kick::WriteFailed)),
            Err(_) => End::Kicked(Kick::WriteFailed),
        },
        () = super::stopped(&mut shutdown) => End::Shutdown,
    };
    tracing::debug!(%peer, client_id = %connect.client_id, ?end, "mqtt client disconnected");
    match end {
        End::KeepaliveTimeout => router.counters.incr(Counter::KeepaliveTimeouts),
        End::ProtocolError => router.counters.incr(Counter::ProtocolErrors),
        End::Kicked(Kick::SlowSubscriber) => tracing::warn!(
            %peer,
            client_id = %connect.client_id,
            "mqtt subscriber disconnected as too slow: its queue stayed full (what found it full was dropped)"
        ),
        End::Kicked(Kick::Abandoned) => tracing::info!(
            %peer,
            client_id = %connect.client_id,
            "mqtt client disconnected: a message it sent could not be stored; it sends it again after reconnecting"
        ),
        End::Kicked(Kick::Revoked) => {
            tracing::info!(%peer, client_id = %connect.client_id, "mqtt client disconnected: its permission was withdrawn")
        }
        _ => {}
    }
    router.disconnect(key, Some(&connect.client_id));
    // Taken over meanwhile, after it was already closing for another reason: the device is back,
    // so its "offline" must not follow the new connection's birth.
    let taken_over = *kick_rx.borrow() == Some(Kick::Takeover);
    if end.publishes_will()
        && !taken_over
        && let Some(will) = connect.will.take()
    {
        // Routing may wait for a full in-process channel; shutdown must not wait behind it.
        tokio::select! {
            () = session.publish_will(will) => {}
            () = super::stopped(&mut shutdown) => {}
        }
    }
    drop(session);
    let mut writer = writer;
    if tokio::time::timeout(WRITER_GRACE, &mut writer).await.is_err() {
        writer.abort();
    }
}

async fn refuse(write_half: &mut OwnedWriteHalf, code: ConnectReturnCode) {
    let mut out = Vec::with_capacity(4);
    let _ = codec::encode(&Packet::ConnAck(ConnAck { session_present: false, code }), &mut out);
    let _ = tokio::time::timeout(WRITER_GRACE, write_half.write_all(&out)).await;
    let _ = write_half.shutdown().await;
}

/// Keeps `ConnectionsOpen` right however the connection task ends.
struct OpenConnection<'a>(&'a Router);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.counters.decr(Counter::ConnectionsOpen);
    }
}

struct Session<H> {
    router: Arc<Router>,
    hooks: Arc<H>,
    identity: Identity,
    key: SubscriberKey,
    /// This connection's own queue, for retained messages after a SUBSCRIBE.
    sink: Sink,
    control: mpsc::Sender<Control>,
    /// QoS 2 packet ids routed and not yet released, so a redelivered PUBLISH is not routed twice.
    qos2_received: HashSet<PacketId>,
    /// With durable acks: the PUBACK (QoS 1) or PUBREC (QoS 2) of each message in arrival order,
    /// each with the signal that its message has been released by every subscriber; a task sends
    /// them in that order.
    acks: Option<mpsc::Sender<(Packet, tokio::sync::oneshot::Receiver<()>)>>,
}

impl<H: Hooks> Session<H> {
    async fn run(&mut self, input: &mut PacketReader<OwnedReadHalf>, keepalive: Option<Duration>) -> End {
        loop {
            let read = match keepalive {
                Some(limit) => match tokio::time::timeout(limit, input.next_packet()).await {
                    Ok(read) => read,
                    Err(_) => return End::KeepaliveTimeout,
                },
                None => input.next_packet().await,
            };
            let packet = match read {
                Ok(Some(packet)) => packet,
                Ok(None) => return End::SocketClosed,
                Err(ReadError::Io(_)) => return End::SocketClosed,
                Err(ReadError::Codec(error)) => {
                    tracing::debug!(identity = %self.identity, %error, "mqtt protocol error");
                    return End::ProtocolError;
                }
            };
            if let Err(end) = self.handle(packet).await {
                return end;
            }
        }
    }

    async fn handle(&mut self, packet: Packet) -> Result<(), End> {
        match packet {
            Packet::Publish(publish) => {
                let allowed = self.hooks.may_publish(&self.identity, &publish.topic);
                let mut message = Message {
                    topic: publish.topic.into(),
                    payload: publish.payload.into(),
                    qos: publish.qos,
                    retain: publish.retain,
                    publisher: self.identity.clone(),
                    receipt: super::Receipt::default(),
                };
                match (publish.qos, publish.packet_id) {
                    (QoS::AtMostOnce, _) => self.route_if(allowed, message).await,
                    (QoS::AtLeastOnce, Some(id)) => match &self.acks {
                        Some(acks) => {
                            let (receipt, released) = super::Receipt::new();
                            message.receipt = receipt;
                            self.route_if(allowed, message).await;
                            acks.send((Packet::PubAck(id), released)).await.map_err(|_| End::SocketClosed)?;
                        }
                        None => {
                            self.route_if(allowed, message).await;
                            self.send(Packet::PubAck(id)).await?;
                        }
                    },
                    // PUBREC is the publisher's leave to forget the message, so with durable acks
                    // it waits for the subscribers as a PUBACK does.
                    (QoS::ExactlyOnce, Some(id)) => {
                        let first = self.qos2_received.insert(id);
                        match &self.acks {
                            Some(acks) => {
                                // A resent PUBLISH was routed already: its receipt goes at once, and
                                // its PUBREC waits in turn behind the first copy's.
                                let (receipt, released) = super::Receipt::new();
                                if first {
                                    message.receipt = receipt;
                                    self.route_if(allowed, message).await;
                                }
                                acks.send((Packet::PubRec(id), released))
                                    .await
                                    .map_err(|_| End::SocketClosed)?;
                            }
                            None => {
                                if first {
                                    self.route_if(allowed, message).await;
                                }
                                self.send(Packet::PubRec(id)).await?;
                            }
                        }
                    }
                    (_, None) => return Err(End::ProtocolError),
                }
            }
            Packet::PubAck(id) => {
                self.control.send(Control::Acked(id)).await.map_err(|_| End::SocketClosed)?
            }
            Packet::PubRel(id) => {
                self.qos2_received.remove(&id);
                self.send(Packet::PubComp(id)).await?;
            }
            // We never send QoS 2, so these answer nothing of ours; ignore them.
            Packet::PubRec(_) | Packet::PubComp(_) => {}
            Packet::Subscribe(subscribe) => {
                let mut return_codes = Vec::with_capacity(subscribe.filters.len());
                let mut retained = Vec::new();
                for request in subscribe.filters {
                    if self.hooks.may_subscribe(&self.identity, &request.filter) {
                        let granted = request.qos.min(QoS::AtLeastOnce);
                        let matches = self.router.subscribe(self.key, &request.filter, granted);
                        retained.extend(matches.into_iter().map(|message| (message, granted)));
                        return_codes.push(SubscribeReturnCode::Success(granted));
                    } else {
                        self.router.counters.incr(Counter::SubscriptionsDenied);
                        return_codes.push(SubscribeReturnCode::Failure);
                    }
                }
                self.send(Packet::SubAck(SubAck { packet_id: subscribe.packet_id, return_codes })).await?;
                for (message, granted) in retained {
                    if self
                        .router
                        .deliver(&self.sink, message, granted, super::router::Wait::UpToTimeout)
                        .await
                        == super::router::Delivery::Delivered
                    {
                        self.router.counters.incr(Counter::MessagesDelivered);
                    }
                }
            }
            Packet::Unsubscribe(unsubscribe) => {
                for filter in &unsubscribe.filters {
                    self.router.unsubscribe(self.key, filter);
                }
                self.send(Packet::UnsubAck(unsubscribe.packet_id)).await?;
            }
            Packet::PingReq => self.send(Packet::PingResp).await?,
            Packet::Disconnect => return Err(End::Disconnect),
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => return Err(End::ProtocolError),
        }
        Ok(())
    }

    async fn route_if(&self, allowed: bool, message: Message) {
        if allowed {
            self.router.route(message).await;
        } else {
            self.router.counters.incr(Counter::DroppedNotPermitted);
            tracing::debug!(identity = %self.identity, topic = %message.topic, "mqtt publish not permitted");
        }
    }

    async fn send(&self, packet: Packet) -> Result<(), End> {
        self.control.send(Control::Send(packet)).await.map_err(|_| End::SocketClosed)
    }

    async fn publish_will(&self, will: LastWill) {
        let allowed = self.hooks.may_publish(&self.identity, &will.topic);
        if allowed {
            self.router.counters.incr(Counter::WillsPublished);
        }
        let message = Message {
            topic: will.topic.into(),
            payload: will.payload.into(),
            qos: will.qos,
            retain: will.retain,
            publisher: self.identity.clone(),
            receipt: super::Receipt::default(),
        };
        self.route_if(allowed, message).await;
    }
}

/// The writer task: control packets first, then queued messages (only while fewer than
/// `max_inflight` QoS 1 messages await PUBACK), batched into writes of up to `WRITE_BATCH_BYTES`.
async fn write_loop(
    mut write_half: OwnedWriteHalf,
    mut control: mpsc::Receiver<Control>,
    mut data: mpsc::Receiver<Outbound>,
    max_inflight: usize,
    kick: Arc<watch::Sender<Option<Kick>>>,
) {
    let mut writer =
        PacketWriter { inflight: HashSet::new(), next_id: 0, out: Vec::with_capacity(WRITE_BATCH_BYTES) };
    let mut control_open = true;
    let mut data_open = true;
    while control_open {
        tokio::select! {
            biased;
            next = control.recv() => match next {
                Some(command) => writer.control(command),
                None => control_open = false,
            },
            next = data.recv(), if data_open && writer.inflight.len() < max_inflight => match next {
                Some(outbound) => writer.message(&outbound),
                None => data_open = false,
            },
        }
        while writer.out.len() < WRITE_BATCH_BYTES {
            match control.try_recv() {
                Ok(command) => {
                    writer.control(command);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => control_open = false,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if !data_open || writer.inflight.len() >= max_inflight {
                break;
            }
            match data.try_recv() {
                Ok(outbound) => writer.message(&outbound),
                Err(_) => break,
            }
        }
        if !writer.out.is_empty() {
            if let Err(error) = write_half.write_all(&writer.out).await {
                tracing::debug!(%error, "mqtt write failed");
                super::router::kick_once(&kick, Kick::WriteFailed);
                return;
            }
            writer.out.clear();
        }
    }
    let _ = write_half.shutdown().await;
}

struct PacketWriter {
    inflight: HashSet<u16>,
    next_id: u16,
    out: Vec<u8>,
}

impl PacketWriter {
    fn control(&mut self, command: Control) {
        match command {
            Control::Send(packet) => {
                if let Err(error) = codec::encode(&packet, &mut self.out) {
                    tracing::warn!(%error, "mqtt broker built an unencodable packet");
                }
            }
            Control::Acked(id) => {
                self.inflight.remove(&id.get());
            }
        }
    }

    fn message(&mut self, outbound: &Outbound) {
        let packet_id = if outbound.qos == QoS::AtMostOnce {
            None
        } else {
            loop {
                self.next_id = self.next_id.wrapping_add(1);
                if self.next_id != 0 && !self.inflight.contains(&self.next_id) {
                    break;
                }
            }
            self.inflight.insert(self.next_id);
            PacketId::new(self.next_id)
        };
        let message = &outbound.message;
        let qos = outbound.qos;
        if let Err(error) = codec::encode_publish(
            &message.topic,
            &message.payload,
            qos,
            outbound.retain,
            false,
            packet_id,
            &mut self.out,
        ) {
            tracing::warn!(%error, "mqtt broker could not encode a message");
        }
    }
}
