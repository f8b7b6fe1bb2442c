;; hostile: exports memory and its entrypoint, but no `alloc`.
(module
  (memory (export "memory") 1)

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (i32.const 0) (i32.const 0)))
