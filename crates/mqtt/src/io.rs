//! Reading packets off a socket, shared by the broker's connections and the client: a buffer that
//! decodes incrementally and never holds more than one maximum-size packet plus one read.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::codec::{self, CodecError, Packet};

/// Bytes asked for per read.
const READ_CHUNK: usize = 16 * 1024;

/// Why no packet could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The socket failed (reset, timed out, ...).
    Io(std::io::Error),
    /// The peer sent something that is not a valid packet.
    Codec(CodecError),
}

/// A read half with its input buffer. `next_packet` is cancel-safe: bytes already read stay in
/// the buffer, so it can sit in a `select!` next to writes and timers.
#[derive(Debug)]
pub(crate) struct PacketReader<R> {
    read_half: R,
    data: Vec<u8>,
    /// Start of the undecoded bytes in `data`; compacting happens only before a read, so decoding
    /// many small packets from one read moves no memory.
    start: usize,
    max_packet_size: usize,
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    pub(crate) fn new(read_half: R, max_packet_size: usize) -> PacketReader<R> {
        PacketReader { read_half, data: Vec::with_capacity(READ_CHUNK), start: 0, max_packet_size }
    }

    /// Changes the largest packet accepted from here on.
    pub(crate) fn set_max_packet_size(&mut self, max_packet_size: usize) {
        self.max_packet_size = max_packet_size;
    }

    /// The next packet, `Ok(None)` at a clean end of stream.
    pub(crate) async fn next_packet(&mut self) -> Result<Option<Packet>, ReadError> {
        loop {
            match codec::decode(&self.data[self.start..], self.max_packet_size) {
                Ok(Some((packet, used))) => {
                    self.start += used;
                    return Ok(Some(packet));
                }
                Ok(None) => {}
                Err(error) => return Err(ReadError::Codec(error)),
            }
            if self.start > 0 {
                self.data.drain(..self.start);
                self.start = 0;
            }
            if self.data.capacity() - self.data.len() < READ_CHUNK / 4 {
                self.data.reserve(READ_CHUNK);
            }
            match self.read_half.read_buf(&mut self.data).await {
                Ok(0) if self.data.is_empty() => return Ok(None),
                Ok(0) => {
                    return Err(ReadError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed inside a packet",
                    )));
                }
                Ok(_) => {}
                Err(error) => return Err(ReadError::Io(error)),
            }
        }
    }
}
