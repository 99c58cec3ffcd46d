//! MQTT 3.1.1 for microfactory: one packet codec (`codec`), topic rules (`topic`), an embedded
//! broker with authentication and permission hooks (`broker`) and an async client (`client`),
//! all over tokio. The crate depends on no other microfactory crate.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mqtt::Error> {
//! use mqtt::{AllowAll, Broker, BrokerConfig, Client, ClientOptions, QoS};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let broker = Broker::start(listener, BrokerConfig::default(), AllowAll);
//! let mut telemetry = broker.subscribe("mf/v1/+/+/telemetry")?;
//!
//! let device = Client::connect(broker.local_addr().unwrap(), ClientOptions::new("press-1")).await?;
//! device.publish("mf/v1/hk/press-1/telemetry", b"{}".to_vec(), QoS::AtLeastOnce, false).await?;
//!
//! let message = telemetry.recv().await.unwrap();
//! assert_eq!(&*message.topic, "mf/v1/hk/press-1/telemetry");
//! assert_eq!(message.publisher.as_str(), "press-1"); // AllowAll names clients by id
//! device.disconnect().await?;
//! broker.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod broker;
pub mod client;
pub mod codec;
mod error;
mod io;
pub mod topic;

pub use broker::{
    AllowAll, AuthRejection, Broker, BrokerConfig, BrokerHandle, Counter, CounterSnapshot, Credentials,
    Hooks, Identity, Message, Receipt,
};
pub use client::{Client, ClientOptions, Delivery, Inbox, PendingAck, Subscription};
pub use codec::{CodecError, LastWill, Packet, PacketId, Publish, QoS};
pub use error::Error;
pub use topic::TopicError;
