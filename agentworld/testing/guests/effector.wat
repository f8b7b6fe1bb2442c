;; effector: a pure module that emits nothing and asks for one effect:
;; effects: [{kind: "bank.pay", params: {amount: 1}, cap_slot: "pay"}].
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (call $w_begin)
    (call $w_map (i32.const 1))
    (call $w_str (global.get $s_effects))
    (call $w_array (i32.const 1))
    (call $w_map (i32.const 3))
    (call $w_str (global.get $s_kind))
    (call $w_str (global.get $s_bank_pay))
    (call $w_str (global.get $s_params))
    (call $w_map (i32.const 1))
    (call $w_str (global.get $s_amount))
    (call $w_uint (i64.const 1))
    (call $w_str (global.get $s_cap_slot))
    (call $w_str (global.get $s_pay))
    (global.get $out_start) (call $out_len)))
