//! tally: a reducer subscribed to post_event domain.agent_moved. Its state counts the moves it
//! has seen (u64, 8 bytes little-endian); each move emits tally.moved {moves, agent_id}.
#![no_std]
use agentworld_guest::{Input, Output};

fn count_moves(input: &Input, out: &mut Output) {
    let moves = input.state_u64();
    let event = match input.event {
        Some(event) if event.get("kind").and_then(|k| k.as_str()) == Some("domain.agent_moved") => {
            event
        }
        _ => return,
    };
    let moves = moves.wrapping_add(1);
    out.new_state(8).copy_from_slice(&moves.to_le_bytes());
    let agent = event.get("data").and_then(|data| data.get("agent_id"));
    out.emit("tally.moved").map(2).text("moves").uint(moves).text("agent_id").item_or_null(agent);
}

agentworld_guest::reduce!(count_moves);
