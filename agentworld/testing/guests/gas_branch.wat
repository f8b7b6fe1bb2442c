;; metering: if/else on the input's length. Gas (schedule 1): alloc 1; call: the condition
;; (local.get, i32.const, i32.gt_u, if) 4, then the taken branch (then: 3, else: 1), then the
;; tail (drop, i32.const, i32.const) 3. Input longer than 100 bytes: 11; otherwise 9.
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "\a0")
  (func (export "alloc") (param i32) (result i32)
    i32.const 1024)
  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    local.get $len
    i32.const 100
    i32.gt_u
    if (result i32)
      i32.const 1
      i32.const 2
      i32.add
    else
      i32.const 9
    end
    drop
    i32.const 16
    i32.const 1))
