//! Write agentworld `wasm-1` modules in Rust: `no_std`, no dependencies, no allocator needed.
//!
//! ```ignore
//! #![no_std]
//! use agentworld_guest::{Input, Output};
//!
//! fn tick(input: &Input, out: &mut Output) {
//!     let count = input.state_u64() + 1;
//!     out.new_state(8).copy_from_slice(&count.to_le_bytes());
//!     out.emit("counter.ticked").map(1).text("count").uint(count);
//! }
//! agentworld_guest::reduce!(tick);
//! ```
//!
//! The crate exports `alloc`, the ABI's allocator (a bump allocator reset when the host
//! allocates a call's input), and a panic handler that traps. [`reduce!`], [`call!`]
//! and [`migrate!`] export entry points. Input is read in place through [`Item`]s over the
//! input bytes; output is written with [`Output`] and [`Writer`]. Malformed input (truncated,
//! lengths past the end, indefinite lengths, reserved bytes) and exhausted memory end the call
//! with a trap (`unreachable`); every read is bounds-checked.
#![no_std]

#[cfg(not(target_arch = "wasm32"))]
compile_error!("agentworld-guest builds wasm32 modules: use --target wasm32-unknown-unknown");

use core::arch::wasm32;

/// Ends the call with a trap (the host records it as the failure code `trap`).
pub fn trap() -> ! {
    wasm32::unreachable()
}

#[inline(always)]
fn check(condition: bool) {
    if !condition {
        trap()
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    trap()
}

// ---- memory: a bump allocator ------------------------------------------------------------

extern "C" {
    static __heap_base: u8;
}

// A module is single-threaded: these are only touched from the one thread of a call.
static mut TOP: usize = 0;

fn top() -> usize {
    unsafe {
        if TOP == 0 {
            TOP = &__heap_base as *const u8 as usize;
        }
        TOP
    }
}

/// Moves the heap top to `end`, growing memory as needed; traps when the host refuses.
fn set_top(end: usize) {
    let have = (wasm32::memory_size(0) as u64) << 16;
    if end as u64 > have {
        let pages = ((end as u64 - have + 65535) >> 16) as usize;
        check(wasm32::memory_grow(0, pages) != usize::MAX);
    }
    unsafe { TOP = end }
}

fn bump(len: usize) -> *mut u8 {
    let start = top().checked_add(7).unwrap_or_else(|| trap()) & !7;
    set_top(start.checked_add(len).unwrap_or_else(|| trap()));
    start as *mut u8
}

/// `len` bytes, 8-byte aligned and zeroed, valid until the call returns (there is no free).
pub fn alloc_bytes(len: usize) -> &'static mut [u8] {
    let bytes = unsafe { core::slice::from_raw_parts_mut(bump(len), len) };
    bytes.fill(0);
    bytes
}

/// The ABI's allocator. The host calls it once per call, for the input, before the entry
/// point: nothing of an earlier call on the same instance (a warm one) is alive then, even if
/// it trapped, so the heap starts over.
#[doc(hidden)]
#[export_name = "alloc"]
pub extern "C" fn host_alloc(len: i32) -> i32 {
    unsafe { TOP = 0 }
    check(len >= 0);
    bump(len as usize) as i32 // the host writes every byte: no need to zero them
}

// ---- reading CBOR ------------------------------------------------------------------------

/// What an [`Item`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Bytes,
    Text,
    Array,
    Map,
    Bool,
    Null,
    Float,
    Other,
}

/// One decoded CBOR head, as [`Tokens`] yields it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Token<'a> {
    /// A non-negative integer.
    UInt(u64),
    /// A negative integer `-1 - n`, holding `n`.
    NegInt(u64),
    Bytes(&'a [u8]),
    Text(&'a str),
    /// An array of this many items (they follow).
    Array(u64),
    /// A map of this many entries (key, value pairs follow).
    Map(u64),
    /// A tag (its item follows); the host never sends one.
    Tag(u64),
    Bool(bool),
    Null,
    Float(f64),
    /// Any other simple value.
    Simple(u8),
}

#[derive(Clone, Copy)]
struct Head {
    major: u8,
    info: u8,
    arg: u64,
    size: usize,
}

#[inline(always)]
fn head(buf: &[u8]) -> Head {
    let first = *buf.first().unwrap_or_else(|| trap());
    let (major, info) = (first >> 5, first & 31);
    if info < 24 {
        return Head { major, info, arg: info as u64, size: 1 };
    }
    // 28..30 are reserved; 31 (indefinite length) never occurs in canonical input.
    check(info <= 27);
    let n = 1usize << (info - 24);
    let bytes = buf.get(1..1 + n).unwrap_or_else(|| trap());
    let arg = bytes.iter().fold(0u64, |acc, b| acc << 8 | *b as u64);
    Head { major, info, arg, size: 1 + n }
}

/// The encoded size of the item at the start of `buf`. Iterative (a count of pending items),
/// so nesting depth costs no stack; every pending item needs a byte, which bounds the count.
#[inline(never)]
fn skip(buf: &[u8]) -> usize {
    let mut pos = 0usize;
    let mut pending = 1u64;
    while pending > 0 {
        pending -= 1;
        let h = head(&buf[pos..]);
        pos += h.size;
        let left = (buf.len() - pos) as u64;
        check(pending <= left);
        match h.major {
            2 | 3 => {
                check(h.arg <= left);
                pos += h.arg as usize;
            }
            4 | 5 | 6 => {
                let mut items = if h.major == 6 { 1 } else { h.arg };
                check(items <= left);
                if h.major == 5 {
                    items *= 2;
                }
                check(items <= left - pending);
                pending += items;
            }
            _ => {}
        }
    }
    pos
}

fn half_to_f64(bits: u64) -> f64 {
    let sign = (bits >> 15) << 63;
    let (exp, man) = ((bits >> 10) & 31, bits & 1023);
    match exp {
        0 => (if sign != 0 { -1.0 } else { 1.0 }) * man as f64 / 16_777_216.0,
        31 => f64::from_bits(sign | 0x7ff << 52 | man << 42),
        _ => f64::from_bits(sign | (exp + 1008) << 52 | man << 42),
    }
}

/// The tokens of a CBOR byte stream in order: the low-level reader under [`Item`].
pub struct Tokens<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Tokens<'a> {
    /// Tokens of `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Tokens<'a> {
        Tokens { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let h = head(rest);
        self.pos += h.size;
        let body = |len: u64| -> &'a [u8] {
            self.buf.get(self.pos..).and_then(|r| r.get(..len as usize)).unwrap_or_else(|| trap())
        };
        let token = match h.major {
            0 => Token::UInt(h.arg),
            1 => Token::NegInt(h.arg),
            2 => Token::Bytes(body(h.arg)),
            3 => Token::Text(core::str::from_utf8(body(h.arg)).unwrap_or_else(|_| trap())),
            4 => Token::Array(h.arg),
            5 => Token::Map(h.arg),
            6 => Token::Tag(h.arg),
            _ => match h.info {
                20 | 21 => Token::Bool(h.info == 21),
                22 => Token::Null,
                25 => Token::Float(half_to_f64(h.arg)),
                26 => Token::Float(f32::from_bits(h.arg as u32) as f64),
                27 => Token::Float(f64::from_bits(h.arg)),
                _ => Token::Simple(if h.info == 24 { h.arg as u8 } else { h.info }),
            },
        };
        if let Token::Bytes(b) = token {
            self.pos += b.len();
        } else if let Token::Text(t) = token {
            self.pos += t.len();
        }
        Some(token)
    }
}

/// One CBOR item of the input, read in place. Every read is bounds-checked against the end of
/// the input; accessors return `None` when the item is not of the asked type.
#[derive(Clone, Copy)]
pub struct Item<'a> {
    buf: &'a [u8], // from the item's first byte to the end of the input
}

impl<'a> Item<'a> {
    /// The item at the start of `buf` (nothing is checked until it is read).
    pub fn new(buf: &'a [u8]) -> Item<'a> {
        Item { buf }
    }

    fn head(self) -> Head {
        head(self.buf)
    }

    /// What the item holds.
    pub fn kind(self) -> Kind {
        let h = self.head();
        match (h.major, h.info) {
            (0 | 1, _) => Kind::Int,
            (2, _) => Kind::Bytes,
            (3, _) => Kind::Text,
            (4, _) => Kind::Array,
            (5, _) => Kind::Map,
            (7, 20 | 21) => Kind::Bool,
            (7, 22) => Kind::Null,
            (7, 25..=27) => Kind::Float,
            _ => Kind::Other,
        }
    }

    /// The item's own encoded bytes (for copying it verbatim or comparing).
    pub fn raw(self) -> &'a [u8] {
        &self.buf[..skip(self.buf)]
    }

    /// The first token of the item.
    pub fn token(self) -> Token<'a> {
        Tokens::new(self.buf).next().unwrap_or_else(|| trap())
    }

    /// Entries of a map or elements of an array (0 for anything else).
    pub fn count(self) -> usize {
        match self.kind() {
            Kind::Array | Kind::Map => self.head().arg as usize,
            _ => 0,
        }
    }

    /// The map's entries as (key, value); empty unless the item is a map.
    pub fn entries(self) -> Entries<'a> {
        let h = self.head();
        let left = if h.major == 5 { h.arg } else { 0 };
        Entries { buf: &self.buf[h.size..], left }
    }

    /// The array's elements; empty unless the item is an array.
    pub fn items(self) -> Items<'a> {
        let h = self.head();
        let left = if h.major == 4 { h.arg } else { 0 };
        Items { buf: &self.buf[h.size..], left }
    }

    /// The value under text key `key`, if the item is a map that has it.
    pub fn get(self, key: &str) -> Option<Item<'a>> {
        self.entries().find(|(k, _)| k.as_bytes_of(3) == Some(key.as_bytes())).map(|(_, v)| v)
    }

    /// Element `index`, if the item is an array that long.
    pub fn at(self, index: usize) -> Option<Item<'a>> {
        self.items().nth(index)
    }

    fn as_bytes_of(self, major: u8) -> Option<&'a [u8]> {
        let h = self.head();
        if h.major != major {
            return None;
        }
        Some(self.buf.get(h.size..).and_then(|r| r.get(..h.arg as usize)).unwrap_or_else(|| trap()))
    }

    /// A byte string.
    pub fn as_bytes(self) -> Option<&'a [u8]> {
        self.as_bytes_of(2)
    }

    /// A text string (invalid UTF-8 traps).
    pub fn as_str(self) -> Option<&'a str> {
        self.as_bytes_of(3).map(|b| core::str::from_utf8(b).unwrap_or_else(|_| trap()))
    }

    /// An integer that fits `i64`.
    pub fn as_i64(self) -> Option<i64> {
        let h = self.head();
        match h.major {
            0 if h.arg <= i64::MAX as u64 => Some(h.arg as i64),
            1 if h.arg <= i64::MAX as u64 => Some(-1 - h.arg as i64),
            _ => None,
        }
    }

    /// A non-negative integer (all of `u64`).
    pub fn as_u64(self) -> Option<u64> {
        let h = self.head();
        if h.major == 0 {
            Some(h.arg)
        } else {
            None
        }
    }

    /// A number (a half, single or double float, or an integer) as `f64`.
    pub fn as_f64(self) -> Option<f64> {
        match self.token() {
            Token::Float(v) => Some(v),
            Token::UInt(v) => Some(v as f64),
            Token::NegInt(v) => Some(-1.0 - v as f64),
            _ => None,
        }
    }

    /// A boolean.
    pub fn as_bool(self) -> Option<bool> {
        match self.token() {
            Token::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// Is the item null?
    pub fn is_null(self) -> bool {
        self.kind() == Kind::Null
    }
}

/// The entries of a map, from [`Item::entries`].
pub struct Entries<'a> {
    buf: &'a [u8],
    left: u64,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (Item<'a>, Item<'a>);

    fn next(&mut self) -> Option<(Item<'a>, Item<'a>)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let key = Item::new(self.buf);
        let value = Item::new(&self.buf[skip(self.buf)..]);
        self.buf = &value.buf[skip(value.buf)..];
        Some((key, value))
    }
}

/// The elements of an array, from [`Item::items`].
pub struct Items<'a> {
    buf: &'a [u8],
    left: u64,
}

impl<'a> Iterator for Items<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let item = Item::new(self.buf);
        self.buf = &self.buf[skip(self.buf)..];
        Some(item)
    }
}

// ---- writing CBOR ------------------------------------------------------------------------

/// A growable CBOR byte buffer on the module's heap. Each method writes one head or item and
/// returns the writer, so a value reads as a chain: `w.map(1).text("count").uint(n)`.
pub struct Writer {
    ptr: *mut u8,
    len: usize,
    cap: usize,
}

impl Default for Writer {
    fn default() -> Writer {
        Writer::new()
    }
}

impl Writer {
    /// An empty writer.
    pub const fn new() -> Writer {
        Writer { ptr: core::ptr::null_mut(), len: 0, cap: 0 }
    }

    #[inline(never)]
    fn grow(&mut self, n: usize) {
        let want = self.len.checked_add(n).unwrap_or_else(|| trap());
        let cap = want.max(self.cap.saturating_mul(2)).max(64);
        if !self.ptr.is_null() && self.ptr as usize + self.cap == top() {
            // The last allocation: grow in place.
            set_top((self.ptr as usize).checked_add(cap).unwrap_or_else(|| trap()));
        } else {
            let fresh = bump(cap);
            unsafe { core::ptr::copy_nonoverlapping(self.ptr, fresh, self.len) };
            self.ptr = fresh;
        }
        self.cap = cap;
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() {
            return &[];
        }
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Bytes appended as they are (one or more complete items).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Writer {
        if bytes.len() > self.cap - self.len {
            self.grow(bytes.len());
        }
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(self.len), bytes.len())
        };
        self.len += bytes.len();
        self
    }

    fn head(&mut self, major: u8, arg: u64) -> &mut Writer {
        let major = major << 5;
        if arg < 24 {
            return self.raw(&[major | arg as u8]);
        }
        let be = arg.to_be_bytes();
        match arg {
            0..=0xff => self.raw(&[major | 24, arg as u8]),
            0x100..=0xffff => self.raw(&[major | 25, be[6], be[7]]),
            0x1_0000..=0xffff_ffff => self.raw(&[major | 26, be[4], be[5], be[6], be[7]]),
            _ => self.raw(&[major | 27]).raw(&be),
        }
    }

    /// A non-negative integer.
    pub fn uint(&mut self, v: u64) -> &mut Writer {
        self.head(0, v)
    }

    /// An integer.
    pub fn int(&mut self, v: i64) -> &mut Writer {
        if v >= 0 {
            self.head(0, v as u64)
        } else {
            self.head(1, (-1 - v) as u64)
        }
    }

    /// A byte string.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Writer {
        self.head(2, v.len() as u64).raw(v)
    }

    /// A text string.
    pub fn text(&mut self, v: &str) -> &mut Writer {
        self.head(3, v.len() as u64).raw(v.as_bytes())
    }

    /// An array of `n` items: write them next.
    pub fn array(&mut self, n: usize) -> &mut Writer {
        self.head(4, n as u64)
    }

    /// A map of `n` entries: write each key, then its value, next.
    pub fn map(&mut self, n: usize) -> &mut Writer {
        self.head(5, n as u64)
    }

    /// A boolean.
    pub fn bool(&mut self, v: bool) -> &mut Writer {
        self.raw(&[if v { 0xf5 } else { 0xf4 }])
    }

    /// Null.
    pub fn null(&mut self) -> &mut Writer {
        self.raw(&[0xf6])
    }

    /// A finite float (NaN and infinities are not JSON: the host refuses them).
    pub fn float(&mut self, v: f64) -> &mut Writer {
        self.raw(&[0xfb]).raw(&v.to_bits().to_be_bytes())
    }

    /// An input item copied verbatim.
    pub fn item(&mut self, item: Item) -> &mut Writer {
        self.raw(item.raw())
    }

    /// An input item copied verbatim, or null when absent.
    pub fn item_or_null(&mut self, item: Option<Item>) -> &mut Writer {
        match item {
            Some(item) => self.item(item),
            None => self.null(),
        }
    }
}

// ---- the call: input and output ----------------------------------------------------------

/// One call's input map, decoded.
pub struct Input<'a> {
    /// The whole input map.
    pub root: Item<'a>,
    /// `v`, `module_id`, `instance_id`, `module_version`, `trace_id`, `stage`, `time`,
    /// `origin {kind, id}`, `install_target`, `manifest_hash`, `world_config_hash`.
    pub ctx: Item<'a>,
    /// The routed event, if any.
    pub event: Option<Item<'a>>,
    /// The routed action envelope `{action_id, type, data}`, if any.
    pub action: Option<Item<'a>>,
    /// The instance's state (reducers and migrate; empty otherwise).
    pub state: &'a [u8],
    /// The version migrated from (migrate only).
    pub from_version: Option<&'a str>,
    /// The version migrated to (migrate only).
    pub to_version: Option<&'a str>,
    /// `ctx.stage`: `tick`, `pre_action`, `post_action`, `post_event` or `migrate`.
    pub stage: &'a str,
    /// `ctx.time`.
    pub time: i64,
}

impl<'a> Input<'a> {
    /// The state as a little-endian `u64` (empty state: 0; any other length traps).
    pub fn state_u64(&self) -> u64 {
        match self.state.len() {
            0 => 0,
            8 => u64::from_le_bytes(self.state.try_into().unwrap_or_else(|_| trap())),
            _ => trap(),
        }
    }
}

#[derive(Clone, Copy)]
enum Tick {
    Keep,
    WakeAfter(u64),
    Suspend,
}

/// Collects one call's output; encoded when the entry point returns.
pub struct Output {
    state: Option<(*const u8, usize)>,
    emits: Writer,
    n_emits: usize,
    effects: Writer,
    n_effects: usize,
    tick: Tick,
}

impl Output {
    fn new() -> Output {
        Output {
            state: None,
            emits: Writer::new(),
            n_emits: 0,
            effects: Writer::new(),
            n_effects: 0,
            tick: Tick::Keep,
        }
    }

    /// The new state: `len` zeroed bytes to fill in (reducers and migrate only).
    pub fn new_state(&mut self, len: usize) -> &mut [u8] {
        let bytes = alloc_bytes(len);
        self.state = Some((bytes.as_ptr(), len));
        bytes
    }

    /// The new state, copied from `data`.
    pub fn set_state(&mut self, data: &[u8]) {
        self.new_state(data.len()).copy_from_slice(data);
    }

    /// Emits an event of `kind`; write its payload (exactly one item) to the returned writer.
    pub fn emit(&mut self, kind: &str) -> &mut Writer {
        self.n_emits += 1;
        self.emits.map(2).text("kind").text(kind).text("payload")
    }

    fn effect(&mut self, kind: &str, bind: &str, cap: &str) -> &mut Writer {
        self.n_effects += 1;
        self.effects.map(3).text("kind").text(kind).text(bind).text(cap).text("params")
    }

    /// Requests an effect through the manifest's cap slot `slot`; write its params (one item).
    pub fn effect_slot(&mut self, kind: &str, slot: &str) -> &mut Writer {
        self.effect(kind, "cap_slot", slot)
    }

    /// Requests an effect under capability `cap_ref`; write its params (one item).
    pub fn effect_ref(&mut self, kind: &str, cap_ref: &str) -> &mut Writer {
        self.effect(kind, "cap_ref", cap_ref)
    }

    /// Tick only: the next tick in `ticks` (>= 1) ticks instead of the subscription's cadence.
    pub fn wake_after_ticks(&mut self, ticks: u64) {
        self.tick = Tick::WakeAfter(ticks);
    }

    /// Tick only: no more ticks until the instance is woken again.
    pub fn suspend(&mut self) {
        self.tick = Tick::Suspend;
    }

    fn decide(&mut self, input: &Input, verdict: &str, notes: &str, entries: usize) -> &mut Writer {
        let action_id = input.action.and_then(|action| action.get("action_id"));
        self.emit("rule.decision")
            .map(entries)
            .text("action_id")
            .item_or_null(action_id)
            .text("verdict")
            .text(verdict)
            .text("notes")
            .text(notes)
    }

    /// pre_action only: lets the routed action through.
    pub fn allow(&mut self, input: &Input, notes: &str) {
        self.decide(input, "allow", notes, 3);
    }

    /// pre_action only: refuses the routed action.
    pub fn deny(&mut self, input: &Input, notes: &str) {
        self.decide(input, "deny", notes, 3);
    }

    /// pre_action only: replaces the routed action; write the new action `{type, data}`.
    pub fn modify(&mut self, input: &Input, notes: &str) -> &mut Writer {
        self.decide(input, "modify", notes, 4).text("override_action")
    }

    fn finish(&self) -> i64 {
        let mut w = Writer::new();
        let entries = 2 + self.state.is_some() as usize + !matches!(self.tick, Tick::Keep) as usize;
        w.map(entries);
        if let Some((ptr, len)) = self.state {
            w.text("new_state").bytes(unsafe { core::slice::from_raw_parts(ptr, len) });
        }
        w.text("emits").array(self.n_emits).raw(self.emits.as_slice());
        w.text("effects").array(self.n_effects).raw(self.effects.as_slice());
        match self.tick {
            Tick::Keep => {}
            Tick::WakeAfter(n) => {
                w.text("tick_lifecycle").map(2).text("mode").text("wake_after_ticks");
                w.text("ticks").uint(n);
            }
            Tick::Suspend => {
                w.text("tick_lifecycle").map(1).text("mode").text("suspend");
            }
        }
        ((w.len as u64) << 32 | w.ptr as u32 as u64) as i64
    }
}

fn text_of(item: Option<Item<'_>>) -> Option<&str> {
    item.map(|i| i.as_str().unwrap_or_else(|| trap()))
}

#[doc(hidden)]
pub fn run(ptr: i32, len: i32, body: fn(&Input, &mut Output)) -> i64 {
    let memory = (wasm32::memory_size(0) as u64) << 16;
    check(ptr >= 0 && len >= 0 && ptr as u64 + len as u64 <= memory);
    let buf = unsafe { core::slice::from_raw_parts(ptr as usize as *const u8, len as usize) };
    let root = Item::new(buf);
    check(root.kind() == Kind::Map);
    let (mut ctx, mut event, mut action, mut state) = (None, None, None, None);
    let (mut from_version, mut to_version) = (None, None);
    // One pass over the input's entries, skipping (and so checking) each one: the input is
    // exactly one well-formed map, and a deep event is skipped once, not once per key.
    let mut entries = root.entries();
    for (key, value) in &mut entries {
        match key.as_bytes_of(3) {
            Some(b"ctx") => ctx = Some(value),
            Some(b"event") => event = Some(value),
            Some(b"action") => action = Some(value),
            Some(b"state") => state = Some(value),
            Some(b"from_version") => from_version = Some(value),
            Some(b"to_version") => to_version = Some(value),
            _ => {}
        }
    }
    check(entries.buf.is_empty());
    let ctx = ctx.filter(|ctx| ctx.kind() == Kind::Map).unwrap_or_else(|| trap());
    let input = Input {
        root,
        ctx,
        event,
        action,
        state: state.map_or(&[][..], |s| s.as_bytes().unwrap_or_else(|| trap())),
        from_version: text_of(from_version),
        to_version: text_of(to_version),
        stage: text_of(ctx.get("stage")).unwrap_or(""),
        time: ctx.get("time").and_then(|t| t.as_i64()).unwrap_or(0),
    };
    let mut out = Output::new();
    body(&input, &mut out);
    out.finish()
}

/// Exports `reduce`, the entry point of a reducer: `reduce!(my_fn)` with
/// `fn my_fn(input: &Input, out: &mut Output)`.
#[macro_export]
macro_rules! reduce {
    ($body:path) => {
        #[export_name = "reduce"]
        pub extern "C" fn __agentworld_reduce(ptr: i32, len: i32) -> i64 {
            $crate::run(ptr, len, $body)
        }
    };
}

/// Exports `call`, the entry point of a pure module: `call!(my_fn)`.
#[macro_export]
macro_rules! call {
    ($body:path) => {
        #[export_name = "call"]
        pub extern "C" fn __agentworld_call(ptr: i32, len: i32) -> i64 {
            $crate::run(ptr, len, $body)
        }
    };
}

/// Exports `migrate`, called on upgrade with the old `state`, `from_version` and `to_version`;
/// the `new_state` it returns replaces the state: `migrate!(my_fn)`.
#[macro_export]
macro_rules! migrate {
    ($body:path) => {
        #[export_name = "migrate"]
        pub extern "C" fn __agentworld_migrate(ptr: i32, len: i32) -> i64 {
            $crate::run(ptr, len, $body)
        }
    };
}
