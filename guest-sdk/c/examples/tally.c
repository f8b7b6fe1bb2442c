/* tally: a reducer subscribed to post_event domain.agent_moved. Its state counts the moves
 * it has seen (u64, 8 bytes little-endian); each move emits tally.moved {moves, agent_id}. */
#include "agentworld.h"

AW_REDUCE(in, out) {
    AW_CHECK(in->state_len == 0 || in->state_len == 8);
    uint64_t moves = in->state_len ? aw_le64(in->state) : 0;
    if (!aw_text_eq(aw_get(in->event, "kind"), "domain.agent_moved")) return;
    aw_put_le64(aw_new_state(out, 8), ++moves);
    aw_buf *w = aw_emit(out, "tally.moved");
    aw_w_map(w, 2);
    aw_w_text(w, "moves");
    aw_w_uint(w, moves);
    aw_w_text(w, "agent_id");
    aw_w_item(w, aw_get(aw_get(in->event, "data"), "agent_id"));
}
