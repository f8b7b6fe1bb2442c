//! rule: a pure pre_action rule for move_agent. Reads action.data.to = [x, y]:
//! [13, 13] -> deny; [7, 7] -> modify the move to [8, 8]; anything else -> allow.
#![no_std]
use agentworld_guest::{Input, Output};

fn decide(input: &Input, out: &mut Output) {
    let data = input.action.and_then(|action| action.get("data"));
    let to = data.and_then(|data| data.get("to")).filter(|to| to.count() == 2);
    let coordinate = |i| to.and_then(|to| to.at(i)).and_then(|c| c.as_i64());
    match (coordinate(0), coordinate(1)) {
        (Some(13), Some(13)) => out.deny(input, "cell 13,13 is forbidden"),
        (Some(7), Some(7)) => {
            let agent = data.and_then(|data| data.get("agent_id"));
            let w = out.modify(input, "7,7 is redirected to 8,8");
            w.map(2).text("type").text("move_agent").text("data").map(2);
            w.text("agent_id").item_or_null(agent).text("to").array(2).uint(8).uint(8);
        }
        _ => out.allow(input, ""),
    }
}

agentworld_guest::call!(decide);
