//! The per-endpoint token bucket. Its state (tokens, last refill) lives in the endpoint's row
//! and is taken inside the claim transaction, so the limit holds across every delivering
//! process.

/// A bucket read from an endpoint row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    /// Requests per second.
    pub rate: f64,
    /// Most tokens held.
    pub burst: f64,
    /// Tokens at `at`.
    pub tokens: f64,
    /// Last refill, microseconds.
    pub at: i64,
}

impl Bucket {
    /// A bucket as stored (`None` tokens: a full bucket).
    pub(crate) fn load(rate: f64, burst: Option<u32>, tokens: Option<f64>, at: Option<i64>, now: i64) -> Bucket {
        let burst = f64::from(burst.unwrap_or(1).max(1));
        Bucket { rate, burst, tokens: tokens.unwrap_or(burst), at: at.unwrap_or(now) }
    }

    /// Refills up to `now`.
    pub(crate) fn refill(&mut self, now: i64) {
        let elapsed = (now - self.at).max(0) as f64 / 1e6;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now.max(self.at);
    }

    /// Whole tokens available now.
    pub(crate) fn available(&self) -> u64 {
        self.tokens.max(0.0).floor() as u64
    }

    /// Takes `n` tokens (at most those available).
    pub(crate) fn take(&mut self, n: u64) {
        self.tokens -= n as f64;
    }

    /// Microseconds until one whole token is available (at most a day: a bucket read from a
    /// damaged row, with a rate or tokens out of range, must not push the wait out of reach).
    pub(crate) fn micros_until_token(&self) -> i64 {
        const DAY_MICROS: f64 = 86_400e6;
        if self.tokens >= 1.0 {
            return 0;
        }
        let wait = ((1.0 - self.tokens) / self.rate) * 1e6;
        if wait.is_nan() { DAY_MICROS as i64 } else { wait.ceil().clamp(0.0, DAY_MICROS) as i64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_the_rate_and_caps_at_burst() {
        let mut b = Bucket::load(20.0, Some(1), None, None, 0);
        assert_eq!(b.available(), 1);
        b.take(1);
        assert_eq!(b.available(), 0);
        assert_eq!(b.micros_until_token(), 50_000);
        b.refill(25_000);
        assert_eq!(b.available(), 0);
        b.refill(50_000);
        assert_eq!(b.available(), 1);
        b.refill(10_000_000);
        assert_eq!(b.available(), 1, "capped at burst");
    }

    #[test]
    fn the_wait_for_a_token_stays_within_a_day_whatever_the_row_holds() {
        let day = 86_400_000_000;
        for (rate, tokens) in [(1e-300, 0.0), (0.0, 0.0), (f64::NAN, 0.0), (1.0, f64::NEG_INFINITY), (-5.0, 0.5)] {
            let b = Bucket { rate, burst: 1.0, tokens, at: 0 };
            let wait = b.micros_until_token();
            assert!((0..=day).contains(&wait), "rate {rate} tokens {tokens}: {wait}");
        }
        assert_eq!(Bucket { rate: 1.0 / 86_400.0, burst: 1.0, tokens: 0.0, at: 0 }.micros_until_token(), day);
    }

    #[test]
    fn a_window_of_one_second_holds_at_most_burst_plus_rate() {
        // Take greedily every millisecond for 3 s; count takes in every 1 s window.
        let mut b = Bucket::load(20.0, Some(1), None, None, 0);
        let mut takes = Vec::new();
        for ms in 0..3000i64 {
            b.refill(ms * 1000);
            let n = b.available();
            b.take(n);
            for _ in 0..n {
                takes.push(ms);
            }
        }
        for start in 0..2000 {
            let in_window = takes.iter().filter(|&&t| t >= start && t < start + 1000).count();
            assert!(in_window <= 21, "window at {start} ms holds {in_window}");
        }
        assert!(takes.len() >= 60);
    }
}
