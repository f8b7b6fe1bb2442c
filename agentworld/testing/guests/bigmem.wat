;; hostile: declares 64 MiB of initial memory (more than the default 16 MiB call limit).
(module
  (memory (export "memory") 1024)
  ;; @include cbor.wat

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (i32.const 0) (i32.const 0)))
