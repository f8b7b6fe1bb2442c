/* rule: a pure pre_action rule for move_agent. Reads action.data.to = [x, y]:
 *   [13, 13] -> deny; [7, 7] -> modify the move to [8, 8]; anything else -> allow. */
#include "agentworld.h"

AW_CALL(in, out) {
    aw_item data = aw_get(in->action, "data");
    aw_item to = aw_get(data, "to");
    int64_t x = -1, y = -1;
    if (aw_count(to) == 2) {
        x = aw_int_or(aw_at(to, 0), -1);
        y = aw_int_or(aw_at(to, 1), -1);
    }
    if (x == 13 && y == 13) {
        aw_deny(out, in, "cell 13,13 is forbidden");
    } else if (x == 7 && y == 7) {
        aw_buf *w = aw_modify(out, in, "7,7 is redirected to 8,8");
        aw_w_map(w, 2);
        aw_w_text(w, "type");
        aw_w_text(w, "move_agent");
        aw_w_text(w, "data");
        aw_w_map(w, 2);
        aw_w_text(w, "agent_id");
        aw_w_item(w, aw_get(data, "agent_id"));
        aw_w_text(w, "to");
        aw_w_array(w, 2);
        aw_w_uint(w, 8);
        aw_w_uint(w, 8);
    } else {
        aw_allow(out, in, "");
    }
}
