;; metering: two calls of a helper. Gas (schedule 1): alloc 1; call: 10 (two `call`s cost 2
;; each, six other instructions 1 each); the helper 3 per call, 6; in all 17.
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "\a0")
  (func (export "alloc") (param i32) (result i32)
    i32.const 1024)
  (func $double (param i32) (result i32)
    local.get 0
    i32.const 2
    i32.mul)
  (func (export "call") (param i32 i32) (result i32 i32)
    i32.const 21
    call $double
    drop
    i32.const 21
    call $double
    drop
    i32.const 16
    i32.const 1))
