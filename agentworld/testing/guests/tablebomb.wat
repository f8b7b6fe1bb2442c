;; hostile: grows its table by four million elements (32 MB counted against the memory limit);
;; traps if refused.
(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  ;; @include cbor.wat

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (if (i32.eq (table.grow $t (ref.null func) (i32.const 4000000)) (i32.const -1))
      (then unreachable))
    (call $w_begin)
    (call $w_map (i32.const 0))
    (global.get $out_start) (call $out_len)))
