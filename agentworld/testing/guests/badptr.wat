;; hostile: returns an output pointer far outside its memory.
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (i32.const 0x7fff0000) (i32.const 100)))
