;; counter_v1: a reducer whose state is a 4-byte little-endian u32 count (empty = 0). Each call
;; adds one (wrapping), returns the new state and emits counter.ticked {count}.
;; Its `migrate` converts a counter_v2 state (16 bytes: the count as a u64, then the time of the
;; last tick) back to 4 bytes, so an instance can roll back from v2; a count that does not fit in
;; 32 bits traps, and so does a state of any other size. An empty or 4-byte state is kept.
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  ;; Where the bytes of the input's `state` start; their length is left in $arg (0 if absent).
  (func $state_bytes (param $in i32) (result i32)
    (local $p i32)
    (local.set $p (call $map_get (local.get $in) (global.get $s_state)))
    (if (i32.lt_s (local.get $p) (i32.const 0))
      (then (global.set $arg (i64.const 0)) (return (i32.const 0))))
    (local.set $p (call $head (local.get $p)))
    (if (i32.ne (global.get $mt) (i32.const 2)) (then unreachable))
    (local.get $p))

  ;; The map entry "new_state": h'<count as 4 bytes little-endian>'.
  (func $w_state_u32 (param $count i64)
    (call $w_str (global.get $s_new_state))
    (call $w_head (i32.const 2) (i64.const 4))
    (call $ensure (i32.add (global.get $out) (i32.const 4)))
    (i32.store (global.get $out) (i32.wrap_i64 (local.get $count)))
    (global.set $out (i32.add (global.get $out) (i32.const 4))))

  (func (export "reduce") (param $ptr i32) (param $len i32) (result i32 i32)
    (local $p i32) (local $count i64)
    (local.set $p (call $state_bytes (local.get $ptr)))
    (if (i64.eq (global.get $arg) (i64.const 4))
      (then (local.set $count (i64.load32_u (local.get $p))))
      (else (if (i64.ne (global.get $arg) (i64.const 0)) (then unreachable))))
    (local.set $count (i64.and (i64.add (local.get $count) (i64.const 1))
                               (i64.const 0xffffffff)))
    (call $w_begin)
    (call $w_map (i32.const 3))
    (call $w_state_u32 (local.get $count))
    (call $w_str (global.get $s_emits))
    (call $w_array (i32.const 1))
    (call $w_map (i32.const 2))
    (call $w_str (global.get $s_kind))
    (call $w_str (global.get $s_counter_ticked))
    (call $w_str (global.get $s_payload))
    (call $w_map (i32.const 1))
    (call $w_str (global.get $s_count))
    (call $w_uint (local.get $count))
    (call $w_str (global.get $s_effects))
    (call $w_array (i32.const 0))
    (global.get $out_start) (call $out_len))

  (func (export "migrate") (param $ptr i32) (param $len i32) (result i32 i32)
    (local $p i32) (local $count i64)
    (local.set $p (call $state_bytes (local.get $ptr)))
    (block $known
      (br_if $known (i64.eqz (global.get $arg)))
      (if (i64.eq (global.get $arg) (i64.const 4))
        (then (local.set $count (i64.load32_u (local.get $p))) (br $known)))
      (if (i64.eq (global.get $arg) (i64.const 16))
        (then
          (local.set $count (i64.load (local.get $p)))
          (if (i64.gt_u (local.get $count) (i64.const 0xffffffff)) (then unreachable))
          (br $known)))
      unreachable)
    (call $w_begin)
    (call $w_map (i32.const 1))
    (call $w_state_u32 (local.get $count))
    (global.get $out_start) (call $out_len)))
