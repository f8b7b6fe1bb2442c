;; hostile: divides by zero (the divisor is computed at run time).
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (i32.div_s (local.get $len) (i32.sub (local.get $len) (local.get $len)))
    (i32.const 0)))
