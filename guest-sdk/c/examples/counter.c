/* counter: a reducer. State is a u64, 8 bytes little-endian (empty = 0); every call adds one,
 * stores it and emits counter.ticked {count}. */
#include "agentworld.h"

AW_REDUCE(in, out) {
    AW_CHECK(in->state_len == 0 || in->state_len == 8);
    uint64_t count = (in->state_len ? aw_le64(in->state) : 0) + 1;
    aw_put_le64(aw_new_state(out, 8), count);
    aw_buf *payload = aw_emit(out, "counter.ticked");
    aw_w_map(payload, 1);
    aw_w_text(payload, "count");
    aw_w_uint(payload, count);
}
