//! `compare`: tidings side by side with the limit (raw rusqlite, a raw `ureq` loop) and with
//! peers, in one run on one machine, reported as medians and ratios.
//!
//! ```text
//! cargo run --release -p tidings-benches --bin compare -- [--quick] [--rounds N] [--out DIR] [ROW...]
//! ```
//!
//! Every row runs its contenders alternately, round after round (at least three rounds), and
//! reports each contender's median and the ratio of tidings to the baseline. `--quick` runs
//! every row with tiny sizes, for CI (it checks that the rows still run, not the figures).
//! Results are printed as a table and written to `DIR/compare.json` (default
//! `target/compare`), which `benches/compare/chart.py` draws.

mod append;
mod deliver;
mod jetstream;
mod projection;
mod responder;
mod scale;

use std::path::PathBuf;

use tidings::Durability;

/// One contender's measurements in one row.
#[derive(Debug, Clone, serde::Serialize)]
struct Series {
    name: String,
    samples: Vec<f64>,
    median: f64,
}

/// One row of the comparison table.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    key: String,
    title: String,
    unit: String,
    tidings: Series,
    baselines: Vec<Series>,
    /// tidings' median over the first baseline's median.
    ratio: Option<f64>,
    target: String,
    met: Option<bool>,
    notes: Vec<String>,
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

fn series(name: &str, samples: Vec<f64>) -> Series {
    Series { name: name.to_string(), median: median(&samples), samples }
}

struct Config {
    quick: bool,
    /// Run tidings only (for profiling).
    only_tidings: bool,
    rounds: usize,
    out: PathBuf,
    only: Vec<String>,
}

impl Config {
    fn wants(&self, key: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| key.starts_with(o.as_str()))
    }

    fn scratch(&self) -> tempfile::TempDir {
        tempfile::tempdir().expect("scratch directory")
    }
}

fn append_rows(cfg: &Config, rows: &mut Vec<Row>) {
    let sizes = |normal: usize, quick: usize| if cfg.quick { quick } else { normal };
    for (key, durability, count, per_tx) in [
        ("append_1_normal", Durability::Normal, sizes(20_000, 200), 1),
        ("append_1_full", Durability::Full, sizes(3_000, 50), 1),
        ("append_100_normal", Durability::Normal, sizes(500, 10), 100),
    ] {
        let naive_row = per_tx == 1 && durability == Durability::Normal && cfg.wants("append_naive");
        if !(cfg.wants(key) || naive_row) {
            continue;
        }
        let (mut t, mut raw, mut naive) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..cfg.rounds {
            let order: [u8; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
            for who in order {
                let dir = cfg.scratch();
                match who {
                    0 => t.push(append::tidings_run(dir.path(), durability, count, per_tx)),
                    _ if cfg.only_tidings => {}
                    1 => raw.push(append::raw_run(dir.path(), durability, append::RawSchema::Tidings, count, per_tx)),
                    _ => naive.push(append::raw_run(dir.path(), durability, append::RawSchema::Naive, count, per_tx)),
                }
            }
        }
        let mode = if durability == Durability::Normal { "normal" } else { "full" };
        let events = if per_tx == 1 { "1 event/tx".to_string() } else { format!("{per_tx} events/tx") };
        let target = if durability == Durability::Full { 0.9 } else { 0.8 };
        let tidings = series("tidings", t);
        let naive = series("raw rusqlite, naive schema (UNIQUE(stream TEXT, version))", naive);
        let mut row = ratio_row(
            key,
            &format!("append, {events}, {mode}"),
            "events/s",
            tidings.clone(),
            vec![series("raw rusqlite, the same rows and indexes", raw), naive.clone()],
            target,
        );
        row.notes.push(format!(
            "{count} transactions per run; each: one app row, {events} (JSON data and metadata, UUIDv7 id), one outbox \
             row per event; 1,000 streams round-robin"
        ));
        rows.push(row);
        if per_tx == 1 && durability == Durability::Normal {
            let ratio = tidings.median / naive.median;
            rows.push(Row {
                key: "append_naive".into(),
                title: "same rows, absolute: tidings against a naive raw schema".into(),
                unit: "events/s".into(),
                tidings,
                baselines: vec![naive],
                ratio: Some(ratio),
                target: "report the ratio".into(),
                met: None,
                notes: vec![
                    "the naive schema has fewer indexes (no per-endpoint due or per-stream order index): it writes \
                     fewer pages per commit, which is what a commit costs here"
                        .into(),
                ],
            });
        }
    }
}

fn concurrent_row(cfg: &Config, rows: &mut Vec<Row>) {
    let key = "append_concurrent_full";
    if !cfg.wants(key) {
        return;
    }
    let per_thread = if cfg.quick { 20 } else { 1_500 };
    let single = if cfg.quick { 50 } else { 3_000 };
    let (mut t8, mut raw1, mut t1) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..cfg.rounds {
        let order: [u8; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for who in order {
            let dir = cfg.scratch();
            match who {
                0 => t8.push(append::tidings_concurrent(dir.path(), Durability::Full, 8, per_thread)),
                1 => raw1.push(append::raw_run(dir.path(), Durability::Full, append::RawSchema::Tidings, single, 1)),
                _ => t1.push(append::tidings_run(dir.path(), Durability::Full, single, 1)),
            }
        }
    }
    let mut row = ratio_row(
        key,
        "append, 1 event/tx, full, 8 threads (group commit)",
        "events/s",
        series("tidings, 8 threads", t8),
        vec![series("raw rusqlite, 1 thread", raw1), series("tidings, 1 thread", t1)],
        4.0,
    );
    let handoff = handoff_round_trip_us(if cfg.quick { 2 } else { 200 });
    row.notes.push(format!(
        "a thread hand-off (one thread wakes another through a condition variable and is woken back) \
         takes {handoff:.1} us here: the floor under every queued transaction's wait for the writer"
    ));
    rows.push(row);
}

/// Microseconds for one round trip of two threads waking each other through a mutex and a
/// condition variable (the median over batches of 100 trips): what it costs one transaction
/// to hand the writer to another thread on this machine.
fn handoff_round_trip_us(batches: usize) -> f64 {
    use std::sync::{Arc, Condvar, Mutex};
    let pair = Arc::new((Mutex::new(0u64), Condvar::new()));
    let total = batches as u64 * 100;
    let echo = {
        let pair = Arc::clone(&pair);
        std::thread::spawn(move || {
            let (lock, cvar) = &*pair;
            let mut turn = lock.lock().expect("lock");
            while *turn < 2 * total {
                while *turn % 2 == 0 {
                    turn = cvar.wait(turn).expect("wait");
                }
                *turn += 1;
                cvar.notify_one();
            }
        })
    };
    let (lock, cvar) = &*pair;
    let mut times = Vec::with_capacity(batches);
    let mut turn = lock.lock().expect("lock");
    for _ in 0..batches {
        let start = std::time::Instant::now();
        for _ in 0..100 {
            *turn += 1;
            cvar.notify_one();
            while *turn % 2 == 1 {
                turn = cvar.wait(turn).expect("wait");
            }
        }
        times.push(start.elapsed().as_secs_f64() * 1e6 / 100.0);
    }
    drop(turn);
    echo.join().expect("echo thread");
    median(&times)
}

fn deliver_rows(cfg: &Config, rows: &mut Vec<Row>) {
    for workers in [4usize, 16] {
        let key = format!("deliver_{workers}");
        if !cfg.wants(&key) {
            continue;
        }
        let count = if cfg.quick { 400 } else { 40_000 };
        let (mut t, mut raw) = (Vec::new(), Vec::new());
        for round in 0..cfg.rounds {
            let order: [u8; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for who in order {
                let dir = cfg.scratch();
                match who {
                    0 => t.push(deliver::tidings_deliveries(dir.path(), workers, count)),
                    _ if cfg.only_tidings => {}
                    _ => raw.push(deliver::raw_ureq(workers, count)),
                }
            }
        }
        let cost = |runs: &[deliver::Throughput]| {
            let cpu: Vec<f64> = runs.iter().map(|r| r.cpu_us).collect();
            let cores: Vec<f64> = runs.iter().map(|r| r.cores).collect();
            (median(&cpu), median(&cores))
        };
        let ((t_cpu, t_cores), (raw_cpu, raw_cores)) = (cost(&t), cost(&raw));
        let mut row = ratio_row(
            &key,
            &format!("deliveries/s, {workers} workers"),
            "deliveries/s",
            series("tidings", t.iter().map(|r| r.rate).collect()),
            vec![series(&format!("raw ureq loop, {workers} threads"), raw.iter().map(|r| r.rate).collect())],
            0.6,
        );
        row.notes.push(format!(
            "CPU per request (whole process, responder included): tidings {t_cpu:.1} µs, raw loop {raw_cpu:.1} µs; \
             cores kept busy: tidings {t_cores:.2}, raw loop {raw_cores:.2}"
        ));
        if workers == tidings::DeliveryOptions::default().workers {
            let absolute = row.tidings.median >= 15_000.0;
            row.notes.push(format!(
                "default worker count: {:.0}/s against the absolute target of 15,000/s: {}",
                row.tidings.median,
                if absolute { "met" } else { "MISSED" }
            ));
            row.met = row.met.map(|m| m && absolute);
            row.target = ">= 0.6x, and >= 15,000/s at the default workers".into();
        }
        rows.push(row);
    }
}

fn latency_row(cfg: &Config, rows: &mut Vec<Row>) {
    if !cfg.wants("latency") {
        return;
    }
    let seconds = if cfg.quick { 1 } else { 10 };
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for _ in 0..cfg.rounds {
        let dir = cfg.scratch();
        let sorted = deliver::latency(dir.path(), 500, seconds);
        p50.push(percentile(&sorted, 0.50));
        p99.push(percentile(&sorted, 0.99));
    }
    let (m50, m99) = (median(&p50), median(&p99));
    rows.push(Row {
        key: "latency".into(),
        title: "commit -> receipt latency at 500 events/s".into(),
        unit: "ms".into(),
        tidings: series("tidings p50", p50),
        baselines: vec![series("tidings p99", p99)],
        ratio: None,
        target: "p50 <= 1 ms, p99 <= 5 ms".into(),
        met: Some(m50 <= 1.0 && m99 <= 5.0),
        notes: vec![
            format!("p50 {m50:.2} ms, p99 {m99:.2} ms"),
            format!(
                "one event committed every 2 ms for {seconds} s, default delivery options, receipt time taken by \
                 the responder; medians over {} rounds",
                cfg.rounds
            ),
        ],
    });
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn throttle_row(cfg: &Config, rows: &mut Vec<Row>) {
    if !cfg.wants("throttle") {
        return;
    }
    let seconds = if cfg.quick { 1 } else { 10 };
    let mut rates = Vec::new();
    for _ in 0..cfg.rounds {
        let dir = cfg.scratch();
        rates.push(deliver::throttle(dir.path(), 50.0, seconds));
    }
    let m = median(&rates);
    let error = (m - 50.0) / 50.0 * 100.0;
    rows.push(Row {
        key: "throttle".into(),
        title: format!("throttle accuracy, 50 req/s for {seconds} s"),
        unit: "req/s".into(),
        tidings: series("tidings", rates),
        baselines: Vec::new(),
        ratio: None,
        target: "within 5% of 50 req/s".into(),
        met: Some(error.abs() <= 5.0),
        notes: vec![
            format!("{m:.2} req/s ({error:+.1}%)"),
            format!(
                "rate_limit 50/s, burst 1, a backlog larger than the window; counted over {seconds} s after the \
                 first request; median over {} rounds",
                cfg.rounds
            ),
        ],
    });
}

fn memory_row(cfg: &Config, rows: &mut Vec<Row>) {
    if !cfg.wants("memory") {
        return;
    }
    let count: u64 = if cfg.quick { 2_000 } else { 1_000_000 };
    let dir = cfg.scratch();
    let output = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg("--memory-child")
        .arg(dir.path())
        .arg(count.to_string())
        .output()
        .expect("run the memory child");
    assert!(output.status.success(), "memory child failed: {}", String::from_utf8_lossy(&output.stderr));
    let f: serde_json::Value = serde_json::from_slice(&output.stdout).expect("child output");
    let num = |k: &str| f[k].as_f64().unwrap_or(f64::NAN);
    let (rss, cpu) = (num("rss_mib"), num("idle_cpu_percent"));
    rows.push(Row {
        key: "memory".into(),
        title: format!("{count} pending deliveries: RSS and idle CPU"),
        unit: "MiB".into(),
        tidings: series("tidings RSS, engine idling", vec![rss]),
        baselines: vec![series("idle CPU, % of a core", vec![cpu])],
        ratio: None,
        target: "RSS <= 64 MiB; idle CPU < 1%".into(),
        met: Some(rss <= 64.0 && cpu < 1.0),
        notes: vec![
            format!("RSS {rss:.1} MiB, idle CPU {cpu:.2}%"),
            format!(
                "RSS {rss:.1} MiB after ten idle seconds of the engine (before it started {:.1}, peak while \
                 queuing {:.1}); idle CPU {cpu:.2}% of a core; requests sent {} (the rate limit allows one an hour); \
                 measured in a child process of its own",
                num("rss_before_mib"),
                num("peak_rss_mib"),
                num("sent")
            ),
        ],
    });
}

fn isolation_row(cfg: &Config, rows: &mut Vec<Row>) {
    let key = "isolation_1000";
    if !cfg.wants(key) {
        return;
    }
    let (endpoints, events) = if cfg.quick { (100, 5) } else { (1_000, 20) };
    let (mut mixed, mut healthy) = (Vec::new(), Vec::new());
    for round in 0..cfg.rounds {
        for mixed_first in [round % 2 == 0, round % 2 == 1] {
            let dir = cfg.scratch();
            let run = scale::fleet(dir.path(), endpoints, events, mixed_first);
            if mixed_first { mixed.push(run) } else { healthy.push(run) }
        }
    }
    let rates = |runs: &[scale::FleetRun]| runs.iter().map(|r| r.healthy_rate).collect::<Vec<_>>();
    let peak = |runs: &[scale::FleetRun], f: fn(&scale::FleetRun) -> f64| runs.iter().map(f).fold(0.0, f64::max);
    let mut row = ratio_row(
        key,
        &format!("{endpoints} endpoints, a tenth hanging and a tenth answering 500: healthy deliveries/s"),
        "deliveries/s",
        series("tidings, with the hanging and failing endpoints", rates(&mixed)),
        vec![series("tidings, the same fleet all healthy", rates(&healthy))],
        0.8,
    );
    let (rss, threads) = (peak(&mixed, |r| r.peak_rss_mib), peak(&mixed, |r| r.peak_threads));
    let rss_met = rss <= 128.0;
    row.notes.push(format!(
        "engine process (a child of its own): peak {threads:.0} threads and {rss:.1} MiB RSS with the hanging and \
         failing endpoints (RSS target <= 128 MiB: {}); all healthy: {:.0} threads, {:.1} MiB",
        if rss_met { "met" } else { "MISSED" },
        peak(&healthy, |r| r.peak_threads),
        peak(&healthy, |r| r.peak_rss_mib),
    ));
    row.notes.push(format!(
        "{events} events to each endpoint (all subscribe to them), default options; hanging receivers hold each \
         request {} s (past the 15 s timeout); timed from the engine's start until the healthy endpoints have all \
         theirs",
        responder::HOLD.as_secs()
    ));
    let (failed, held) = mixed.first().map_or((0, 0), |r| r.failed_and_held);
    row.notes.push(format!(
        "until then, the {} failing endpoints got {failed} requests (their circuits open after 5 failures) and the {} \
         hanging ones {held} (one each at first: a new endpoint has one request in flight until it succeeds)",
        endpoints / 10,
        endpoints / 10
    ));
    row.met = row.met.map(|m| m && rss_met);
    row.target = ">= 0.8x, and RSS <= 128 MiB".into();
    rows.push(row);
}

fn idle_row(cfg: &Config, rows: &mut Vec<Row>) {
    let key = "idle_endpoints";
    if !cfg.wants(key) {
        return;
    }
    let sizes: [usize; 3] = if cfg.quick { [0, 100, 1_000] } else { [0, 10_000, 100_000] };
    let events = if cfg.quick { 300 } else { 3_000 };
    let responder = responder::Responder::start();
    let templates_dir = cfg.scratch();
    let templates: Vec<_> =
        sizes.iter().map(|n| scale::idle_template(templates_dir.path(), *n, &responder.url_for("/ok/busy"))).collect();
    let mut rates = vec![Vec::new(); sizes.len()];
    for round in 0..cfg.rounds {
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let dir = cfg.scratch();
            rates[i].push(scale::idle_run(&templates[i], dir.path(), &responder, events));
        }
    }
    let label = |n: usize| format!("tidings beside {n} idle endpoints");
    let mut row = ratio_row(
        key,
        &format!("one busy endpoint beside {} idle ones: deliveries/s", sizes[2]),
        "deliveries/s",
        series(&label(sizes[2]), rates[2].clone()),
        vec![series(&label(sizes[0]), rates[0].clone()), series(&label(sizes[1]), rates[1].clone())],
        0.8,
    );
    row.notes.push(format!(
        "{events} events queued (100 per transaction) before the engine starts, to a fast local receiver; the idle \
         endpoints subscribe to a type that never occurs"
    ));
    rows.push(row);
}

fn backlog_row(cfg: &Config, rows: &mut Vec<Row>) {
    let key = "backlog_fairness";
    if !cfg.wants(key) {
        return;
    }
    let (backlog, probes) = if cfg.quick { (2_000, 30) } else { (20_000, 200) };
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for _ in 0..cfg.rounds {
        let dir = cfg.scratch();
        let sorted = scale::backlog(dir.path(), backlog, probes);
        p50.push(percentile(&sorted, 0.50));
        p99.push(percentile(&sorted, 0.99));
    }
    let m99 = median(&p99);
    rows.push(Row {
        key: key.into(),
        title: format!("a new event beside a backlog of {backlog} to a slow receiver: commit -> receipt"),
        unit: "ms".into(),
        tidings: series("tidings p99", p99),
        baselines: vec![series("tidings p50", p50.clone())],
        ratio: None,
        target: "p99 <= 50 ms".into(),
        met: Some(m99 <= 50.0),
        notes: vec![
            format!("p99 {m99:.2} ms, p50 {:.2} ms", median(&p50)),
            format!(
                "one endpoint has {backlog} pending deliveries to a receiver answering after {} ms; {probes} events for \
                 another endpoint, one every 20 ms, timed from the return of append to receipt; medians over {} rounds",
                responder::SLOW.as_millis(),
                cfg.rounds
            ),
        ],
    });
}

fn takeover_row(cfg: &Config, rows: &mut Vec<Row>) {
    let key = "crash_takeover";
    if !cfg.wants(key) {
        return;
    }
    let mut seconds = Vec::new();
    for _ in 0..cfg.rounds {
        let dir = cfg.scratch();
        seconds.push(scale::takeover(dir.path()).as_secs_f64());
    }
    let m = median(&seconds);
    let lease =
        tidings::EndpointSpec::new("https://example.com").timeout + tidings::DeliveryOptions::default().lease_grace;
    rows.push(Row {
        key: key.into(),
        title: "kill -9 of a delivering process -> first re-send of its claim".into(),
        unit: "s".into(),
        tidings: series("tidings, a new process", seconds),
        baselines: Vec::new(),
        ratio: None,
        target: format!("report (the lease it replaces: {} s)", lease.as_secs()),
        met: None,
        notes: vec![
            format!("{m:.3} s (median over {} rounds)", cfg.rounds),
            "the victim's request is held by the receiver when it is killed; the time includes starting the new \
             process (opening the store, starting the engine)"
                .into(),
        ],
    });
}

fn projection_row(cfg: &Config, rows: &mut Vec<Row>) {
    let key = "projection_100k";
    if !cfg.wants(key) {
        return;
    }
    let events: u64 = if cfg.quick { 2_000 } else { 100_000 };
    let templates = cfg.scratch();
    let template = projection::template(templates.path(), events);
    let (mut t, mut raw) = (Vec::new(), Vec::new());
    for round in 0..cfg.rounds {
        let order: [u8; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for who in order {
            let dir = cfg.scratch();
            match who {
                0 => t.push(projection::tidings_run(&template, dir.path(), events)),
                _ if cfg.only_tidings => {}
                _ => raw.push(projection::raw_run(&template, dir.path(), events)),
            }
        }
    }
    let mut row = ratio_row(
        key,
        &format!("projection of {events} events into a read model, checkpoint per batch"),
        "events/s",
        series("tidings subscribe", t),
        vec![series("raw rusqlite loop, the same reads and writes", raw)],
        0.8,
    );
    row.notes.push(format!(
        "{events} order.created events (appended first, outside the clock; 1,000 streams) copied from one template \
         file for each run; per event one upsert into order_totals (keyed by stream, total summed from the JSON \
         data), per batch of {} the checkpoint in the same transaction; normal durability (WAL, synchronous \
         NORMAL) for both",
        projection::batch_size()
    ));
    row.notes.push(
        "tidings: from the subscribe call until wait_for_position passed the last event (the runner thread reads \
         each batch on a read connection, then re-checks its position in the write transaction; every event is \
         decoded whole: ids, data and metadata JSON, timestamps). raw: one BEGIN IMMEDIATE per batch reading the \
         checkpoint and the batch (the same columns, only data parsed), the upserts, the checkpoint, COMMIT"
            .into(),
    );
    rows.push(row);
}

fn projection_latency_rows(cfg: &Config, rows: &mut Vec<Row>) {
    let interval = std::time::Duration::from_millis(5);
    let count: u64 = if cfg.quick { 40 } else { 2_000 };
    let pct = |runs: &[Vec<f64>], q: f64| runs.iter().map(|s| percentile(s, q)).collect::<Vec<f64>>();
    if cfg.wants("projection_latency") {
        let runs: Vec<Vec<f64>> =
            (0..cfg.rounds).map(|_| projection::latency_same_process(cfg.scratch().path(), count, interval)).collect();
        let (p50, p99) = (pct(&runs, 0.50), pct(&runs, 0.99));
        let (m50, m99) = (median(&p50), median(&p99));
        rows.push(Row {
            key: "projection_latency".into(),
            title: "append -> projection, same process".into(),
            unit: "ms".into(),
            tidings: series("tidings p50", p50),
            baselines: vec![series("tidings p99", p99)],
            ratio: None,
            target: "report (woken by the commit)".into(),
            met: None,
            notes: vec![
                format!("p50 {m50:.2} ms, p99 {m99:.2} ms"),
                format!(
                    "{count} events, one per transaction every {} ms, projected by the handler of projection_100k \
                     (batches of up to {}); from the return of append to the subscription's commit past it \
                     (a thread waiting with wait_for_position); medians over {} rounds",
                    interval.as_millis(),
                    projection::batch_size(),
                    cfg.rounds
                ),
            ],
        });
    }
    if cfg.wants("projection_latency_process") {
        let default_poll = tidings::StoreOptions::default().poll_interval;
        let polls = [default_poll, std::time::Duration::from_millis(10)];
        let mut by_poll: Vec<Vec<Vec<f64>>> = vec![Vec::new(); polls.len()];
        for round in 0..cfg.rounds {
            let mut order: Vec<usize> = (0..polls.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let dir = cfg.scratch();
                by_poll[i].push(projection::latency_other_process(dir.path(), count, interval, polls[i]));
            }
        }
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let (d50, d99) = (pct(&by_poll[0], 0.50), pct(&by_poll[0], 0.99));
        let (f50, f99) = (pct(&by_poll[1], 0.50), pct(&by_poll[1], 0.99));
        let worst = |runs: &[Vec<f64>]| runs.iter().filter_map(|s| s.last().copied()).fold(0.0, f64::max);
        let (dmax, fmax) = (worst(&by_poll[0]), worst(&by_poll[1]));
        let poll = ms(default_poll);
        rows.push(Row {
            key: "projection_latency_process".into(),
            title: format!("append, other process -> projection (poll {poll:.0} ms)"),
            unit: "ms".into(),
            tidings: series(&format!("tidings p50, poll_interval {poll:.0} ms"), d50.clone()),
            baselines: vec![
                series(&format!("tidings p99, poll_interval {poll:.0} ms"), d99.clone()),
                series("tidings p50, poll_interval 10 ms", f50.clone()),
                series("tidings p99, poll_interval 10 ms", f99.clone()),
            ],
            ratio: None,
            target: "report (bound: poll_interval)".into(),
            met: None,
            notes: vec![
                format!("p50 {:.1} ms, p99 {:.1} ms", median(&d50), median(&d99)),
                format!("at poll_interval 10 ms: p50 {:.1} ms, p99 {:.1} ms", median(&f50), median(&f99)),
                format!(
                    "a child process appends {count} events, one per transaction every {} ms; this process's \
                     subscription finds other processes' commits at its next poll (every poll_interval of its \
                     store); from the child's return of append to the commit past the event, wall clock on both \
                     sides; worst single event {dmax:.1} ms (poll {poll:.0} ms), {fmax:.1} ms (poll 10 ms); medians \
                     over {} rounds",
                    interval.as_millis(),
                    cfg.rounds
                ),
            ],
        });
    }
}

fn ratio_row(key: &str, title: &str, unit: &str, tidings: Series, baselines: Vec<Series>, target: f64) -> Row {
    let ratio = baselines.first().map(|b| tidings.median / b.median);
    Row {
        key: key.into(),
        title: title.into(),
        unit: unit.into(),
        tidings,
        baselines,
        ratio,
        target: format!(">= {target}x"),
        met: ratio.map(|r| r >= target),
        notes: Vec::new(),
    }
}

fn print_rows(rows: &[Row]) {
    for row in rows {
        println!("{}  [{}]", row.title, row.key);
        if row.ratio.is_none() && !row.notes.is_empty() {
            // Absolute rows: the first note says what was measured, in its own units.
            println!("  measured: {}", row.notes[0]);
            let verdict = match row.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "reported",
            };
            println!("  target {}: {verdict}", row.target);
            for note in &row.notes[1..] {
                println!("  note: {note}");
            }
            continue;
        }
        println!("  {:<58} {:>10.0} {}", row.tidings.name, row.tidings.median, row.unit);
        for b in &row.baselines {
            println!(
                "  {:<58} {:>10.0} {}  (tidings {:.2}x)",
                b.name,
                b.median,
                row.unit,
                row.tidings.median / b.median
            );
        }
        if let Some(met) = row.met {
            println!("  target {}: {}", row.target, if met { "met" } else { "MISSED" });
        }
        for note in &row.notes {
            println!("  note: {note}");
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--fleet-child") => return scale::fleet_child(&args[2..]),
        Some("--deliver-child") => return scale::deliver_child(&args[2..]),
        Some("--projection-append-child") => return projection::append_child(&args[2..]),
        _ => {}
    }
    if args.get(1).map(String::as_str) == Some("--memory-child") {
        let dir = PathBuf::from(&args[2]);
        let count: u64 = args[3].parse().expect("count");
        let f = deliver::memory_child(&dir, count);
        let json = serde_json::json!({
            "rss_before_mib": f.rss_before_mib, "rss_mib": f.rss_mib, "peak_rss_mib": f.peak_rss_mib,
            "idle_cpu_percent": f.idle_cpu_percent, "sent": f.sent,
        });
        println!("{json}");
        return;
    }
    let mut cfg =
        Config { quick: false, only_tidings: false, rounds: 3, out: PathBuf::from("target/compare"), only: Vec::new() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => cfg.quick = true,
            "--only-tidings" => cfg.only_tidings = true,
            "--rounds" => cfg.rounds = args.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--out" => cfg.out = PathBuf::from(args.next().expect("--out DIR")),
            _ => cfg.only.push(arg),
        }
    }
    cfg.rounds = cfg.rounds.max(if cfg.quick { 1 } else { 3 });
    let mut rows = Vec::new();
    append_rows(&cfg, &mut rows);
    concurrent_row(&cfg, &mut rows);
    deliver_rows(&cfg, &mut rows);
    latency_row(&cfg, &mut rows);
    throttle_row(&cfg, &mut rows);
    memory_row(&cfg, &mut rows);
    isolation_row(&cfg, &mut rows);
    idle_row(&cfg, &mut rows);
    backlog_row(&cfg, &mut rows);
    takeover_row(&cfg, &mut rows);
    projection_row(&cfg, &mut rows);
    projection_latency_rows(&cfg, &mut rows);
    jetstream::rows(&cfg, &mut rows);
    print_rows(&rows);
    std::fs::create_dir_all(&cfg.out).expect("output directory");
    let json = serde_json::to_string_pretty(&rows).expect("json");
    std::fs::write(cfg.out.join("compare.json"), json).expect("write compare.json");
}
