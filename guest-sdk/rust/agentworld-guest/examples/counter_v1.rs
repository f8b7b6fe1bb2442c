//! counter v1: a reducer whose state is a u32 count, 4 bytes little-endian (empty = 0). Each
//! call adds one and emits counter.ticked {count}. Version 2 changes the state layout.
#![no_std]
use agentworld_guest::{trap, Input, Output};

fn tick(input: &Input, out: &mut Output) {
    let count = match input.state.len() {
        0 => 0,
        4 => u32::from_le_bytes([input.state[0], input.state[1], input.state[2], input.state[3]]),
        _ => trap(),
    }
    .wrapping_add(1);
    out.new_state(4).copy_from_slice(&count.to_le_bytes());
    out.emit("counter.ticked").map(1).text("count").uint(count as u64);
}

agentworld_guest::reduce!(tick);
