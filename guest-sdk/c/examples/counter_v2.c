/* counter v2: state is 16 bytes, a u64 count and the u64 time of the last tick (both little-
 * endian). `migrate` converts a version 1 state (a 4-byte count) and keeps a version 2 state. */
#include "agentworld.h"

AW_REDUCE(in, out) {
    AW_CHECK(in->state_len == 0 || in->state_len == 16);
    uint64_t count = (in->state_len ? aw_le64(in->state) : 0) + 1;
    uint8_t *state = aw_new_state(out, 16);
    aw_put_le64(state, count);
    aw_put_le64(state + 8, (uint64_t)in->time);
    aw_buf *w = aw_emit(out, "counter.ticked");
    aw_w_map(w, 2);
    aw_w_text(w, "count");
    aw_w_uint(w, count);
    aw_w_text(w, "last_tick");
    aw_w_int(w, in->time);
}

AW_MIGRATE(in, out) {
    if (in->state_len == 16) {
        aw_set_state(out, in->state, 16);
        return;
    }
    AW_CHECK(in->state_len == 0 || in->state_len == 4);
    aw_put_le64(aw_new_state(out, 16), in->state_len ? aw_le32(in->state) : 0);
}
