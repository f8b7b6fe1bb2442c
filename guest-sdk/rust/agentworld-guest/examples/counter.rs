//! counter: a reducer. State is a u64, 8 bytes little-endian (empty = 0); every call adds one,
//! stores it and emits counter.ticked {count}.
#![no_std]
use agentworld_guest::{Input, Output};

fn tick(input: &Input, out: &mut Output) {
    let count = input.state_u64().wrapping_add(1);
    out.new_state(8).copy_from_slice(&count.to_le_bytes());
    out.emit("counter.ticked").map(1).text("count").uint(count);
}

agentworld_guest::reduce!(tick);
