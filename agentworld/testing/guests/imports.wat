;; hostile: imports a host function (wasm-1 modules import nothing).
(module
  (import "env" "host_log" (func $host_log (param i32 i32)))
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (call $host_log (local.get $ptr) (local.get $len))
    (i32.const 0) (i32.const 0)))
