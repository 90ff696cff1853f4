//! Template rendering under a memory bound: a template with up to 256 placeholders (whole
//! values, interpolations, the `{{event}}` envelope) over fuzzer-chosen data, rendered with a
//! fuzzer-chosen limit. The render must either return valid JSON of at most the limit (and
//! the very same bytes with exactly that limit, and fail one byte below), or stop with
//! `TooLarge`; and whatever happens, the memory allocated during the render (counted by the
//! global allocator) must stay within the limit plus a small constant: a render never
//! materialises copies of the data it multiplies.
//!
//! Input: `n shape kinds step limit(3 bytes) repeat` then `data JSON \0 metadata JSON` (invalid
//! JSON is used as a string; the data is repeated `repeat` times in an array to make it large).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tidings::template::{RenderContext, Template, TooLarge};

/// Counts the bytes allocated now and the most allocated at once since [`reset_peak`].
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    CURRENT.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is passed on to `System` unchanged; only counters are updated around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` holds for `System.alloc`.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and the caller's contract for `realloc` holds.
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Starts measuring: the peak becomes what is allocated now, which is returned.
fn reset_peak() -> usize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// Bytes a render may allocate beyond its output buffer: a timestamp's text, an error.
const SLACK: usize = 4096;

/// The largest limit tried (renders stay fast).
const MAX_LIMIT: usize = 256 * 1024;

/// What the placeholders refer to.
const KINDS: [&str; 10] =
    ["data", "metadata", "event", "data.0", "data.a.b", "id", "timestamp", "tenant", "version", "data.nope"];

/// How deeply a value nests arrays and objects.
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A template of `n` placeholders in one of four shapes.
fn template_text(n: usize, shape: u8, kinds: u8, step: u8) -> String {
    let kind = |i: usize| KINDS[(usize::from(kinds) + i * usize::from(step)) % KINDS.len()];
    let whole = |i: usize| Value::from(format!("{{{{{}}}}}", kind(i)));
    match shape % 4 {
        0 => Value::Object((0..n).map(|i| (format!("k{i}"), whole(i))).collect::<Map<_, _>>()).to_string(),
        1 => Value::Array((0..n).map(whole).collect()).to_string(),
        2 => Value::from((0..n).map(|i| format!("<{{{{{}}}}}>", kind(i))).collect::<String>()).to_string(),
        _ => {
            let mut nested = Value::from("end");
            for i in 0..n {
                nested = Value::Array(vec![whole(i), nested]);
            }
            nested.to_string()
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((head, rest)) = input.split_first_chunk::<8>() else { return };
    let [n, shape, kinds, step, l0, l1, l2, repeat] = *head;
    let n = usize::from(n) % 256 + 1;
    // Shape 3 nests a level per placeholder: keep it well inside serde_json's depth limit.
    let n = if shape % 4 == 3 { n.min(32) } else { n };
    let limit = (usize::from(l0) | usize::from(l1) << 8 | usize::from(l2) << 16) % (MAX_LIMIT + 1);
    let mut parts = rest.splitn(2, |b| *b == 0);
    let json = |p: Option<&[u8]>| {
        let raw = String::from_utf8_lossy(p.unwrap_or_default()).into_owned();
        serde_json::from_str::<Value>(&raw).unwrap_or(Value::String(raw))
    };
    let one = json(parts.next());
    let data = if repeat == 0 { one } else { Value::Array(vec![one; usize::from(repeat) + 1]) };
    let metadata = json(parts.next());

    let text = template_text(n, shape, kinds, step);
    let template = Template::parse(&text).expect("the generated template is valid");
    let ctx = RenderContext {
        id: "0190c5e1-7b7a-7cc3-9d2e-1b2c3d4e5f60",
        event_type: "order.created",
        timestamp: time::OffsetDateTime::UNIX_EPOCH,
        source: "fuzz",
        stream: "order-1",
        version: 1,
        position: 1,
        tenant: Some("acme"),
        data: &data,
        metadata: &metadata,
    };

    let before = reset_peak();
    let result = template.render_bytes(&ctx, limit);
    let peak = PEAK.load(Ordering::Relaxed) - before;
    assert!(peak <= limit + SLACK, "a render with a limit of {limit} bytes allocated {peak} bytes at once");
    match result {
        Ok(bytes) => {
            assert!(bytes.len() <= limit, "{} bytes rendered past a limit of {limit}", bytes.len());
            assert!(bytes.capacity() <= limit, "{} bytes allocated past a limit of {limit}", bytes.capacity());
            // serde_json's parser refuses nesting past 128 levels: check what it can read.
            if depth(&data).max(depth(&metadata)) + 32 + 2 < 120 {
                serde_json::from_slice::<Value>(&bytes).expect("rendering produced invalid JSON");
            }
            assert_eq!(template.render_bytes(&ctx, bytes.len()).as_ref(), Ok(&bytes), "the limit is inclusive");
            if let Some(short) = bytes.len().checked_sub(1) {
                assert_eq!(template.render_bytes(&ctx, short), Err(TooLarge { limit: short }));
            }
        }
        Err(too_large) => assert_eq!(too_large, TooLarge { limit }),
    }
});
