//! MQTT 3.1.1 for microfactory: one packet codec (`codec`), topic rules (`topic`), an embedded
//! broker with authentication and permission hooks (`broker`) and an async client (`client`),
//! all over tokio. The crate depends on no other microfactory crate.

pub mod codec;
pub mod topic;

pub use codec::{CodecError, Packet, PacketId, QoS};
pub use topic::TopicError;
