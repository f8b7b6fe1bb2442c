  ;; cbor.wat -- shared by the example guests: a bump allocator, a CBOR reader and a CBOR
  ;; writer. A guest includes it with the line `;; @include cbor.wat` inside its (module ...);
  ;; agentworld.testing.guests splices this text in before compiling. The guest must define
  ;; memory 0 and export it as "memory".

  ;; Memory map: 1024..2400 string literals; 4096.. the heap (input, then output).
  (global $heap (mut i32) (i32.const 4096))
  (global $mt (mut i32) (i32.const 0))     ;; major type of the last CBOR head read
  (global $arg (mut i64) (i64.const 0))    ;; argument (length, count or value) of that head
  (global $out (mut i32) (i32.const 0))    ;; next output byte
  (global $out_start (mut i32) (i32.const 0))

  ;; String literals, each in a 32-byte slot: one length byte, then the UTF-8 text.
  (global $s_ctx i32 (i32.const 1024)) (data (i32.const 1024) "\03ctx")
  (global $s_event i32 (i32.const 1056)) (data (i32.const 1056) "\05event")
  (global $s_action i32 (i32.const 1088)) (data (i32.const 1088) "\06action")
  (global $s_state i32 (i32.const 1120)) (data (i32.const 1120) "\05state")
  (global $s_stage i32 (i32.const 1152)) (data (i32.const 1152) "\05stage")
  (global $s_action_id i32 (i32.const 1184)) (data (i32.const 1184) "\09action_id")
  (global $s_data i32 (i32.const 1216)) (data (i32.const 1216) "\04data")
  (global $s_to i32 (i32.const 1248)) (data (i32.const 1248) "\02to")
  (global $s_agent_id i32 (i32.const 1280)) (data (i32.const 1280) "\08agent_id")
  (global $s_new_state i32 (i32.const 1312)) (data (i32.const 1312) "\09new_state")
  (global $s_emits i32 (i32.const 1344)) (data (i32.const 1344) "\05emits")
  (global $s_effects i32 (i32.const 1376)) (data (i32.const 1376) "\07effects")
  (global $s_kind i32 (i32.const 1408)) (data (i32.const 1408) "\04kind")
  (global $s_payload i32 (i32.const 1440)) (data (i32.const 1440) "\07payload")
  (global $s_tick_lifecycle i32 (i32.const 1472)) (data (i32.const 1472) "\0etick_lifecycle")
  (global $s_mode i32 (i32.const 1504)) (data (i32.const 1504) "\04mode")
  (global $s_ticks i32 (i32.const 1536)) (data (i32.const 1536) "\05ticks")
  (global $s_wake_after_ticks i32 (i32.const 1568)) (data (i32.const 1568) "\10wake_after_ticks")
  (global $s_suspend i32 (i32.const 1600)) (data (i32.const 1600) "\07suspend")
  (global $s_counter_ticked i32 (i32.const 1632)) (data (i32.const 1632) "\0ecounter.ticked")
  (global $s_count i32 (i32.const 1664)) (data (i32.const 1664) "\05count")
  (global $s_observer_saw i32 (i32.const 1696)) (data (i32.const 1696) "\0cobserver.saw")
  (global $s_rule_decision i32 (i32.const 1728)) (data (i32.const 1728) "\0drule.decision")
  (global $s_verdict i32 (i32.const 1760)) (data (i32.const 1760) "\07verdict")
  (global $s_allow i32 (i32.const 1792)) (data (i32.const 1792) "\05allow")
  (global $s_deny i32 (i32.const 1824)) (data (i32.const 1824) "\04deny")
  (global $s_modify i32 (i32.const 1856)) (data (i32.const 1856) "\06modify")
  (global $s_notes i32 (i32.const 1888)) (data (i32.const 1888) "\05notes")
  (global $s_override_action i32 (i32.const 1920)) (data (i32.const 1920) "\0foverride_action")
  (global $s_type i32 (i32.const 1952)) (data (i32.const 1952) "\04type")
  (global $s_move_agent i32 (i32.const 1984)) (data (i32.const 1984) "\0amove_agent")
  (global $s_deny_notes i32 (i32.const 2016)) (data (i32.const 2016) "\17cell 13,13 is forbidden")
  (global $s_modify_notes i32 (i32.const 2048)) (data (i32.const 2048) "\187,7 is redirected to 8,8")
  (global $s_empty i32 (i32.const 2080)) (data (i32.const 2080) "\00")
  (global $s_bank_pay i32 (i32.const 2112)) (data (i32.const 2112) "\08bank.pay")
  (global $s_params i32 (i32.const 2144)) (data (i32.const 2144) "\06params")
  (global $s_amount i32 (i32.const 2176)) (data (i32.const 2176) "\06amount")
  (global $s_cap_slot i32 (i32.const 2208)) (data (i32.const 2208) "\08cap_slot")
  (global $s_pay i32 (i32.const 2240)) (data (i32.const 2240) "\03pay")
  (global $s_cap_ref i32 (i32.const 2272)) (data (i32.const 2272) "\07cap_ref")
  (global $s_cap_bank i32 (i32.const 2304)) (data (i32.const 2304) "\08cap.bank")
  (global $s_origin i32 (i32.const 2336)) (data (i32.const 2336) "\06origin")
  (global $s_trace_id i32 (i32.const 2368)) (data (i32.const 2368) "\08trace_id")

  ;; ---- memory --------------------------------------------------------------------------

  ;; Grow memory until [0, end) is addressable; trap if the host refuses.
  (func $ensure (param $end i32)
    (local $pages i32)
    (local.set $pages (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then unreachable)))))

  ;; The ABI's allocator: the host calls it once per call, for the input bytes.
  (func $alloc (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (call $ensure (i32.add (local.get $p) (local.get $len)))
    (global.set $heap (i32.add (local.get $p) (local.get $len)))
    (local.get $p))

  ;; ---- reading CBOR --------------------------------------------------------------------

  (func $be16 (param $p i32) (result i32)
    (i32.or (i32.shl (i32.load8_u (local.get $p)) (i32.const 8))
            (i32.load8_u offset=1 (local.get $p))))

  (func $be32 (param $p i32) (result i32)
    (i32.or (i32.shl (call $be16 (local.get $p)) (i32.const 16))
            (call $be16 (i32.add (local.get $p) (i32.const 2)))))

  ;; Read the head of the item at $p into $mt / $arg; return the position after the head.
  (func $head (param $p i32) (result i32)
    (local $ai i32)
    (global.set $mt (i32.shr_u (i32.load8_u (local.get $p)) (i32.const 5)))
    (local.set $ai (i32.and (i32.load8_u (local.get $p)) (i32.const 31)))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (if (i32.lt_u (local.get $ai) (i32.const 24))
      (then (global.set $arg (i64.extend_i32_u (local.get $ai))) (return (local.get $p))))
    (if (i32.eq (local.get $ai) (i32.const 24))
      (then (global.set $arg (i64.load8_u (local.get $p)))
            (return (i32.add (local.get $p) (i32.const 1)))))
    (if (i32.eq (local.get $ai) (i32.const 25))
      (then (global.set $arg (i64.extend_i32_u (call $be16 (local.get $p))))
            (return (i32.add (local.get $p) (i32.const 2)))))
    (if (i32.eq (local.get $ai) (i32.const 26))
      (then (global.set $arg (i64.extend_i32_u (call $be32 (local.get $p))))
            (return (i32.add (local.get $p) (i32.const 4)))))
    (if (i32.eq (local.get $ai) (i32.const 27))
      (then (global.set $arg
              (i64.or (i64.shl (i64.extend_i32_u (call $be32 (local.get $p))) (i64.const 32))
                      (i64.extend_i32_u (call $be32 (i32.add (local.get $p) (i32.const 4))))))
            (return (i32.add (local.get $p) (i32.const 8)))))
    ;; Indefinite lengths never occur: the host encodes its input canonically.
    unreachable)

  ;; Return the position after the whole item at $p (iterative: counts pending items).
  (func $skip (param $p i32) (result i32)
    (local $pending i64)
    (local.set $pending (i64.const 1))
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $pending)))
        (local.set $pending (i64.sub (local.get $pending) (i64.const 1)))
        (local.set $p (call $head (local.get $p)))
        (if (i32.or (i32.eq (global.get $mt) (i32.const 2)) (i32.eq (global.get $mt) (i32.const 3)))
          (then (local.set $p (i32.add (local.get $p) (i32.wrap_i64 (global.get $arg))))))
        (if (i32.eq (global.get $mt) (i32.const 4))
          (then (local.set $pending (i64.add (local.get $pending) (global.get $arg)))))
        (if (i32.eq (global.get $mt) (i32.const 5))
          (then (local.set $pending
                  (i64.add (local.get $pending) (i64.shl (global.get $arg) (i64.const 1))))))
        (if (i32.eq (global.get $mt) (i32.const 6))
          (then (local.set $pending (i64.add (local.get $pending) (i64.const 1)))))
        (br $next)))
    (local.get $p))

  (func $memeq (param $a i32) (param $b i32) (param $n i32) (result i32)
    (block $differ
      (loop $next
        (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
        (br_if $differ (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; Position of the value under the text key $key (a literal slot) in the map at $p, or -1
  ;; when $p is -1, the item is not a map, or the key is absent.
  (func $map_get (param $p i32) (param $key i32) (result i32)
    (local $n i64) (local $k i32) (local $len i32)
    (if (i32.lt_s (local.get $p) (i32.const 0)) (then (return (i32.const -1))))
    (local.set $len (i32.load8_u (local.get $key)))
    (local.set $p (call $head (local.get $p)))
    (if (i32.ne (global.get $mt) (i32.const 5)) (then (return (i32.const -1))))
    (local.set $n (global.get $arg))
    (block $absent
      (loop $next
        (br_if $absent (i64.eqz (local.get $n)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (local.set $k (call $head (local.get $p)))
        (if (i32.and (i32.eq (global.get $mt) (i32.const 3))
                     (i64.eq (global.get $arg) (i64.extend_i32_u (local.get $len))))
          (then
            (if (call $memeq (local.get $k) (i32.add (local.get $key) (i32.const 1)) (local.get $len))
              (then (return (i32.add (local.get $k) (local.get $len)))))))
        (local.set $p (call $skip (call $skip (local.get $p))))
        (br $next)))
    (i32.const -1))

  ;; The unsigned integer at $p, or -1 when $p is -1 or the item there is not one.
  (func $uint_at (param $p i32) (result i64)
    (if (i32.lt_s (local.get $p) (i32.const 0)) (then (return (i64.const -1))))
    (drop (call $head (local.get $p)))
    (if (result i64) (i32.eqz (global.get $mt))
      (then (global.get $arg))
      (else (i64.const -1))))

  ;; ---- writing CBOR --------------------------------------------------------------------

  ;; Start the output right after everything allocated so far (the input).
  (func $w_begin
    (global.set $out_start (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $out (global.get $out_start)))

  (func $w_byte (param $b i32)
    (call $ensure (i32.add (global.get $out) (i32.const 1)))
    (i32.store8 (global.get $out) (local.get $b))
    (global.set $out (i32.add (global.get $out) (i32.const 1))))

  (func $w_copy (param $src i32) (param $len i32)
    (call $ensure (i32.add (global.get $out) (local.get $len)))
    (memory.copy (global.get $out) (local.get $src) (local.get $len))
    (global.set $out (i32.add (global.get $out) (local.get $len))))

  ;; The low $n bytes of $v, big-endian.
  (func $w_be (param $v i64) (param $n i32)
    (loop $next
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (call $w_byte (i32.wrap_i64
        (i64.shr_u (local.get $v) (i64.extend_i32_u (i32.shl (local.get $n) (i32.const 3))))))
      (br_if $next (local.get $n))))

  ;; A head with major type $mt and argument $v, in its shortest (canonical) form.
  (func $w_head (param $mt i32) (param $v i64)
    (local $ib i32)
    (local.set $ib (i32.shl (local.get $mt) (i32.const 5)))
    (if (i64.lt_u (local.get $v) (i64.const 24))
      (then (call $w_byte (i32.or (local.get $ib) (i32.wrap_i64 (local.get $v)))) (return)))
    (if (i64.lt_u (local.get $v) (i64.const 0x100))
      (then (call $w_byte (i32.or (local.get $ib) (i32.const 24)))
            (call $w_be (local.get $v) (i32.const 1)) (return)))
    (if (i64.lt_u (local.get $v) (i64.const 0x10000))
      (then (call $w_byte (i32.or (local.get $ib) (i32.const 25)))
            (call $w_be (local.get $v) (i32.const 2)) (return)))
    (if (i64.lt_u (local.get $v) (i64.const 0x100000000))
      (then (call $w_byte (i32.or (local.get $ib) (i32.const 26)))
            (call $w_be (local.get $v) (i32.const 4)) (return)))
    (call $w_byte (i32.or (local.get $ib) (i32.const 27)))
    (call $w_be (local.get $v) (i32.const 8)))

  (func $w_map (param $n i32) (call $w_head (i32.const 5) (i64.extend_i32_u (local.get $n))))
  (func $w_array (param $n i32) (call $w_head (i32.const 4) (i64.extend_i32_u (local.get $n))))
  (func $w_uint (param $v i64) (call $w_head (i32.const 0) (local.get $v)))
  (func $w_null (call $w_byte (i32.const 0xf6)))

  ;; A text string from a literal slot.
  (func $w_str (param $slot i32)
    (call $w_head (i32.const 3) (i64.load8_u (local.get $slot)))
    (call $w_copy (i32.add (local.get $slot) (i32.const 1)) (i32.load8_u (local.get $slot))))

  ;; The item at $p copied verbatim, or null when $p is -1.
  (func $w_item_or_null (param $p i32)
    (if (i32.lt_s (local.get $p) (i32.const 0)) (then (call $w_null) (return)))
    (call $w_copy (local.get $p) (i32.sub (call $skip (local.get $p)) (local.get $p))))

  ;; ---- results in the three entrypoint shapes ------------------------------------------

  (func $out_len (result i32) (i32.sub (global.get $out) (global.get $out_start)))

  ;; (i32, i32) -> i64: out_len << 32 | out_ptr
  (func $out_packed (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (call $out_len)) (i64.const 32))
            (i64.extend_i32_u (global.get $out_start))))

  ;; (ret_area, i32, i32) -> (): two little-endian i32 (ptr, len) at ret_area
  (func $out_store (param $ret_area i32)
    (i32.store (local.get $ret_area) (global.get $out_start))
    (i32.store offset=4 (local.get $ret_area) (call $out_len)))

  ;; ---- reducer state: an 8-byte little-endian counter ----------------------------------

  ;; The counter in the input's state (empty state = 0), plus one.
  (func $next_count (param $in i32) (result i64)
    (local $p i32)
    (local.set $p (call $map_get (local.get $in) (global.get $s_state)))
    (if (i32.lt_s (local.get $p) (i32.const 0)) (then (return (i64.const 1))))
    (local.set $p (call $head (local.get $p)))
    (if (i32.ne (global.get $mt) (i32.const 2)) (then unreachable))
    (if (i64.eqz (global.get $arg)) (then (return (i64.const 1))))
    (if (i64.ne (global.get $arg) (i64.const 8)) (then unreachable))
    (i64.add (i64.load (local.get $p)) (i64.const 1)))

  ;; The map entry "new_state": h'<count as 8 bytes little-endian>'.
  (func $w_state (param $count i64)
    (call $w_str (global.get $s_new_state))
    (call $w_head (i32.const 2) (i64.const 8))
    (call $ensure (i32.add (global.get $out) (i32.const 8)))
    (i64.store (global.get $out) (local.get $count))
    (global.set $out (i32.add (global.get $out) (i32.const 8))))
