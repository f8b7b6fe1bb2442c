;; metering: a loop of 10 iterations. Gas (schedule 1): alloc 1; call: the entry segment
;; (i32.const, local.set) 2, the loop body (local.get, i32.const, i32.sub, local.tee, br_if)
;; 5 per iteration = 50, the tail (i32.const, i32.const) 2; in all 55.
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "\a0")
  (func (export "alloc") (param i32) (result i32)
    i32.const 1024)
  (func (export "call") (param i32 i32) (result i32 i32)
    (local $i i32)
    i32.const 10
    local.set $i
    loop $again
      local.get $i
      i32.const 1
      i32.sub
      local.tee $i
      br_if $again
    end
    i32.const 16
    i32.const 1))
