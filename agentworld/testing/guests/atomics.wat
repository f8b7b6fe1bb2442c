;; determinism: a shared memory and an atomic instruction (threads; refused at deploy).
(module
  (memory (export "memory") 1 1 shared)
  (func (export "alloc") (param i32) (result i32)
    i32.const 1024)
  (func (export "call") (param i32 i32) (result i32 i32)
    (drop (i32.atomic.load (i32.const 0)))
    i32.const 16
    i32.const 1))
