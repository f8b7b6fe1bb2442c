;; metering: recursion as deep as the input is long (schedule 2's stack limit decides how deep
;; it may go). Stack units (schedule 2: 4 per frame, plus parameters, locals, the operand
;; stack's highest point and the values computed): $down 4 + 1 + 0 + 2 + 2 = 9, `call`
;; 4 + 2 + 0 + 2 + 2 = 10. With the budget of 50 000, `call` leaves 49 990: 5554 frames of
;; $down fit (49 986 units), so an input of 5553 bytes (frames for n = 5553 down to 0) works
;; and one of 5554 bytes ends in `trap: call stack exhausted`.
;; Gas (schedule 1 and 2): alloc 1; `call` 5 (its `call` costs 2); $down 2 when n = 0, else 7
;; (`local.get`, `if`, then `local.get`, `i32.const`, `i32.sub`, `call`): 8 + 7n in all, 38 879
;; for n = 5553. For n = 5554 the trap comes after 1 + 5 + 7 * 5554 = 38 884 gas.
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "\a0")
  (func (export "alloc") (param i32) (result i32)
    i32.const 1024)
  (func $down (param $n i32)
    local.get $n
    if
      local.get $n
      i32.const 1
      i32.sub
      call $down
    end)
  (func (export "call") (param i32 i32) (result i32 i32)
    local.get 1
    call $down
    i32.const 16
    i32.const 1))
