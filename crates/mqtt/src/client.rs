//! An async MQTT 3.1.1 client over a tokio `TcpStream` (TCP_NODELAY), using the crate's codec.
//! One task owns the socket: it reads, writes, sends keepalive pings and routes incoming messages
//! to subscriptions; `Client` is a cheap handle that sends it commands over a bounded channel.
//!
//! Back-pressure: each `Subscription` is a bounded channel; when one is full the task stops
//! reading from the socket until there is room (the broker then queues or drops, by its policy),
//! while writes and pings continue. No automatic reconnect: when the connection ends every pending
//! call fails with `Error::ConnectionClosed`, every subscription's channel ends, and the owner
//! connects again.
//!
//! Durable delivery: [`Client::connect_with_inbox`] hands every incoming message to one [`Inbox`]
//! with a [`Receipt`], and acknowledges a QoS 1 message only once its receipt is released (in the
//! order the messages came, as MQTT 3.1.1 requires). With `clean_session: false` and a stable
//! client id, the server keeps the subscriptions and the unacknowledged or queued messages while
//! the client is away and sends them again when it returns, so what the owner stores before
//! releasing a receipt is never lost, even if the process dies in between.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};

use crate::broker::Receipt;
use crate::codec::{
    self, Connect, ConnectReturnCode, LastWill, Packet, PacketId, Publish, QoS, Subscribe, SubscribeFilter,
    SubscribeReturnCode, Unsubscribe,
};
use crate::error::Error;
use crate::io::{PacketReader, ReadError};
use crate::topic;

/// Commands waiting for the connection task.
const COMMAND_QUEUE_CAPACITY: usize = 1024;
/// The task stops taking commands while this much output is waiting for the socket.
const MAX_PENDING_OUTPUT: usize = 256 * 1024;

/// How to connect. `Debug` hides the password.
#[derive(Clone)]
pub struct ClientOptions {
    /// Client identifier; empty asks the server to assign one.
    pub client_id: String,
    /// Keepalive: a PINGREQ goes out every period, and the connection is closed when a PINGRESP
    /// is still missing one period later. Zero turns it off. Whole seconds on the wire.
    pub keep_alive: Duration,
    /// User name sent in CONNECT.
    pub username: Option<String>,
    /// Password sent in CONNECT (requires a user name).
    pub password: Option<Vec<u8>>,
    /// Will message the server publishes if this connection ends abnormally.
    pub will: Option<LastWill>,
    /// Largest packet accepted from the server.
    pub max_packet_size: usize,
    /// Limit for TCP connect and for CONNACK to arrive.
    pub connect_timeout: Duration,
    /// Capacity of each subscription's channel, in messages.
    pub subscription_capacity: usize,
    /// QoS 1 publishes awaiting PUBACK at most; more wait.
    pub max_inflight: usize,
    /// Start a new session (the default). `false` asks the server to keep this client id's
    /// session: its subscriptions, and QoS 1 messages not yet acknowledged or sent while the
    /// client was away, which the server sends on the next connection.
    pub clean_session: bool,
}

impl ClientOptions {
    /// Options with the given client id and defaults: 30 s keepalive, no credentials, no will,
    /// 1 MiB packets, 10 s connect timeout, 1024-message subscriptions, 1024 in flight, a clean
    /// session.
    pub fn new(client_id: impl Into<String>) -> ClientOptions {
        ClientOptions {
            client_id: client_id.into(),
            keep_alive: Duration::from_secs(30),
            username: None,
            password: None,
            will: None,
            max_packet_size: codec::DEFAULT_MAX_PACKET_SIZE,
            connect_timeout: Duration::from_secs(10),
            subscription_capacity: 1024,
            max_inflight: 1024,
            clean_session: true,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("client_id", &self.client_id)
            .field("keep_alive", &self.keep_alive)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("will", &self.will)
            .field("max_packet_size", &self.max_packet_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("subscription_capacity", &self.subscription_capacity)
            .field("max_inflight", &self.max_inflight)
            .field("clean_session", &self.clean_session)
            .finish()
    }
}

/// A handle to a connected client. Clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
}

/// The acknowledgement of a message handed over by `Client::start_publish`.
#[derive(Debug)]
#[must_use = "a QoS 1 message is only known to be delivered once `acknowledged` returns Ok"]
pub struct PendingAck {
    /// `None` for QoS 0, which has no acknowledgement.
    answer: Option<oneshot::Receiver<()>>,
}

impl PendingAck {
    /// Waits for the server's PUBACK (immediately Ok for QoS 0); `Error::ConnectionClosed` if
    /// the connection ended first, in which case the message may or may not have arrived.
    pub async fn acknowledged(self) -> Result<(), Error> {
        match self.answer {
            Some(answer) => answer.await.map_err(|_| Error::ConnectionClosed),
            None => Ok(()),
        }
    }
}

/// Messages matching one subscribed filter.
#[derive(Debug)]
pub struct Subscription {
    /// The QoS the server granted.
    pub granted: QoS,
    messages: mpsc::Receiver<Delivery>,
}

impl Subscription {
    /// The next message, `None` once the connection has ended (or the filter was unsubscribed).
    pub async fn recv(&mut self) -> Option<Publish> {
        // A subscription's deliveries carry no receipt: their PUBACKs do not wait.
        self.messages.recv().await.map(|delivery| delivery.publish)
    }
}

/// A message taken in through an [`Inbox`].
#[derive(Debug)]
pub struct Delivery {
    /// The message as the server sent it (`dup` set on a redelivery).
    pub publish: Publish,
    /// For QoS 1, the PUBACK waits until this is dropped or released; empty for QoS 0 and 2.
    pub receipt: Receipt,
}

/// Every message the server sends to a client connected with [`Client::connect_with_inbox`],
/// whatever subscription (of this connection or of a kept session) it matched.
#[derive(Debug)]
pub struct Inbox {
    messages: mpsc::Receiver<Delivery>,
}

impl Inbox {
    /// The next message, `None` once the connection has ended.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.messages.recv().await
    }
}

#[derive(Debug)]
enum Command {
    Publish { publish: Publish, done: Option<oneshot::Sender<()>> },
    Subscribe { filter: String, qos: QoS, done: oneshot::Sender<Result<Subscription, Error>> },
    Unsubscribe { filter: String, done: oneshot::Sender<()> },
    Disconnect { done: oneshot::Sender<()> },
}

impl Client {
    /// Opens a TCP connection (TCP_NODELAY), sends CONNECT and waits for CONNACK; a refusal is
    /// `Error::ConnectionRefused` with the server's return code.
    pub async fn connect(addr: impl ToSocketAddrs, options: ClientOptions) -> Result<Client, Error> {
        Client::open(addr, options, None).await
    }

    /// Connects like [`Client::connect`], but every incoming message goes to the returned inbox
    /// (holding `capacity` messages; reading from the server pauses while it is full) instead of
    /// to subscriptions, which then only tell the server what to send. A QoS 1 message is
    /// acknowledged once its [`Delivery::receipt`] is released and every earlier one's too.
    pub async fn connect_with_inbox(
        addr: impl ToSocketAddrs,
        options: ClientOptions,
        capacity: usize,
    ) -> Result<(Client, Inbox), Error> {
        let (inbox, messages) = mpsc::channel(capacity.max(1));
        let client = Client::open(addr, options, Some(inbox)).await?;
        Ok((client, Inbox { messages }))
    }

    async fn open(
        addr: impl ToSocketAddrs,
        options: ClientOptions,
        inbox: Option<mpsc::Sender<Delivery>>,
    ) -> Result<Client, Error> {
        let stream = tokio::time::timeout(options.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Timeout("tcp connect"))??;
        stream.set_nodelay(true)?;
        let (read_half, mut write_half) = stream.into_split();
        let mut input = PacketReader::new(read_half, options.max_packet_size);
        let keep_alive = u16::try_from(options.keep_alive.as_secs()).unwrap_or(u16::MAX);
        let connect = Connect {
            client_id: options.client_id.clone(),
            keep_alive,
            clean_session: options.clean_session,
            will: options.will.clone(),
            username: options.username.clone(),
            password: options.password.clone(),
        };
        let mut out = Vec::new();
        codec::encode(&Packet::Connect(connect), &mut out)?;
        write_half.write_all(&out).await?;
        let answer = tokio::time::timeout(options.connect_timeout, input.next_packet())
            .await
            .map_err(|_| Error::Timeout("connack"))?;
        match answer {
            Ok(Some(Packet::ConnAck(ack))) if ack.code == ConnectReturnCode::Accepted => {}
            Ok(Some(Packet::ConnAck(ack))) => return Err(Error::ConnectionRefused(ack.code)),
            Ok(Some(_)) => return Err(Error::UnexpectedPacket("expected connack")),
            Ok(None) => return Err(Error::ConnectionClosed),
            Err(ReadError::Io(error)) => return Err(Error::Io(error)),
            Err(ReadError::Codec(error)) => return Err(Error::Codec(error)),
        }
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE_CAPACITY);
        let keep_alive = (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive)));
        let task = Connection {
            input,
            write_half,
            out: Vec::new(),
            written: 0,
            commands: command_rx,
            next_id: 0,
            pending_acks: HashMap::new(),
            pending_subacks: HashMap::new(),
            pending_unsubacks: HashMap::new(),
            subscriptions: Vec::new(),
            stalled: VecDeque::new(),
            qos2_received: HashSet::new(),
            ping_outstanding: false,
            inbox,
            held_acks: VecDeque::new(),
            options,
        };
        tokio::spawn(task.run(keep_alive));
        Ok(Client { commands })
    }

    /// Publishes a message. QoS 0 returns once the connection task has taken it; QoS 1 returns
    /// when the server's PUBACK arrives. QoS 2 is not supported for publishing.
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        qos: QoS,
        retain: bool,
    ) -> Result<(), Error> {
        self.start_publish(topic, payload, qos, retain).await?.acknowledged().await
    }

    /// Hands a message to the connection task and returns without waiting for the PUBACK, so
    /// one connection can keep many QoS 1 messages in flight (up to `max_inflight`); await
    /// `PendingAck::acknowledged` for the outcome. Messages go out in call order.
    pub async fn start_publish(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        qos: QoS,
        retain: bool,
    ) -> Result<PendingAck, Error> {
        topic::validate_topic_name(topic)?;
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic: topic.to_owned(),
            packet_id: None,
            payload: payload.into(),
        };
        match qos {
            QoS::AtMostOnce => {
                self.command(Command::Publish { publish, done: None }).await?;
                Ok(PendingAck { answer: None })
            }
            QoS::AtLeastOnce => {
                let (done, answer) = oneshot::channel();
                self.command(Command::Publish { publish, done: Some(done) }).await?;
                Ok(PendingAck { answer: Some(answer) })
            }
            QoS::ExactlyOnce => Err(Error::UnexpectedPacket("qos 2 publishing is not supported")),
        }
    }

    /// Subscribes to a filter and returns its messages once the server's SUBACK arrives; a
    /// refusal is `Error::SubscriptionRefused`. Messages matching several subscriptions go to each.
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<Subscription, Error> {
        topic::validate_topic_filter(filter)?;
        let (done, answer) = oneshot::channel();
        self.command(Command::Subscribe { filter: filter.to_owned(), qos, done }).await?;
        answer.await.map_err(|_| Error::ConnectionClosed)?
    }

    /// Unsubscribes from a filter (ending its `Subscription`) and waits for UNSUBACK.
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), Error> {
        topic::validate_topic_filter(filter)?;
        let (done, answer) = oneshot::channel();
        self.command(Command::Unsubscribe { filter: filter.to_owned(), done }).await?;
        answer.await.map_err(|_| Error::ConnectionClosed)
    }

    /// Sends DISCONNECT (so the server discards the will), flushes and closes the socket.
    pub async fn disconnect(&self) -> Result<(), Error> {
        let (done, answer) = oneshot::channel();
        self.command(Command::Disconnect { done }).await?;
        answer.await.map_err(|_| Error::ConnectionClosed)
    }

    /// Whether the connection task has ended. Dropping every `Client` handle also ends it, with a
    /// DISCONNECT (so open `Subscription`s need a live handle somewhere).
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    async fn command(&self, command: Command) -> Result<(), Error> {
        self.commands.send(command).await.map_err(|_| Error::ConnectionClosed)
    }
}

/// A message waiting for room in a full subscription channel or inbox; reading pauses meanwhile.
#[derive(Debug)]
struct Stalled {
    queue: mpsc::Sender<Delivery>,
    delivery: Delivery,
    /// Sent once this delivery is done (the PUBACK of a QoS 1 message).
    then_send: Option<Packet>,
}

/// The task that owns the socket.
struct Connection {
    input: PacketReader<OwnedReadHalf>,
    write_half: OwnedWriteHalf,
    /// Encoded packets not yet written; `written` bytes of it are already on the socket.
    out: Vec<u8>,
    written: usize,
    commands: mpsc::Receiver<Command>,
    next_id: u16,
    pending_acks: HashMap<PacketId, oneshot::Sender<()>>,
    pending_subacks: HashMap<PacketId, (String, oneshot::Sender<Result<Subscription, Error>>)>,
    pending_unsubacks: HashMap<PacketId, oneshot::Sender<()>>,
    subscriptions: Vec<(String, mpsc::Sender<Delivery>)>,
    stalled: VecDeque<Stalled>,
    qos2_received: HashSet<PacketId>,
    /// A PINGREQ went out and its PINGRESP has not come back.
    ping_outstanding: bool,
    /// Where every message goes, for a client connected with an inbox.
    inbox: Option<mpsc::Sender<Delivery>>,
    /// With an inbox: delivered QoS 1 messages, oldest first, whose PUBACKs wait for their
    /// receipts (the receiver completes when every copy of the receipt is gone).
    held_acks: VecDeque<(PacketId, oneshot::Receiver<()>)>,
    options: ClientOptions,
}

/// Everything the connection task waits for, so the loop is one `match`.
enum Event {
    Packet(Result<Option<Packet>, ReadError>),
    Wrote(std::io::Result<usize>),
    Command(Option<Command>),
    Unstalled(Result<mpsc::OwnedPermit<Delivery>, mpsc::error::SendError<()>>),
    /// The oldest held message's receipt was told: released (true) or abandoned (false).
    Released(bool),
    PingDue,
}

impl Connection {
    async fn run(mut self, keep_alive: Option<Duration>) {
        let mut ping = keep_alive.map(|period| {
            let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            // A late tick must not be followed by a burst that finds the first PINGRESP "missing".
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ping
        });
        let mut disconnect: Option<oneshot::Sender<()>> = None;
        loop {
            let can_read = self.stalled.is_empty();
            let can_take_commands = disconnect.is_none()
                && self.out.len() - self.written < MAX_PENDING_OUTPUT
                && self.pending_acks.len() < self.options.max_inflight;
            let stalled_queue = self.stalled.front().map(|stalled| stalled.queue.clone());
            let oldest_held = self.held_acks.front_mut().map(|(_, released)| released);
            let event = tokio::select! {
                packet = self.input.next_packet(), if can_read => Event::Packet(packet),
                wrote = self.write_half.write(&self.out[self.written..]), if self.written < self.out.len() => {
                    Event::Wrote(wrote)
                }
                command = self.commands.recv(), if can_take_commands => Event::Command(command),
                permit = async { stalled_queue.expect("guarded").reserve_owned().await }, if stalled_queue.is_some() => {
                    Event::Unstalled(permit)
                }
                released = async { oldest_held.expect("guarded").await }, if oldest_held.is_some() => {
                    Event::Released(released.is_ok())
                }
                _ = async { ping.as_mut().expect("guarded").tick().await }, if ping.is_some() => Event::PingDue,
            };
            match event {
                Event::Packet(Ok(Some(packet))) => {
                    // Any packet from the server shows the connection is alive.
                    self.ping_outstanding = false;
                    if let Err(error) = self.handle(packet) {
                        tracing::debug!(%error, "mqtt client closing on a bad packet");
                        return;
                    }
                }
                Event::Packet(Ok(None)) => return,
                Event::Packet(Err(error)) => {
                    tracing::debug!(?error, "mqtt client read failed");
                    return;
                }
                Event::Wrote(Ok(n)) if n > 0 => {
                    self.written += n;
                    if self.written == self.out.len() {
                        self.out.clear();
                        self.written = 0;
                        if let Some(done) = disconnect.take() {
                            let _ = self.write_half.shutdown().await;
                            let _ = done.send(());
                            return;
                        }
                    } else if self.written >= MAX_PENDING_OUTPUT {
                        // A slow socket with steady input: drop the written prefix now and then.
                        self.out.drain(..self.written);
                        self.written = 0;
                    }
                }
                Event::Wrote(_) => return,
                Event::Command(Some(command)) => {
                    if let Some(done) = self.command(command) {
                        disconnect = Some(done);
                    }
                }
                // Every `Client` handle is gone: leave as if asked to disconnect.
                Event::Command(None) => {
                    let _ = codec::encode(&Packet::Disconnect, &mut self.out);
                    let (done, _) = oneshot::channel();
                    disconnect = Some(done);
                }
                Event::Unstalled(permit) => {
                    let stalled = self.stalled.pop_front().expect("select guarded on a stalled delivery");
                    if let Ok(permit) = permit {
                        permit.send(stalled.delivery);
                    }
                    if let Some(packet) = stalled.then_send {
                        self.send(&packet);
                    }
                }
                Event::Released(kept) => {
                    // The oldest held message's receipt has been told: its receiver is spent.
                    let oldest = self.held_acks.pop_front();
                    let acked = kept && {
                        if let Some((id, _)) = oldest {
                            self.send(&Packet::PubAck(id));
                        }
                        self.send_released_acks()
                    };
                    if !acked {
                        tracing::info!(
                            "mqtt client closing: a message could not be stored; the server sends it again"
                        );
                        return;
                    }
                }
                Event::PingDue => {
                    // While reading is paused for a full subscription the PINGRESP may be sitting
                    // unread, so only a connection we are reading from can be declared dead.
                    if self.ping_outstanding && self.stalled.is_empty() {
                        tracing::debug!("mqtt client: no PINGRESP within the keepalive period");
                        return;
                    }
                    self.ping_outstanding = true;
                    self.send(&Packet::PingReq);
                }
            }
        }
    }

    /// Appends a packet to the output; the loop writes it.
    fn send(&mut self, packet: &Packet) {
        if let Err(error) = codec::encode(packet, &mut self.out) {
            tracing::warn!(%error, "mqtt client built an unencodable packet");
        }
    }

    fn next_packet_id(&mut self) -> PacketId {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            if let Some(id) = PacketId::new(self.next_id)
                && !self.pending_acks.contains_key(&id)
                && !self.pending_subacks.contains_key(&id)
                && !self.pending_unsubacks.contains_key(&id)
            {
                return id;
            }
        }
    }

    /// Takes one command; returns the completion of a DISCONNECT, which ends the loop once the
    /// output is flushed.
    fn command(&mut self, command: Command) -> Option<oneshot::Sender<()>> {
        match command {
            Command::Publish { mut publish, done } => {
                if let Some(done) = done {
                    let id = self.next_packet_id();
                    publish.packet_id = Some(id);
                    self.pending_acks.insert(id, done);
                }
                self.send(&Packet::Publish(publish));
            }
            Command::Subscribe { filter, qos, done } => {
                let packet_id = self.next_packet_id();
                self.send(&Packet::Subscribe(Subscribe {
                    packet_id,
                    filters: vec![SubscribeFilter { filter: filter.clone(), qos }],
                }));
                self.pending_subacks.insert(packet_id, (filter, done));
            }
            Command::Unsubscribe { filter, done } => {
                let packet_id = self.next_packet_id();
                self.send(&Packet::Unsubscribe(Unsubscribe { packet_id, filters: vec![filter.clone()] }));
                self.subscriptions.retain(|(existing, _)| *existing != filter);
                self.pending_unsubacks.insert(packet_id, done);
            }
            Command::Disconnect { done } => {
                // What the owner released before disconnecting is acknowledged first (up to what
                // it abandoned, which the server sends again).
                self.send_released_acks();
                self.send(&Packet::Disconnect);
                return Some(done);
            }
        }
        None
    }

    fn handle(&mut self, packet: Packet) -> Result<(), Error> {
        match packet {
            Packet::Publish(publish) => {
                let ack = match (publish.qos, publish.packet_id) {
                    (QoS::AtMostOnce, _) => None,
                    (QoS::AtLeastOnce, Some(id)) => Some(Packet::PubAck(id)),
                    (QoS::ExactlyOnce, Some(id)) => {
                        if !self.qos2_received.insert(id) {
                            // A redelivery of a message already handed over: only answer it.
                            self.send(&Packet::PubRec(id));
                            return Ok(());
                        }
                        Some(Packet::PubRec(id))
                    }
                    (_, None) => return Err(Error::UnexpectedPacket("publish without packet id")),
                };
                self.deliver(publish, ack);
            }
            Packet::PubAck(id) => {
                if let Some(done) = self.pending_acks.remove(&id) {
                    let _ = done.send(());
                }
            }
            Packet::PubRel(id) => {
                self.qos2_received.remove(&id);
                self.send(&Packet::PubComp(id));
            }
            Packet::SubAck(ack) => {
                let Some((filter, done)) = self.pending_subacks.remove(&ack.packet_id) else {
                    return Ok(());
                };
                let result = match ack.return_codes.first() {
                    Some(SubscribeReturnCode::Success(granted)) => {
                        let (queue, messages) = mpsc::channel(self.options.subscription_capacity);
                        self.subscriptions.retain(|(existing, _)| *existing != filter);
                        self.subscriptions.push((filter, queue));
                        Ok(Subscription { granted: *granted, messages })
                    }
                    _ => Err(Error::SubscriptionRefused(filter)),
                };
                let _ = done.send(result);
            }
            Packet::UnsubAck(id) => {
                if let Some(done) = self.pending_unsubacks.remove(&id) {
                    let _ = done.send(());
                }
            }
            // Handled in the loop: every packet clears the outstanding ping.
            Packet::PingResp => {}
            // We never publish QoS 2, so a PUBREC or PUBCOMP answers nothing of ours.
            Packet::PubRec(_) | Packet::PubComp(_) => {}
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PingReq
            | Packet::Disconnect => {
                return Err(Error::UnexpectedPacket("client-to-server packet from server"));
            }
        }
        Ok(())
    }

    /// Sends the PUBACKs of the held messages whose receipts are released, oldest first, up to
    /// the first one still held (MQTT wants them in the order the messages came). False when one
    /// was abandoned ([`Receipt::abandon`]): it, and every message after it, must stay
    /// unacknowledged, so the connection has to close for the server to send them again.
    fn send_released_acks(&mut self) -> bool {
        while let Some((id, released)) = self.held_acks.front_mut() {
            match released.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => break,
                Err(oneshot::error::TryRecvError::Closed) => return false,
                Ok(()) => {}
            }
            let id = *id;
            self.held_acks.pop_front();
            self.send(&Packet::PubAck(id));
        }
        true
    }

    /// Hands a message to the inbox or to every matching subscription; a full one stalls reading
    /// (with the ack held back until the last delivery of the message is done). With an inbox, a
    /// QoS 1 message's PUBACK waits for its receipt instead (see [`Connection::held_acks`]).
    fn deliver(&mut self, publish: Publish, mut ack: Option<Packet>) {
        let mut receipt = Receipt::default();
        let queues: Vec<mpsc::Sender<Delivery>> = match &self.inbox {
            Some(inbox) => {
                if let Some(Packet::PubAck(id)) = ack.take_if(|ack| matches!(ack, Packet::PubAck(_))) {
                    let (held, released) = Receipt::new();
                    self.held_acks.push_back((id, released));
                    receipt = held;
                }
                vec![inbox.clone()]
            }
            None => self
                .subscriptions
                .iter()
                .filter(|(filter, queue)| !queue.is_closed() && topic::matches(filter, &publish.topic))
                .map(|(_, queue)| queue.clone())
                .collect(),
        };
        let stalled_before = self.stalled.len();
        for queue in queues {
            // The owner's copy abandons the message unless the owner releases it (see `Receipt`).
            let delivery = Delivery { publish: publish.clone(), receipt: receipt.clone().guarded() };
            match queue.try_send(delivery) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                Err(mpsc::error::TrySendError::Full(delivery)) => {
                    self.stalled.push_back(Stalled { queue, delivery, then_send: None });
                }
            }
        }
        let grew = self.stalled.len() > stalled_before;
        match self.stalled.back_mut() {
            Some(last) if grew => last.then_send = ack,
            _ => {
                if let Some(ack) = ack {
                    self.send(&ack);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
