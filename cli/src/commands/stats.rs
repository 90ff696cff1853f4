//! `tidings stats [--watch]`: counts by state, success rate, latency percentiles, per endpoint.

use std::io::{IsTerminal, Write};

use super::Ctx;
use crate::args::StatsArgs;
use crate::db;
use crate::error::Result;
use crate::output;

/// Prints the statistics once, or refreshes them every `--interval` with `--watch`.
pub fn run(ctx: &Ctx, args: &StatsArgs) -> Result<()> {
    let store = db::open_read_only(ctx.db()?)?;
    if !args.watch {
        let stats = store.stats()?;
        if ctx.json {
            output::print_json(&output::stats_json(&stats));
        } else {
            out!("{}", output::stats_text(&stats));
        }
        return Ok(());
    }
    let redraw = !ctx.json && std::io::stdout().is_terminal();
    let mut shown = 0u64;
    loop {
        let stats = store.stats()?;
        let now = output::time(time::OffsetDateTime::now_utc());
        let mut out = std::io::stdout().lock();
        let written = if ctx.json {
            let mut value = output::stats_json(&stats);
            if let Some(map) = value.as_object_mut() {
                map.insert("at".into(), output::rfc3339(time::OffsetDateTime::now_utc()).into());
            }
            writeln!(out, "{value}")
        } else if redraw {
            // Clear the screen and draw from the top.
            write!(
                out,
                "\x1b[2J\x1b[H{now}  (every {}; Ctrl-C to stop)\n\n{}",
                output::duration(args.interval),
                output::stats_text(&stats)
            )
        } else {
            writeln!(out, "--- {now}\n{}", output::stats_text(&stats))
        };
        match written.and_then(|()| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
        drop(out);
        shown += 1;
        if args.count.is_some_and(|c| shown >= c) {
            return Ok(());
        }
        std::thread::sleep(args.interval);
    }
}
