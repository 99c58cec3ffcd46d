//! Placeholder until the move-evaluation bench lands.
fn main() {}
