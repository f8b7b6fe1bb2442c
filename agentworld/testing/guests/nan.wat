;; determinism: NaN-producing float operations. A reducer whose new_state is 32 bytes: the bits
;; of f32.div(0, 0), f64.sqrt(-1), f32x4.div(0, 0) and f32.add(a NaN with a payload, 1), each
;; little-endian. With NaN canonicalization every one is the canonical NaN.
(module
  (memory (export "memory") 1)
  ;; {"new_state": h'<32 bytes>'} at offset 63: its 13-byte head, then the bytes at 76
  (data (i32.const 63) "\a1\69new_state\58\20")
  (func (export "alloc") (param i32) (result i32)
    i32.const 1024)
  (func (export "reduce") (param i32 i32) (result i32 i32)
    (f32.store (i32.const 76) (f32.div (f32.const 0) (f32.const 0)))
    (f64.store (i32.const 80) (f64.sqrt (f64.const -1)))
    (v128.store (i32.const 88) (f32x4.div (v128.const f32x4 0 0 0 0) (v128.const f32x4 0 0 0 0)))
    (f32.store (i32.const 104) (f32.add (f32.const nan:0x200001) (f32.const 1)))
    i32.const 63
    i32.const 45))
