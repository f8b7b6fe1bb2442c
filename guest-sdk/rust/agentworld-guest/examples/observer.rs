//! observer: a pure module. Emits observer.saw {stage, origin, trace_id, event, action}: the
//! call's stage, origin and trace id from ctx, and the routed event and action, copied
//! verbatim (null when absent).
#![no_std]
use agentworld_guest::{Input, Output};

fn observe(input: &Input, out: &mut Output) {
    let w = out.emit("observer.saw").map(5);
    for key in ["stage", "origin", "trace_id"] {
        w.text(key).item_or_null(input.ctx.get(key));
    }
    w.text("event").item_or_null(input.event);
    w.text("action").item_or_null(input.action);
}

agentworld_guest::call!(observe);
