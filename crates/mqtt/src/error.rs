//! The crate's error type for everything that does IO (broker handle and client); the codec and
//! topic rules have their own `CodecError` and `TopicError`, which convert into it.

use crate::codec::{CodecError, ConnectReturnCode};
use crate::topic::TopicError;

/// Why a broker-handle or client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A topic name or filter breaks the MQTT rules.
    #[error("invalid topic: {0}")]
    Topic(#[from] TopicError),
    /// The peer sent bytes that are not valid MQTT, or a packet could not be encoded.
    #[error("protocol error: {0}")]
    Codec(#[from] CodecError),
    /// The socket failed.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered CONNECT with a refusal.
    #[error("connection refused: {0:?}")]
    ConnectionRefused(ConnectReturnCode),
    /// The peer sent a packet that is legal MQTT but wrong at this point of the conversation.
    #[error("unexpected packet from peer: {0}")]
    UnexpectedPacket(&'static str),
    /// The connection is closed (by the peer, a keepalive timeout, or `disconnect`).
    #[error("connection closed")]
    ConnectionClosed,
    /// The server did not answer in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The server refused a subscription (SUBACK return code 0x80).
    #[error("subscription to {0:?} refused")]
    SubscriptionRefused(String),
    /// The broker has been shut down.
    #[error("broker is shut down")]
    ShutDown,
}

impl Error {
    /// Whether trying again later (for a client: reconnecting) can succeed; refusals, invalid
    /// topics and protocol errors are permanent until something is changed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Io(_) | Error::ConnectionClosed | Error::Timeout(_) => true,
            Error::ConnectionRefused(code) => *code == ConnectReturnCode::ServerUnavailable,
            Error::Topic(_)
            | Error::Codec(_)
            | Error::UnexpectedPacket(_)
            | Error::SubscriptionRefused(_)
            | Error::ShutDown => false,
        }
    }
}
