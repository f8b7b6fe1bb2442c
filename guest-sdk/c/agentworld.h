/* agentworld.h: write agentworld `wasm-1` modules in freestanding C. One header, no libc.
 *
 * Build (clang and lld, nothing else):
 *   clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -Wl,--stack-first -I guest-sdk/c \
 *         -o m.wasm m.c
 *
 * A module is one .c file that includes this header once and defines its entry points:
 *
 *   AW_REDUCE(in, out) { ... }    reducers: exported as `reduce`
 *   AW_CALL(in, out) { ... }      pure modules: exported as `call`
 *   AW_MIGRATE(in, out) { ... }   state migration: exported as `migrate`
 *
 * `in` is a `const aw_input *` (the decoded input map), `out` an `aw_output *` (collects the
 * output map, encoded when the entry point returns). The header also exports `alloc`, the
 * ABI's allocator. Everything is bounds-checked: malformed input (truncated, lengths past the
 * end, indefinite lengths, reserved bytes) and exhausted memory end the call with a trap
 * (`unreachable`); nothing is ever written outside memory this header allocated.
 */
#ifndef AGENTWORLD_H
#define AGENTWORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The workhorses stay out of line: inlined into every call site, they triple the code. */
#define AW__NOINLINE __attribute__((noinline))

#define AW_CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

/* ---- memory: a bump allocator, reset when the host allocates a call's input ------------- */

extern unsigned char __heap_base;
static uintptr_t aw__top;  /* next free byte; 0 until first use */

/* Move the heap top to `end`, growing memory as needed; trap when the host refuses. */
AW__NOINLINE static void aw__set_top(uintptr_t end) {
    uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) << 16;
    if ((uint64_t)end > have) {
        uint64_t pages = ((uint64_t)end - have + 65535) >> 16;
        AW_CHECK(__builtin_wasm_memory_grow(0, (size_t)pages) != (size_t)-1);
    }
    aw__top = end;
}

/* `len` bytes, 8-byte aligned, valid until the call returns (there is no free). */
static inline void *aw_alloc(size_t len) {
    if (aw__top == 0) aw__top = (uintptr_t)&__heap_base;
    uintptr_t p = (aw__top + 7) & ~(uintptr_t)7;
    AW_CHECK(p >= aw__top && len <= UINTPTR_MAX - p);
    aw__set_top(p + len);
    return (void *)p;
}

/* The host calls `alloc` once per call, for the input, before the entry point: nothing of an
 * earlier call on the same instance (a warm one) is alive then, even if it trapped. */
__attribute__((export_name("alloc"))) void *aw__host_alloc(int32_t len) {
    aw__top = 0;
    AW_CHECK(len >= 0);
    return aw_alloc((size_t)len);
}

/* Without bulk memory, clang lowers struct copies and __builtin_memcpy to these calls. */
__attribute__((weak, visibility("hidden"), no_builtin)) void *memcpy(void *d, const void *s,
                                                                     size_t n) {
    uint8_t *to = d;
    const uint8_t *from = s;
    for (; n >= 8; n -= 8, to += 8, from += 8) {  /* a word at a time: 1 MiB states are common */
        uint64_t word;
        __builtin_memcpy(&word, from, 8);
        __builtin_memcpy(to, &word, 8);
    }
    while (n--) *to++ = *from++;
    return d;
}
__attribute__((weak, visibility("hidden"), no_builtin)) void *memset(void *d, int c, size_t n) {
    uint8_t *to = d;
    while (n--) *to++ = (uint8_t)c;
    return d;
}

AW__NOINLINE static bool aw__memeq(const void *a, const void *b, size_t n) {
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return false;
    return true;
}

__attribute__((weak, visibility("hidden"), no_builtin)) size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

/* Folded at compile time for string literals, a call to strlen otherwise. */
#define aw__strlen(s) __builtin_strlen(s)

/* Little-endian loads and stores, for state bytes. */
static inline uint32_t aw_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t aw_le64(const uint8_t *p) { return aw_le32(p) | (uint64_t)aw_le32(p + 4) << 32; }
static inline void aw_put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void aw_put_le64(uint8_t *p, uint64_t v) {
    aw_put_le32(p, (uint32_t)v);
    aw_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* ---- reading CBOR ----------------------------------------------------------------------- */

/* One CBOR item of the input: `p` is its first byte, `end` the end of the whole input (every
 * read checks against it). An absent item (missing key, index out of range) has p == NULL. */
typedef struct aw_item {
    const uint8_t *p;
    const uint8_t *end;
} aw_item;

typedef enum aw_type {
    AW_ABSENT, AW_INT, AW_BYTES, AW_TEXT, AW_ARRAY, AW_MAP, AW_BOOL, AW_NULL, AW_FLOAT, AW_OTHER
} aw_type;

/* A byte or text string inside the input (not NUL-terminated); ptr == NULL when absent. */
typedef struct aw_str {
    const char *ptr;
    size_t len;
} aw_str;

typedef struct aw__head {
    uint8_t major, info;
    uint64_t arg;
    const uint8_t *next;  /* the byte after the head */
} aw__head;

static inline __attribute__((always_inline)) aw__head aw__read_head(const uint8_t *p, const uint8_t *end) {
    aw__head h;
    AW_CHECK(p != NULL && p < end);
    h.major = *p >> 5;
    h.info = *p & 31;
    p++;
    if (h.info < 24) {
        h.arg = h.info;
    } else {
        /* 28..30 are reserved; 31 (indefinite length) never occurs in canonical input */
        AW_CHECK(h.info <= 27);
        size_t n = (size_t)1 << (h.info - 24);
        AW_CHECK((size_t)(end - p) >= n);
        h.arg = 0;
        for (size_t i = 0; i < n; i++) h.arg = h.arg << 8 | p[i];
        p += n;
    }
    h.next = p;
    return h;
}

/* The byte after the whole item at p. Iterative (a count of pending items), so nesting depth
 * costs no stack; every pending item needs at least one byte, which bounds the count. */
AW__NOINLINE static const uint8_t *aw__skip(const uint8_t *p, const uint8_t *end) {
    uint64_t pending = 1;
    while (pending) {
        pending--;
        aw__head h = aw__read_head(p, end);
        p = h.next;
        uint64_t left = (uint64_t)(end - p);
        AW_CHECK(pending <= left);
        if (h.major == 2 || h.major == 3) {
            AW_CHECK(h.arg <= left);
            p += h.arg;
        } else if (h.major >= 4 && h.major <= 6) {
            uint64_t items = h.major == 6 ? 1 : h.arg;
            AW_CHECK(items <= left);
            items *= h.major == 5 ? 2 : 1;
            AW_CHECK(items <= left - pending);
            pending += items;
        }
    }
    return p;
}

static inline aw_item aw__absent(void) {
    aw_item none = {NULL, NULL};
    return none;
}

static inline aw_type aw_type_of(aw_item it) {
    if (it.p == NULL) return AW_ABSENT;
    aw__head h = aw__read_head(it.p, it.end);
    switch (h.major) {
    case 0: case 1: return AW_INT;
    case 2: return AW_BYTES;
    case 3: return AW_TEXT;
    case 4: return AW_ARRAY;
    case 5: return AW_MAP;
    case 7:
        if (h.info == 20 || h.info == 21) return AW_BOOL;
        if (h.info == 22) return AW_NULL;
        if (h.info >= 25 && h.info <= 27) return AW_FLOAT;
        return AW_OTHER;
    default: return AW_OTHER;
    }
}

/* Entries of a map or elements of an array (0 for anything else). */
static inline uint32_t aw_count(aw_item it) {
    aw_type t = aw_type_of(it);
    if (t != AW_ARRAY && t != AW_MAP) return 0;
    uint64_t n = aw__read_head(it.p, it.end).arg;
    AW_CHECK(n <= UINT32_MAX);
    return (uint32_t)n;
}

/* Walks the entries of a map (key and value) or the elements of an array (value only). */
typedef struct aw_iter {
    const uint8_t *p, *end;
    uint64_t left;
    bool map;
} aw_iter;

static inline aw_iter aw_iter_of(aw_item container) {
    aw_iter it = {NULL, NULL, 0, false};
    aw_type t = aw_type_of(container);
    if (t == AW_ARRAY || t == AW_MAP) {
        aw__head h = aw__read_head(container.p, container.end);
        it.p = h.next;
        it.end = container.end;
        it.left = h.arg;
        it.map = t == AW_MAP;
    }
    return it;
}

/* The next entry; false when there are no more. `key` may be NULL; it is absent for arrays. */
static inline bool aw_next(aw_iter *it, aw_item *key, aw_item *value) {
    if (it->left == 0) return false;
    it->left--;
    aw_item k = aw__absent();
    if (it->map) {
        k.p = it->p;
        k.end = it->end;
        it->p = aw__skip(it->p, it->end);
    }
    aw_item v = {it->p, it->end};
    it->p = aw__skip(it->p, it->end);
    if (key) *key = k;
    *value = v;
    return true;
}

static inline aw_str aw__string(aw_item it, uint8_t major) {
    aw_str s = {NULL, 0};
    if (it.p == NULL) return s;
    aw__head h = aw__read_head(it.p, it.end);
    if (h.major != major) return s;
    AW_CHECK(h.arg <= (uint64_t)(it.end - h.next));
    s.ptr = (const char *)h.next;
    s.len = (size_t)h.arg;
    return s;
}

/* A text string (ptr NULL unless the item is text). */
static inline aw_str aw_text(aw_item it) { return aw__string(it, 3); }
/* A byte string (ptr NULL unless the item is bytes). */
static inline aw_str aw_bytes(aw_item it) { return aw__string(it, 2); }

/* Is the item the text `s`? */
static inline bool aw_text_eq(aw_item it, const char *s) {
    aw_str t = aw_text(it);
    size_t n = aw__strlen(s);
    return t.ptr != NULL && t.len == n && aw__memeq(t.ptr, s, n);
}

/* The value under text key `key` (of `len` bytes) in a map; absent if none or not a map. */
AW__NOINLINE static aw_item aw_getn(aw_item map, const char *key, size_t len) {
    aw_iter it = aw_iter_of(map);
    aw_item k, v;
    if (!it.map) return aw__absent();
    while (aw_next(&it, &k, &v)) {
        aw_str t = aw_text(k);
        if (t.ptr != NULL && t.len == len && aw__memeq(t.ptr, key, len)) return v;
    }
    return aw__absent();
}

/* The value under text key `key` (NUL-terminated) in a map; absent if none or not a map. */
static inline aw_item aw_get(aw_item map, const char *key) {
    return aw_getn(map, key, aw__strlen(key));
}

/* Element `index` of an array; absent if out of range or not an array. */
static inline aw_item aw_at(aw_item array, uint32_t index) {
    aw_iter it = aw_iter_of(array);
    aw_item v;
    if (it.map) return aw__absent();
    while (aw_next(&it, NULL, &v))
        if (index-- == 0) return v;
    return aw__absent();
}

/* An integer that fits int64_t; false (and *out untouched) otherwise. */
static inline bool aw_int(aw_item it, int64_t *out) {
    if (aw_type_of(it) != AW_INT) return false;
    aw__head h = aw__read_head(it.p, it.end);
    if (h.arg > (uint64_t)INT64_MAX) return false;
    *out = h.major == 0 ? (int64_t)h.arg : -1 - (int64_t)h.arg;
    return true;
}

static inline int64_t aw_int_or(aw_item it, int64_t fallback) {
    int64_t v;
    return aw_int(it, &v) ? v : fallback;
}

/* A non-negative integer (all of 0..2^64-1), or `fallback`. */
static inline uint64_t aw_uint_or(aw_item it, uint64_t fallback) {
    if (it.p == NULL) return fallback;
    aw__head h = aw__read_head(it.p, it.end);
    return h.major == 0 ? h.arg : fallback;
}

static inline bool aw_bool_or(aw_item it, bool fallback) {
    if (aw_type_of(it) != AW_BOOL) return fallback;
    return aw__read_head(it.p, it.end).info == 21;
}

static inline bool aw_is_null(aw_item it) { return aw_type_of(it) == AW_NULL; }

static inline double aw__bits_to_double(uint64_t bits) {
    union { uint64_t u; double d; } v = {bits};
    return v.d;
}

/* A number (half, single or double float, or an integer) as a double, or `fallback`. */
static inline double aw_float_or(aw_item it, double fallback) {
    int64_t i;
    if (aw_int(it, &i)) return (double)i;
    if (aw_type_of(it) != AW_FLOAT) return fallback;
    aw__head h = aw__read_head(it.p, it.end);
    if (h.info == 27) return aw__bits_to_double(h.arg);
    if (h.info == 26) {
        union { uint32_t u; float f; } v = {(uint32_t)h.arg};
        return (double)v.f;
    }
    uint64_t sign = (h.arg >> 15) << 63, exp = (h.arg >> 10) & 31, man = h.arg & 1023;
    if (exp == 0) return (sign ? -1.0 : 1.0) * (double)man * 0x1p-24;
    if (exp == 31) return aw__bits_to_double(sign | 0x7ffULL << 52 | man << 42);
    return aw__bits_to_double(sign | (exp + 1008) << 52 | man << 42);
}

/* The item that follows `it` in the encoding without skipping a container's contents: for an
 * array or map its first element (or key), for anything else the next item. Walks a whole
 * tree in order, without recursion (stop at `it.p + aw_item_size(it)` of the tree's root). */
static inline aw_item aw_step(aw_item it) {
    aw__head h = aw__read_head(it.p, it.end);
    aw_item next = {h.next, it.end};
    if (h.major == 2 || h.major == 3) {
        AW_CHECK(h.arg <= (uint64_t)(it.end - h.next));
        next.p += h.arg;
    }
    return next;
}

/* The item's encoded bytes, e.g. to compare or copy it. */
static inline size_t aw_item_size(aw_item it) {
    return it.p == NULL ? 0 : (size_t)(aw__skip(it.p, it.end) - it.p);
}

/* ---- writing CBOR ----------------------------------------------------------------------- */

/* A growable byte buffer on the heap. A zeroed aw_buf is empty and ready. */
typedef struct aw_buf {
    uint8_t *data;
    size_t len, cap;
} aw_buf;

AW__NOINLINE static void aw__reserve(aw_buf *b, size_t n) {
    if (n <= b->cap - b->len) return;
    AW_CHECK(n <= SIZE_MAX / 4 - b->len);
    size_t want = b->len + n, cap = b->cap * 2 > want ? b->cap * 2 : want;
    if (cap < 64) cap = 64;
    if (b->data != NULL && (uintptr_t)(b->data + b->cap) == aw__top) {
        AW_CHECK((uintptr_t)b->data <= UINTPTR_MAX - cap);
        aw__set_top((uintptr_t)b->data + cap);  /* the last allocation: grow in place */
    } else {
        uint8_t *fresh = aw_alloc(cap);
        if (b->len) memcpy(fresh, b->data, b->len);
        b->data = fresh;
    }
    b->cap = cap;
}

AW__NOINLINE static void aw_w_raw(aw_buf *w, const void *data, size_t len) {
    aw__reserve(w, len);
    if (len) memcpy(w->data + w->len, data, len);
    w->len += len;
}

AW__NOINLINE static void aw__w_head(aw_buf *w, uint8_t major, uint64_t arg) {
    uint8_t head[9];
    size_t n;
    major = (uint8_t)(major << 5);
    if (arg < 24) {
        head[0] = major | (uint8_t)arg;
        n = 1;
    } else {
        size_t bytes = arg <= 0xff ? 1 : arg <= 0xffff ? 2 : arg <= 0xffffffffULL ? 4 : 8;
        head[0] = major | (uint8_t)(bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27);
        for (size_t i = 0; i < bytes; i++) head[1 + i] = (uint8_t)(arg >> (8 * (bytes - 1 - i)));
        n = 1 + bytes;
    }
    aw_w_raw(w, head, n);
}

static inline void aw_w_uint(aw_buf *w, uint64_t v) { aw__w_head(w, 0, v); }
static inline void aw_w_int(aw_buf *w, int64_t v) {
    if (v >= 0) aw__w_head(w, 0, (uint64_t)v);
    else aw__w_head(w, 1, (uint64_t)(-1 - v));
}
static inline void aw_w_bytes(aw_buf *w, const void *data, size_t len) {
    aw__w_head(w, 2, len);
    aw_w_raw(w, data, len);
}
/* Text of `len` bytes (must be UTF-8). */
AW__NOINLINE static void aw_w_textn(aw_buf *w, const char *s, size_t len) {
    aw__w_head(w, 3, len);
    aw_w_raw(w, s, len);
}
static inline void aw_w_text(aw_buf *w, const char *s) { aw_w_textn(w, s, aw__strlen(s)); }
/* An array of `n` items, or a map of `n` entries (key, value): write them next. */
static inline void aw_w_array(aw_buf *w, uint32_t n) { aw__w_head(w, 4, n); }
static inline void aw_w_map(aw_buf *w, uint32_t n) { aw__w_head(w, 5, n); }
static inline void aw_w_bool(aw_buf *w, bool v) { aw_w_raw(w, v ? "\xf5" : "\xf4", 1); }
static inline void aw_w_null(aw_buf *w) { aw_w_raw(w, "\xf6", 1); }
/* A finite double (NaN and infinities are not JSON: the host refuses them). */
static inline void aw_w_float(aw_buf *w, double v) {
    union { double d; uint64_t u; } bits = {v};
    uint8_t out[9] = {0xfb};
    for (int i = 0; i < 8; i++) out[1 + i] = (uint8_t)(bits.u >> (56 - 8 * i));
    aw_w_raw(w, out, 9);
}
/* An input item copied verbatim, or null when it is absent. */
static inline void aw_w_item(aw_buf *w, aw_item it) {
    if (it.p == NULL) aw_w_null(w);
    else aw_w_raw(w, it.p, aw_item_size(it));
}

/* ---- the call: input and output -------------------------------------------------------- */

typedef struct aw_input {
    aw_item root;          /* the whole input map */
    aw_item ctx;           /* v, module_id, instance_id, module_version, trace_id, stage, time,
                              origin {kind, id}, install_target, manifest_hash, world_config_hash */
    aw_item event;         /* absent unless an event is routed */
    aw_item action;        /* absent unless an action is routed */
    const uint8_t *state;  /* the instance's state (reducers and migrate; else empty) */
    size_t state_len;
    aw_item from_version;  /* migrate only */
    aw_item to_version;    /* migrate only */
    int64_t time;          /* ctx.time */
} aw_input;

typedef struct aw_output {
    bool has_state;
    const uint8_t *state;
    size_t state_len;
    aw_buf emits, effects;
    uint32_t n_emits, n_effects;
    int tick_mode;  /* 0 keep the cadence, 1 wake after tick_n ticks, 2 suspend */
    uint64_t tick_n;
} aw_output;

/* Is ctx.stage `stage`? */
static inline bool aw_stage_is(const aw_input *in, const char *stage) {
    return aw_text_eq(aw_get(in->ctx, "stage"), stage);
}

/* The new state: `len` zeroed bytes to fill in (reducers and migrate only). */
static inline uint8_t *aw_new_state(aw_output *out, size_t len) {
    uint8_t *state = aw_alloc(len);
    memset(state, 0, len);
    out->has_state = true;
    out->state = state;
    out->state_len = len;
    return state;
}

/* The new state, copied from `data`. */
static inline void aw_set_state(aw_output *out, const void *data, size_t len) {
    uint8_t *state = aw_new_state(out, len);
    if (len) memcpy(state, data, len);
}

/* Emit an event of `kind`; write its payload (exactly one item) to the returned buffer. */
static inline aw_buf *aw_emit(aw_output *out, const char *kind) {
    aw_buf *w = &out->emits;
    out->n_emits++;
    aw_w_map(w, 2);
    aw_w_text(w, "kind");
    aw_w_text(w, kind);
    aw_w_text(w, "payload");
    return w;
}

static inline aw_buf *aw__effect(aw_output *out, const char *kind, const char *bind, const char *cap) {
    aw_buf *w = &out->effects;
    out->n_effects++;
    aw_w_map(w, 3);
    aw_w_text(w, "kind");
    aw_w_text(w, kind);
    aw_w_text(w, bind);
    aw_w_text(w, cap);
    aw_w_text(w, "params");
    return w;
}

/* Request an effect through the manifest's cap slot `slot`; write its params (one item). */
static inline aw_buf *aw_effect_slot(aw_output *out, const char *kind, const char *slot) {
    return aw__effect(out, kind, "cap_slot", slot);
}

/* Request an effect under capability `cap_ref`; write its params (one item). */
static inline aw_buf *aw_effect_ref(aw_output *out, const char *kind, const char *cap_ref) {
    return aw__effect(out, kind, "cap_ref", cap_ref);
}

/* Tick only: next tick in `ticks` (>= 1) ticks, instead of the subscription's cadence. */
static inline void aw_wake_after(aw_output *out, uint64_t ticks) {
    out->tick_mode = 1;
    out->tick_n = ticks;
}

/* Tick only: no more ticks until the instance is woken again. */
static inline void aw_suspend(aw_output *out) { out->tick_mode = 2; }

static inline aw_buf *aw__decide(aw_output *out, const aw_input *in, const char *verdict,
                          const char *notes, uint32_t entries) {
    aw_buf *w = aw_emit(out, "rule.decision");
    aw_w_map(w, entries);
    aw_w_text(w, "action_id");
    aw_w_item(w, aw_get(in->action, "action_id"));
    aw_w_text(w, "verdict");
    aw_w_text(w, verdict);
    aw_w_text(w, "notes");
    aw_w_text(w, notes);
    return w;
}

/* pre_action only: let the routed action through. */
static inline void aw_allow(aw_output *out, const aw_input *in, const char *notes) {
    aw__decide(out, in, "allow", notes, 3);
}

/* pre_action only: refuse the routed action. */
static inline void aw_deny(aw_output *out, const aw_input *in, const char *notes) {
    aw__decide(out, in, "deny", notes, 3);
}

/* pre_action only: replace the routed action; write the new action {type, data} (one map). */
static inline aw_buf *aw_modify(aw_output *out, const aw_input *in, const char *notes) {
    aw_buf *w = aw__decide(out, in, "modify", notes, 4);
    aw_w_text(w, "override_action");
    return w;
}

static inline int64_t aw__finish(aw_output *out) {
    aw_buf w = {NULL, 0, 0};
    aw_w_map(&w, 2 + (out->has_state ? 1 : 0) + (out->tick_mode ? 1 : 0));
    if (out->has_state) {
        aw_w_text(&w, "new_state");
        aw_w_bytes(&w, out->state, out->state_len);
    }
    aw_w_text(&w, "emits");
    aw_w_array(&w, out->n_emits);
    aw_w_raw(&w, out->emits.data, out->emits.len);
    aw_w_text(&w, "effects");
    aw_w_array(&w, out->n_effects);
    aw_w_raw(&w, out->effects.data, out->effects.len);
    if (out->tick_mode) {
        aw_w_text(&w, "tick_lifecycle");
        aw_w_map(&w, out->tick_mode == 1 ? 2 : 1);
        aw_w_text(&w, "mode");
        if (out->tick_mode == 1) {
            aw_w_text(&w, "wake_after_ticks");
            aw_w_text(&w, "ticks");
            aw_w_uint(&w, out->tick_n);
        } else {
            aw_w_text(&w, "suspend");
        }
    }
    return (int64_t)((uint64_t)w.len << 32 | (uint32_t)(uintptr_t)w.data);
}

static inline int64_t aw__run(int32_t ptr, int32_t len, void (*body)(const aw_input *, aw_output *)) {
    uint64_t memory = (uint64_t)__builtin_wasm_memory_size(0) << 16;
    AW_CHECK(ptr >= 0 && len >= 0 && (uint64_t)ptr + (uint64_t)len <= memory);
    const uint8_t *start = (const uint8_t *)(uintptr_t)ptr, *end = start + len;
    aw_input in;
    in.root.p = start;
    in.root.end = end;
    in.ctx = in.event = in.action = in.from_version = in.to_version = aw__absent();
    aw_item key, value, state = aw__absent();
    AW_CHECK(aw_type_of(in.root) == AW_MAP);
    /* One pass over the input's entries, skipping (and so checking) each one: the input is
     * exactly one well-formed map, and a deep event is skipped once, not once per key. */
    aw_iter it = aw_iter_of(in.root);
    while (aw_next(&it, &key, &value)) {
        if (aw_text_eq(key, "ctx")) in.ctx = value;
        else if (aw_text_eq(key, "event")) in.event = value;
        else if (aw_text_eq(key, "action")) in.action = value;
        else if (aw_text_eq(key, "state")) state = value;
        else if (aw_text_eq(key, "from_version")) in.from_version = value;
        else if (aw_text_eq(key, "to_version")) in.to_version = value;
    }
    AW_CHECK(it.p == end && aw_type_of(in.ctx) == AW_MAP);
    aw_str bytes = aw_bytes(state);
    AW_CHECK(state.p == NULL || bytes.ptr != NULL);
    in.state = (const uint8_t *)bytes.ptr;
    in.state_len = bytes.len;
    in.time = aw_int_or(aw_get(in.ctx, "time"), 0);
    aw_output out;
    memset(&out, 0, sizeof out);
    body(&in, &out);
    return aw__finish(&out);
}

#define AW__ENTRY(name, in, out)                                                         \
    static void aw__body_##name(const aw_input *in, aw_output *out);                     \
    __attribute__((export_name(#name))) int64_t aw__entry_##name(int32_t ptr, int32_t len) { \
        return aw__run(ptr, len, aw__body_##name);                                       \
    }                                                                                    \
    static void aw__body_##name(const aw_input *in, aw_output *out)

#define AW_REDUCE(in, out) AW__ENTRY(reduce, in, out)
#define AW_CALL(in, out) AW__ENTRY(call, in, out)
#define AW_MIGRATE(in, out) AW__ENTRY(migrate, in, out)

#endif
