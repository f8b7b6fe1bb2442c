;; sleeper: a reducer that counts like `counter`, emits nothing and asks to be woken again
;; after three ticks: tick_lifecycle {"mode": "wake_after_ticks", "ticks": 3}.
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func (export "reduce") (param $ptr i32) (param $len i32) (result i32 i32)
    (local $count i64)
    (local.set $count (call $next_count (local.get $ptr)))
    (call $w_begin)
    (call $w_map (i32.const 2))
    (call $w_state (local.get $count))
    (call $w_str (global.get $s_tick_lifecycle))
    (call $w_map (i32.const 2))
    (call $w_str (global.get $s_mode))
    (call $w_str (global.get $s_wake_after_ticks))
    (call $w_str (global.get $s_ticks))
    (call $w_uint (i64.const 3))
    (global.get $out_start) (call $out_len)))
