//! counter v2: state is 16 bytes, a u64 count and the u64 time of the last tick (both
//! little-endian). `migrate` converts a version 1 state (a 4-byte count) and keeps a version 2
//! state.
#![no_std]
use agentworld_guest::{trap, Input, Output};

fn le64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

fn tick(input: &Input, out: &mut Output) {
    let count = match input.state.len() {
        0 => 0,
        16 => le64(&input.state[..8]),
        _ => trap(),
    }
    .wrapping_add(1);
    let state = out.new_state(16);
    state[..8].copy_from_slice(&count.to_le_bytes());
    state[8..].copy_from_slice(&(input.time as u64).to_le_bytes());
    let w = out.emit("counter.ticked").map(2);
    w.text("count").uint(count).text("last_tick").int(input.time);
}

fn migrate(input: &Input, out: &mut Output) {
    match input.state.len() {
        16 => out.set_state(input.state),
        0 | 4 => out.new_state(16)[..8].copy_from_slice(&le64(input.state).to_le_bytes()),
        _ => trap(),
    }
}

agentworld_guest::reduce!(tick);
agentworld_guest::migrate!(migrate);
