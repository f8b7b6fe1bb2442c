;; echo: returns its input bytes unchanged (not a valid output map: for raw-call benchmarks).
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (local.get $ptr) (local.get $len)))
