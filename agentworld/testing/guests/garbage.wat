;; hostile: returns bytes that are not CBOR.
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat
  (data (i32.const 3072) "\ff\fe\fdnot cbor at all")

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (i32.const 3072) (i32.const 18)))
