;; hostile: spins forever (stopped by fuel, or by the wall-clock watchdog).
(module
  (memory (export "memory") 1)
  ;; @include cbor.wat

  (func (export "call") (param $ptr i32) (param $len i32) (result i32 i32)
    (loop $forever (br $forever))
    unreachable))
