/* observer: a pure module. Emits observer.saw {stage, origin, trace_id, event, action}: the
 * call's stage, origin and trace id from ctx, and the routed event and action, copied
 * verbatim (null when absent). */
#include "agentworld.h"

AW_CALL(in, out) {
    aw_buf *w = aw_emit(out, "observer.saw");
    aw_w_map(w, 5);
    aw_w_text(w, "stage");
    aw_w_item(w, aw_get(in->ctx, "stage"));
    aw_w_text(w, "origin");
    aw_w_item(w, aw_get(in->ctx, "origin"));
    aw_w_text(w, "trace_id");
    aw_w_item(w, aw_get(in->ctx, "trace_id"));
    aw_w_text(w, "event");
    aw_w_item(w, in->event);
    aw_w_text(w, "action");
    aw_w_item(w, in->action);
}
