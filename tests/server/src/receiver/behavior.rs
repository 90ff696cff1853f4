//! What the [`super::Receiver`] answers: the [`Behavior`] a test sets or scripts, and how each
//! one is carried out once the request was read whole and recorded. Answers are `hyper`
//! responses; the faults below HTTP (a reset, a close without an answer) go through the
//! connection's [`Control`].

use std::future::pending;
use std::time::Duration;

use hyper::Response;
use hyper::body::Bytes;

use crate::conn::Control;
use crate::respond::{Feed, full, streamed};
use crate::server::Body;

/// `content-type` of [`Behavior::Body`] and [`Behavior::Redirect`] answers.
const TEXT: &str = "text/plain; charset=utf-8";

/// What the receiver does with one request (after reading it completely and recording it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Behavior {
    /// Answer with this status and a small JSON body: `{"ok":true}` for 2xx, `{"ok":false}`
    /// otherwise (no body for 1xx, 204 and 304).
    Status(u16),
    /// Like [`Behavior::Status`] plus these response headers (e.g. 429 with `Retry-After`).
    StatusWithHeaders(u16, Vec<(String, String)>),
    /// Answer with this status and exactly this body (`text/plain`).
    Body(u16, String),
    /// Never answer: hold the socket open until the client closes it or the receiver is
    /// dropped.
    Hang,
    /// Wait this long, then answer like [`Behavior::Status`].
    Delay(Duration, u16),
    /// Close the socket with `SO_LINGER` 0 so the client sees a connection reset.
    Reset,
    /// Close the connection cleanly without writing anything.
    CloseBeforeHeaders,
    /// Send a 200 with `content-length: total`, then the body one byte at a time at this rate.
    SlowBody {
        /// Body bytes per second (0 counts as 1).
        bytes_per_sec: u32,
        /// Body length in bytes.
        total: usize,
    },
    /// Send a 200 with a body of this many bytes, as fast as the client reads.
    HugeBody(usize),
    /// Answer `302 Found` with this `Location`.
    Redirect(String),
}

impl Default for Behavior {
    /// `Status(200)`, with body `{"ok":true}`.
    fn default() -> Self {
        Behavior::Status(200)
    }
}

/// Carries out `behavior`; never completes for the behaviors that do not answer (the
/// connection ends, or the server stops, first).
pub(crate) async fn answer(behavior: &Behavior, control: &Control) -> Response<Body> {
    match behavior {
        Behavior::Status(code) => status(*code, &[]),
        Behavior::StatusWithHeaders(code, extra) => status(*code, extra),
        Behavior::Body(code, body) => full(*code, &[("content-type", TEXT)], body.clone()),
        Behavior::Hang => pending().await,
        Behavior::Delay(wait, code) => {
            tokio::time::sleep(*wait).await;
            status(*code, &[])
        }
        Behavior::Reset => {
            control.reset();
            pending().await
        }
        Behavior::CloseBeforeHeaders => {
            control.close();
            pending().await
        }
        Behavior::SlowBody { bytes_per_sec, total } => {
            let pause = Duration::from_secs(1) / (*bytes_per_sec).max(1);
            let total = *total;
            streamed(&[("content-type", "application/octet-stream")], total, move |feed| trickle(feed, total, 1, pause))
        }
        Behavior::HugeBody(total) => {
            let total = *total;
            let feed = move |feed| trickle(feed, total, 64 * 1024, Duration::ZERO);
            streamed(&[("content-type", "application/octet-stream")], total, feed)
        }
        Behavior::Redirect(location) => full(302, &[("content-type", TEXT), ("location", location)], Bytes::new()),
    }
}

/// `code` with the JSON body of [`Behavior::Status`] and `extra` headers.
fn status(code: u16, extra: &[(String, String)]) -> Response<Body> {
    let mut headers: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    if matches!(code, 100..=199 | 204 | 304) {
        return full(code, &headers, Bytes::new());
    }
    headers.insert(0, ("content-type", "application/json"));
    let body: &'static [u8] = if (200..300).contains(&code) { b"{\"ok\":true}" } else { b"{\"ok\":false}" };
    full(code, &headers, body)
}

/// Sends `total` bytes of `x` in blocks of `step`, with `pause` between blocks.
async fn trickle(mut feed: Feed, total: usize, step: usize, pause: Duration) {
    let block = Bytes::from(vec![b'x'; step.min(total).max(1)]);
    let mut left = total;
    while left > 0 {
        let n = left.min(block.len());
        if feed.send_data(block.slice(..n)).await.is_err() {
            return;
        }
        left -= n;
        if left > 0 && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}
