//! The event type pattern matcher: `PatternSet::parse` never panics; for a set it accepts,
//! `matches` agrees with a reference model of the documented rules (`*`: every non-system
//! type; `x.y.*`: every type strictly below `x.y.`; anything else: that exact type), and no
//! set that lacks a `tidings.` pattern ever matches a system type.
//!
//! Input: first line, comma-separated patterns; every further line, an event type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings::pattern::PatternSet;

fn model(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" {
        return !event_type.starts_with("tidings.");
    }
    if let Some(base) = pattern.strip_suffix('*') {
        return event_type.len() > base.len() && event_type.starts_with(base);
    }
    pattern == event_type
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let patterns: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let Ok(set) = PatternSet::parse(&patterns) else { return };
    let kept = set.patterns();
    assert!(!kept.is_empty());
    for p in &kept {
        assert!(patterns.contains(&p.as_str()), "a pattern was invented: {p}");
    }
    let names_system = kept.iter().any(|p| p.starts_with("tidings."));
    for event_type in lines {
        let expected = kept.iter().any(|p| model(p, event_type));
        assert_eq!(set.matches(event_type), expected, "patterns {kept:?} on {event_type:?}");
        if event_type.starts_with("tidings.") && !names_system {
            assert!(!set.matches(event_type), "{kept:?} matched the system type {event_type:?}");
        }
    }
});
