;; metering: straight-line code. Gas (schedule 1): alloc 1 (i32.const) + call 6 = 7.
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "\a0")  ;; the output: an empty CBOR map
  (func (export "alloc") (param i32) (result i32)
    i32.const 1024)
  (func (export "call") (param i32 i32) (result i32 i32)
    i32.const 7
    i32.const 5
    i32.mul
    drop
    i32.const 16
    i32.const 1))
