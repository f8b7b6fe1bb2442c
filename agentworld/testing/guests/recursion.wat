;; hostile: recurses without bound until the stack limit traps (`trap: call stack exhausted`).
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func $dive (param $depth i64) (result i64)
    (i64.add (call $dive (i64.add (local.get $depth) (i64.const 1))) (i64.const 1)))

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (drop (call $dive (i64.const 0)))
    (i32.const 0) (i32.const 0)))
