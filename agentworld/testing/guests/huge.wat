;; hostile: returns 1 MiB of output (more than the default 64 KiB output limit).
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (call $w_begin)
    (call $ensure (i32.add (global.get $out_start) (i32.const 0x100000)))
    (global.get $out_start) (i32.const 0x100000)))
