;; observer: a pure module. Emits one observer.saw {stage, origin, trace_id, event, action}: the
;; call's stage, origin and trace id from ctx, and the input's event and action maps, all copied
;; verbatim as CBOR items (null when absent).
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func (export "call") (param $ptr i32) (param $len i32) (result i64)
    (call $w_begin)
    (call $w_map (i32.const 1))
    (call $w_str (global.get $s_emits))
    (call $w_array (i32.const 1))
    (call $w_map (i32.const 2))
    (call $w_str (global.get $s_kind))
    (call $w_str (global.get $s_observer_saw))
    (call $w_str (global.get $s_payload))
    (call $w_map (i32.const 5))
    (call $w_str (global.get $s_stage))
    (call $w_item_or_null
      (call $map_get (call $map_get (local.get $ptr) (global.get $s_ctx)) (global.get $s_stage)))
    (call $w_str (global.get $s_origin))
    (call $w_item_or_null
      (call $map_get (call $map_get (local.get $ptr) (global.get $s_ctx)) (global.get $s_origin)))
    (call $w_str (global.get $s_trace_id))
    (call $w_item_or_null
      (call $map_get (call $map_get (local.get $ptr) (global.get $s_ctx)) (global.get $s_trace_id)))
    (call $w_str (global.get $s_event))
    (call $w_item_or_null (call $map_get (local.get $ptr) (global.get $s_event)))
    (call $w_str (global.get $s_action))
    (call $w_item_or_null (call $map_get (local.get $ptr) (global.get $s_action)))
    (call $out_packed)))
