;; suspender: a reducer that counts like `counter`, emits nothing and suspends its tick
;; subscription: tick_lifecycle {"mode": "suspend"}.
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func (export "reduce") (param $ptr i32) (param $len i32) (result i64)
    (local $count i64)
    (local.set $count (call $next_count (local.get $ptr)))
    (call $w_begin)
    (call $w_map (i32.const 2))
    (call $w_state (local.get $count))
    (call $w_str (global.get $s_tick_lifecycle))
    (call $w_map (i32.const 1))
    (call $w_str (global.get $s_mode))
    (call $w_str (global.get $s_suspend))
    (call $out_packed)))
