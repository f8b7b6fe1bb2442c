;; counter_v2: a reducer whose state is 16 bytes: the count as a little-endian u64, then the time
;; of the last tick (ctx.time) as a little-endian u64 (empty = both 0). Each call adds one,
;; records the time and emits counter.ticked {count, last_tick}. A state of any other size (an
;; unmigrated counter_v1 state) traps.
;; Its `migrate` converts a counter_v1 state (a 4-byte count) to this layout with last tick 0,
;; turns an empty state into 16 zero bytes, keeps a 16-byte state and traps on any other size.
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  ;; Literals of this guest, after the shared library's (which end before 2400).
  (global $s_time i32 (i32.const 3072)) (data (i32.const 3072) "\04time")
  (global $s_last_tick i32 (i32.const 3104)) (data (i32.const 3104) "\09last_tick")

  ;; Where the bytes of the input's `state` start; their length is left in $arg (0 if absent).
  (func $state_bytes (param $in i32) (result i32)
    (local $p i32)
    (local.set $p (call $map_get (local.get $in) (global.get $s_state)))
    (if (i32.lt_s (local.get $p) (i32.const 0))
      (then (global.set $arg (i64.const 0)) (return (i32.const 0))))
    (local.set $p (call $head (local.get $p)))
    (if (i32.ne (global.get $mt) (i32.const 2)) (then unreachable))
    (local.get $p))

  ;; The map entry "new_state": h'<count, 8 bytes LE><last tick, 8 bytes LE>'.
  (func $w_state_v2 (param $count i64) (param $last i64)
    (call $w_str (global.get $s_new_state))
    (call $w_head (i32.const 2) (i64.const 16))
    (call $ensure (i32.add (global.get $out) (i32.const 16)))
    (i64.store (global.get $out) (local.get $count))
    (i64.store offset=8 (global.get $out) (local.get $last))
    (global.set $out (i32.add (global.get $out) (i32.const 16))))

  (func (export "reduce") (param $ptr i32) (param $len i32) (result i32 i32)
    (local $p i32) (local $count i64) (local $time i64)
    (local.set $p (call $state_bytes (local.get $ptr)))
    (if (i64.eq (global.get $arg) (i64.const 16))
      (then (local.set $count (i64.load (local.get $p))))
      (else (if (i64.ne (global.get $arg) (i64.const 0)) (then unreachable))))
    (local.set $count (i64.add (local.get $count) (i64.const 1)))
    (local.set $time (call $uint_at (call $map_get
      (call $map_get (local.get $ptr) (global.get $s_ctx)) (global.get $s_time))))
    (if (i64.lt_s (local.get $time) (i64.const 0)) (then unreachable))
    (call $w_begin)
    (call $w_map (i32.const 3))
    (call $w_state_v2 (local.get $count) (local.get $time))
    (call $w_str (global.get $s_emits))
    (call $w_array (i32.const 1))
    (call $w_map (i32.const 2))
    (call $w_str (global.get $s_kind))
    (call $w_str (global.get $s_counter_ticked))
    (call $w_str (global.get $s_payload))
    (call $w_map (i32.const 2))
    (call $w_str (global.get $s_count))
    (call $w_uint (local.get $count))
    (call $w_str (global.get $s_last_tick))
    (call $w_uint (local.get $time))
    (call $w_str (global.get $s_effects))
    (call $w_array (i32.const 0))
    (global.get $out_start) (call $out_len))

  (func (export "migrate") (param $ptr i32) (param $len i32) (result i32 i32)
    (local $p i32) (local $count i64) (local $last i64)
    (local.set $p (call $state_bytes (local.get $ptr)))
    (block $known
      (br_if $known (i64.eqz (global.get $arg)))
      (if (i64.eq (global.get $arg) (i64.const 4))
        (then (local.set $count (i64.load32_u (local.get $p))) (br $known)))
      (if (i64.eq (global.get $arg) (i64.const 16))
        (then
          (local.set $count (i64.load (local.get $p)))
          (local.set $last (i64.load offset=8 (local.get $p)))
          (br $known)))
      unreachable)
    (call $w_begin)
    (call $w_map (i32.const 1))
    (call $w_state_v2 (local.get $count) (local.get $last))
    (global.get $out_start) (call $out_len)))
