;; metering: memory.grow and memory.fill. Gas (schedule 1): alloc 1; call: 9 instructions
;; (i32.const, memory.grow, drop, i32.const x3, memory.fill, i32.const x2), plus 1024 per
;; page requested (3 pages: 3072), plus 1 per 64 bytes filled (6400 bytes: 100); in all 3182.
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "\a0")
  (func (export "alloc") (param i32) (result i32)
    i32.const 1024)
  (func (export "call") (param i32 i32) (result i32 i32)
    i32.const 3
    memory.grow
    drop
    i32.const 65536
    i32.const 7
    i32.const 6400
    memory.fill
    i32.const 16
    i32.const 1))
