/* counter v1: a reducer whose state is a u32 count, 4 bytes little-endian (empty = 0). Each
 * call adds one and emits counter.ticked {count}. Version 2 changes the state layout. */
#include "agentworld.h"

AW_REDUCE(in, out) {
    AW_CHECK(in->state_len == 0 || in->state_len == 4);
    uint32_t count = (in->state_len ? aw_le32(in->state) : 0) + 1;
    aw_put_le32(aw_new_state(out, 4), count);
    aw_buf *w = aw_emit(out, "counter.ticked");
    aw_w_map(w, 1);
    aw_w_text(w, "count");
    aw_w_uint(w, count);
}
