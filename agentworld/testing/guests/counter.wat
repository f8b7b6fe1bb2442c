;; counter: a reducer. State is an 8-byte little-endian u64 (empty = 0); each call adds one,
;; returns the new state and emits counter.ticked {count}. The same logic is exported under
;; all three entrypoint shapes of the wasm-1 ABI: `reduce` (multi-value), `reduce_packed`
;; (i64) and `reduce_retarea` (ret_area pointer).
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func $run (param $in i32)
    (local $count i64)
    (local.set $count (call $next_count (local.get $in)))
    (call $w_begin)
    (call $w_map (i32.const 3))
    (call $w_state (local.get $count))
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
    (call $w_array (i32.const 0)))

  (func (export "reduce") (param $ptr i32) (param $len i32) (result i32 i32)
    (call $run (local.get $ptr))
    (global.get $out_start) (call $out_len))

  (func (export "reduce_packed") (param $ptr i32) (param $len i32) (result i64)
    (call $run (local.get $ptr))
    (call $out_packed))

  (func (export "reduce_retarea") (param $ret i32) (param $ptr i32) (param $len i32)
    (call $run (local.get $ptr))
    (call $out_store (local.get $ret))))
