/* probe: reads its whole input through the SDK's reader and writes what it read back through
 * the writer, so a test can compare both with what the host sent. Not an example module. */
#include "agentworld.h"

static const char *CTX_KEYS[] = {"v", "module_id", "instance_id", "module_version", "trace_id",
                                 "stage", "time", "origin", "install_target", "manifest_hash",
                                 "world_config_hash"};

/* Re-encode an item value by value (not a byte copy), walking it without recursion. */
static void transcode(aw_buf *w, aw_item item) {
    if (item.p == NULL) {
        aw_w_null(w);
        return;
    }
    const uint8_t *stop = item.p + aw_item_size(item);
    for (aw_item t = item; t.p < stop; t = aw_step(t)) {
        int64_t i;
        aw_str s;
        switch (aw_type_of(t)) {
        case AW_INT:
            if (aw_int(t, &i)) aw_w_int(w, i);
            else aw_w_uint(w, aw_uint_or(t, 0));
            break;
        case AW_TEXT: s = aw_text(t); aw_w_textn(w, s.ptr, s.len); break;
        case AW_BYTES: s = aw_bytes(t); aw_w_bytes(w, s.ptr, s.len); break;
        case AW_ARRAY: aw_w_array(w, aw_count(t)); break;
        case AW_MAP: aw_w_map(w, aw_count(t)); break;
        case AW_BOOL: aw_w_bool(w, aw_bool_or(t, false)); break;
        case AW_NULL: aw_w_null(w); break;
        case AW_FLOAT: aw_w_float(w, aw_float_or(t, 0)); break;
        default: __builtin_trap();
        }
    }
}

static void probe(const aw_input *in, aw_output *out) {
    aw_buf *w = aw_emit(out, "probe.ctx");
    aw_w_map(w, 12);
    for (unsigned k = 0; k < sizeof CTX_KEYS / sizeof *CTX_KEYS; k++) {
        aw_w_text(w, CTX_KEYS[k]);
        transcode(w, aw_get(in->ctx, CTX_KEYS[k]));
    }
    aw_w_text(w, "entries");
    aw_w_uint(w, aw_count(in->ctx));
    transcode(aw_emit(out, "probe.event"), in->event);
    transcode(aw_emit(out, "probe.action"), in->action);
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < in->state_len; i++) hash = (hash ^ in->state[i]) * 16777619u;
    w = aw_emit(out, "probe.state");
    aw_w_map(w, 2);
    aw_w_text(w, "size");
    aw_w_uint(w, in->state_len);
    aw_w_text(w, "fnv1a32");
    aw_w_uint(w, hash);
    w = aw_emit(out, "probe.migrate");
    aw_w_map(w, 2);
    aw_w_text(w, "from_version");
    transcode(w, in->from_version);
    aw_w_text(w, "to_version");
    transcode(w, in->to_version);
    if (aw_get(in->root, "state").p != NULL) aw_set_state(out, in->state, in->state_len);

    aw_item data = aw_get(in->action, "data");
    aw_item effect = aw_get(data, "effect");
    if (aw_text_eq(effect, "slot") || aw_text_eq(effect, "ref")) {
        w = aw_text_eq(effect, "slot") ? aw_effect_slot(out, "bank.pay", "pay")
                                       : aw_effect_ref(out, "bank.pay", "cap.bank");
        aw_w_map(w, 1);
        aw_w_text(w, "amount");
        aw_w_uint(w, 1);
    }
    int64_t wake = aw_int_or(aw_get(data, "wake"), 0);
    if (wake > 0) aw_wake_after(out, (uint64_t)wake);
    if (aw_bool_or(aw_get(data, "suspend"), false)) aw_suspend(out);
    aw_item decide = aw_get(data, "decide");
    if (aw_text_eq(decide, "allow")) aw_allow(out, in, "probe allows");
    if (aw_text_eq(decide, "deny")) aw_deny(out, in, "probe denies");
    if (aw_text_eq(decide, "modify")) {
        w = aw_modify(out, in, "probe modifies");
        aw_w_map(w, 2);
        aw_w_text(w, "type");
        aw_w_text(w, "move_agent");
        aw_w_text(w, "data");
        aw_w_map(w, 2);
        aw_w_text(w, "agent_id");
        aw_w_item(w, aw_get(data, "agent_id"));
        aw_w_text(w, "to");
        aw_w_array(w, 2);
        aw_w_int(w, 8);
        aw_w_int(w, -8);
    }
}

AW_REDUCE(in, out) { probe(in, out); }
AW_CALL(in, out) { probe(in, out); }
AW_MIGRATE(in, out) { probe(in, out); }
