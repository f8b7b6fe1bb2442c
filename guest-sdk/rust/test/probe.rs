//! probe: reads its whole input through the SDK's reader and writes what it read back through
//! the writer, so a test can compare both with what the host sent. Not an example module.
#![no_std]
use agentworld_guest::{trap, Input, Item, Output, Token, Tokens, Writer};

const CTX_KEYS: [&str; 11] = [
    "v",
    "module_id",
    "instance_id",
    "module_version",
    "trace_id",
    "stage",
    "time",
    "origin",
    "install_target",
    "manifest_hash",
    "world_config_hash",
];

/// Re-encodes an item value by value (not a byte copy), token by token: no recursion.
fn transcode(w: &mut Writer, item: Option<Item>) {
    let item = match item {
        Some(item) => item,
        None => {
            w.null();
            return;
        }
    };
    let size = item.raw().len();
    let mut tokens = Tokens::new(item.raw());
    while tokens.position() < size {
        match tokens.next().unwrap_or_else(|| trap()) {
            Token::UInt(v) => w.uint(v),
            Token::NegInt(n) => w.int(-1 - n as i64),
            Token::Bytes(b) => w.bytes(b),
            Token::Text(t) => w.text(t),
            Token::Array(n) => w.array(n as usize),
            Token::Map(n) => w.map(n as usize),
            Token::Bool(b) => w.bool(b),
            Token::Null => w.null(),
            Token::Float(f) => w.float(f),
            Token::Tag(_) | Token::Simple(_) => trap(),
        };
    }
}

fn probe(input: &Input, out: &mut Output) {
    let w = out.emit("probe.ctx").map(12);
    for key in CTX_KEYS {
        transcode(w.text(key), input.ctx.get(key));
    }
    w.text("entries").uint(input.ctx.count() as u64);
    transcode(out.emit("probe.event"), input.event);
    transcode(out.emit("probe.action"), input.action);
    let hash =
        input.state.iter().fold(2166136261u32, |h, b| (h ^ *b as u32).wrapping_mul(16777619));
    let w = out.emit("probe.state").map(2);
    w.text("size").uint(input.state.len() as u64).text("fnv1a32").uint(hash as u64);
    let w = out.emit("probe.migrate").map(2).text("from_version");
    match input.from_version {
        Some(v) => w.text(v),
        None => w.null(),
    };
    match input.to_version {
        Some(v) => w.text("to_version").text(v),
        None => w.text("to_version").null(),
    };
    if input.root.get("state").is_some() {
        out.set_state(input.state);
    }

    let data = input.action.and_then(|action| action.get("data"));
    let field = |key| data.and_then(|data| data.get(key));
    let params = match field("effect").and_then(|e| e.as_str()) {
        Some("slot") => Some(out.effect_slot("bank.pay", "pay")),
        Some("ref") => Some(out.effect_ref("bank.pay", "cap.bank")),
        _ => None,
    };
    if let Some(w) = params {
        w.map(1).text("amount").uint(1);
    }
    if let Some(wake) = field("wake").and_then(|v| v.as_i64()).filter(|v| *v > 0) {
        out.wake_after_ticks(wake as u64);
    }
    if field("suspend").and_then(|v| v.as_bool()) == Some(true) {
        out.suspend();
    }
    match field("decide").and_then(|d| d.as_str()) {
        Some("allow") => out.allow(input, "probe allows"),
        Some("deny") => out.deny(input, "probe denies"),
        Some("modify") => {
            let w = out.modify(input, "probe modifies");
            w.map(2).text("type").text("move_agent").text("data").map(2);
            w.text("agent_id").item_or_null(field("agent_id")).text("to").array(2).int(8).int(-8);
        }
        _ => {}
    }
}

agentworld_guest::reduce!(probe);
agentworld_guest::call!(probe);
agentworld_guest::migrate!(probe);
