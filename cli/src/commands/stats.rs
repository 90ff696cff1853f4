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
    // `Stats` has each endpoint's circuit but not until when; the endpoints have that.
    let read = || -> Result<(tidings::Stats, output::CircuitUntil)> {
        let stats = store.stats()?;
        let until = output::circuit_until_map(&store.list_endpoints(None)?);
        Ok((stats, until))
    };
    if !args.watch {
        let (stats, until) = read()?;
        if ctx.json {
            output::print_json(&output::stats_json(&stats, &until));
        } else {
            out!("{}", output::stats_text(&stats, &until));
        }
        return Ok(());
    }
    let redraw = !ctx.json && std::io::stdout().is_terminal();
    let mut shown = 0u64;
    loop {
        let (stats, until) = read()?;
        let now = output::time(time::OffsetDateTime::now_utc());
        // Written directly (the screen is cleared below), so the text is escaped here.
        let text = output::clean_lines(&output::stats_text(&stats, &until)).into_owned();
        let mut out = std::io::stdout().lock();
        let written = if ctx.json {
            let mut value = output::stats_json(&stats, &until);
            if let Some(map) = value.as_object_mut() {
                map.insert("at".into(), output::rfc3339(time::OffsetDateTime::now_utc()).into());
            }
            writeln!(out, "{}", output::json_text(value.to_string()))
        } else if redraw {
            // Clear the screen and draw from the top.
            write!(out, "\x1b[2J\x1b[H{now}  (every {}; Ctrl-C to stop)\n\n{text}", output::duration(args.interval))
        } else {
            writeln!(out, "--- {now}\n{text}")
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
