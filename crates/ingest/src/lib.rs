//! Ingest: machine payloads in, readings and machine events out.
//!
//! This crate owns the wire formats machines speak — Sparkplug B 3.0 ([`sparkplug`]) and our
//! JSON topic scheme ([`json`]) — and, in later modules, the sources and the store sink of the
//! ingest pipeline. The codec modules are pure: they do no IO, never read the clock ("now" is an
//! argument) and depend on no internal crate. Their shared output vocabulary lives in [`codec`].
//!
//! Decoders never fail a batch: each call appends good readings and events to a [`Decoded`] and
//! records everything it could not use as a [`Dropped`] entry with a [`DropReason`].

pub mod codec;
pub mod json;
pub mod sparkplug;

pub use codec::{
    DecodeConfig, Decoded, Decoder, DropReason, Dropped, EncodeError, MachineEvent, MachineKey, MachineState,
    Outgoing, RawReading, TimeWindow, TimedEvent,
};
