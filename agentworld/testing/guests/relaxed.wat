;; determinism: relaxed SIMD, whose results depend on the CPU (refused at deploy).
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (v128.store (i32.const 0)
      (i32x4.relaxed_trunc_f32x4_s (v128.const f32x4 nan nan nan nan)))
    (call $w_begin)
    (call $w_map (i32.const 0))
    (global.get $out_start) (call $out_len)))
