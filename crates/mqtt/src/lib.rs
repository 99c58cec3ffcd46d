//! MQTT 3.1.1 for microfactory: one packet codec (`codec`), topic rules (`topic`), an embedded
//! broker with authentication and permission hooks (`broker`) and an async client (`client`),
//! all over tokio. The crate depends on no other microfactory crate.

pub mod broker;
pub mod client;
pub mod codec;
mod error;
mod io;
pub mod topic;

pub use broker::{
    AllowAll, AuthRejection, Broker, BrokerConfig, BrokerHandle, Counter, CounterSnapshot, Credentials,
    Hooks, Identity, Message,
};
pub use client::{Client, ClientOptions, PendingAck, Subscription};
pub use codec::{CodecError, LastWill, Packet, PacketId, Publish, QoS};
pub use error::Error;
pub use topic::TopicError;
