;; tick_counter: a complete guest of the ABI wasm-1, written by hand with no helper library.
;; A reducer. Its state is a count: 8 bytes, little-endian (an empty state counts as 0). Every
;; call adds one, returns the new state and emits tick_counter.counted {count}.
(module
  ;; The module imports nothing. It exports one 32-bit memory: page 0 holds the constants and
  ;; the output, the input goes from 65536 on (alloc grows the memory when an input needs it).
  (memory (export "memory") 2)

  (global $input i32 (i32.const 65536))
  (global $end (mut i32) (i32.const 0))    ;; one past the input's last byte
  (global $major (mut i32) (i32.const 0))  ;; set by $head: the item's major type (0..7)
  (global $arg (mut i64) (i64.const 0))    ;; set by $head: its argument (a length, a value)

  ;; The output, a CBOR map, as a template; each call fills in the two counts (16 bytes):
  ;;   a2                            map of 2 entries
  ;;   69 "new_state" 48 <8 bytes>    new_state: bytes(8), the count, little-endian (at 268)
  ;;   65 "emits" 81                  emits: an array of 1
  ;;   a2                             {kind, payload}
  ;;   64 "kind" 74 "tick_counter.counted"
  ;;   67 "payload" a1 65 "count" 1b <8 bytes>   {count: the count as a 64-bit unsigned
  ;;                                              integer, big-endian, at 326}
  (data (i32.const 256) "\a2\69new_state\48\00\00\00\00\00\00\00\00\65emits\81\a2\64kind"
    "\74tick_counter.counted\67payload\a1\65count\1b\00\00\00\00\00\00\00\00")
  (global $output i32 (i32.const 256))
  (global $output_len i32 (i32.const 78))
  (data (i32.const 128) "\65state")         ;; the key "state", encoded: text(5) "state"

  ;; alloc(len): where the host writes the call's input (called once per call).
  (func (export "alloc") (param $len i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.wrap_i64 (i64.shr_u
      (i64.add (i64.extend_i32_u (local.get $len)) (i64.const 131071)) (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        ;; Past the manifest's memory limit, memory.grow returns -1: fail the call.
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then unreachable))))
    (global.get $input))

  ;; Trap unless n bytes from p lie inside the input.
  (func $need (param $p i32) (param $n i32)
    (if (i64.gt_u (i64.add (i64.extend_i32_u (local.get $p)) (i64.extend_i32_u (local.get $n)))
                  (i64.extend_i32_u (global.get $end)))
      (then unreachable)))

  ;; Read the head of the CBOR item at p into $major and $arg; return where its content starts.
  ;; The host encodes canonically: no indefinite lengths.
  (func $head (param $p i32) (result i32)
    (local $byte i32) (local $info i32) (local $n i32)
    (call $need (local.get $p) (i32.const 1))
    (local.set $byte (i32.load8_u (local.get $p)))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (global.set $major (i32.shr_u (local.get $byte) (i32.const 5)))
    (local.set $info (i32.and (local.get $byte) (i32.const 31)))
    (if (i32.lt_u (local.get $info) (i32.const 24))
      (then (global.set $arg (i64.extend_i32_u (local.get $info))) (return (local.get $p))))
    (if (i32.gt_u (local.get $info) (i32.const 27)) (then unreachable))
    ;; 24..27: the argument follows in 1, 2, 4 or 8 bytes, big-endian (floats too).
    (local.set $n (i32.shl (i32.const 1) (i32.sub (local.get $info) (i32.const 24))))
    (call $need (local.get $p) (local.get $n))
    (global.set $arg (i64.const 0))
    (loop $bytes
      (global.set $arg (i64.or (i64.shl (global.get $arg) (i64.const 8))
                               (i64.load8_u (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $bytes (local.get $n)))
    (local.get $p))

  ;; Skip the whole CBOR item at p; return where the next one starts.
  (func $skip (param $p i32) (result i32)
    (local $items i64)
    (local.set $p (call $head (local.get $p)))
    (if (i32.or (i32.le_u (global.get $major) (i32.const 1))   ;; integers
                (i32.eq (global.get $major) (i32.const 7)))    ;; floats, true, false, null
      (then (return (local.get $p))))
    (if (i32.le_u (global.get $major) (i32.const 3))            ;; byte and text strings
      (then
        (if (i64.gt_u (global.get $arg) (i64.const 0x7fffffff)) (then unreachable))
        (call $need (local.get $p) (i32.wrap_i64 (global.get $arg)))
        (return (i32.add (local.get $p) (i32.wrap_i64 (global.get $arg))))))
    (if (i32.eq (global.get $major) (i32.const 6))              ;; a tag: skip what it tags
      (then (return (call $skip (local.get $p)))))
    ;; An array holds $arg items, a map twice as many (keys and values).
    (local.set $items (global.get $arg))
    (if (i32.eq (global.get $major) (i32.const 5))
      (then (local.set $items (i64.shl (local.get $items) (i64.const 1)))))
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $items)))
        (local.set $p (call $skip (local.get $p)))
        (local.set $items (i64.sub (local.get $items) (i64.const 1)))
        (br $next)))
    (local.get $p))

  ;; True when the item at p is the text "state".
  (func $is_state (param $p i32) (result i32)
    (if (i64.gt_u (i64.add (i64.extend_i32_u (local.get $p)) (i64.const 6))
                  (i64.extend_i32_u (global.get $end)))
      (then (return (i32.const 0))))
    (i32.and (i32.eq (i32.load (local.get $p)) (i32.load (i32.const 128)))
             (i32.eq (i32.load16_u (i32.add (local.get $p) (i32.const 4)))
                     (i32.load16_u (i32.const 132)))))

  ;; reduce(ptr, len) -> (len << 32 | output pointer): the input is one CBOR map; find its
  ;; "state" (bytes), skip every other entry (ctx, event, action, keys a later host may add).
  (func (export "reduce") (param $ptr i32) (param $len i32) (result i64)
    (local $p i32) (local $entries i64) (local $count i64) (local $i i32)
    (global.set $end (i32.add (local.get $ptr) (local.get $len)))
    (local.set $p (call $head (local.get $ptr)))
    (if (i32.ne (global.get $major) (i32.const 5)) (then unreachable))
    (local.set $entries (global.get $arg))
    (block $found
      (loop $entry
        (br_if $found (i64.eqz (local.get $entries)))
        (local.set $entries (i64.sub (local.get $entries) (i64.const 1)))
        (if (call $is_state (local.get $p))
          (then
            (local.set $p (call $head (i32.add (local.get $p) (i32.const 6))))
            (if (i32.ne (global.get $major) (i32.const 2)) (then unreachable))
            (if (i64.eq (global.get $arg) (i64.const 8))
              (then
                (call $need (local.get $p) (i32.const 8))
                (local.set $count (i64.load (local.get $p))))
              (else (if (i64.ne (global.get $arg) (i64.const 0)) (then unreachable))))
            (br $found)))
        (local.set $p (call $skip (call $skip (local.get $p))))
        (br $entry)))
    (local.set $count (i64.add (local.get $count) (i64.const 1)))
    (i64.store (i32.const 268) (local.get $count))
    ;; The payload's count, big-endian: byte i is bits 56 - 8i.
    (loop $byte
      (i64.store8 (i32.add (i32.const 326) (local.get $i))
                  (i64.shr_u (local.get $count)
                             (i64.extend_i32_u (i32.sub (i32.const 56)
                                                        (i32.shl (local.get $i) (i32.const 3))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $byte (i32.lt_u (local.get $i) (i32.const 8))))
    (i64.or (i64.shl (i64.extend_i32_u (global.get $output_len)) (i64.const 32))
            (i64.extend_i32_u (global.get $output)))))
