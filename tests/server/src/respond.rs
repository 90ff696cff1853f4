//! Building blocks of the servers' answers: reading a request body whole (bounded), a
//! complete response, and a streamed one whose body a task of the server's runtime feeds, so
//! that it can trickle, pause or stop midway. `hyper` frames them (`content-length`, `HEAD`,
//! bodiless statuses, `connection: close`).

use std::convert::Infallible;
use std::future::Future;

use http_body_util::channel::{Channel, Sender};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use crate::server::Body;

/// The feeding end of a streamed body.
pub(crate) type Feed = Sender<Bytes, Infallible>;

/// Reads a request body whole; `None` if the client went away or it exceeds `limit` bytes.
pub(crate) async fn read_body(body: Incoming, limit: usize) -> Option<Bytes> {
    Limited::new(body, limit).collect().await.ok().map(|collected| collected.to_bytes())
}

/// A complete answer: `status`, these headers (invalid names or values are left out) and
/// `body`. A status outside 100..=999 is sent as 500.
pub(crate) fn full(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(*name), HeaderValue::try_from(*value)) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// A `200` announcing `length` body bytes whose body `feed` sends; the feeding task ends
/// when the client stops reading and the connection goes, or when the server stops.
pub(crate) fn streamed<F, Fut>(headers: &[(&str, &str)], length: usize, feed: F) -> Response<Body>
where
    F: FnOnce(Feed) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sender, channel) = Channel::<Bytes, Infallible>::new(1);
    tokio::spawn(feed(sender));
    let mut response = full(200, headers, Bytes::new());
    *response.body_mut() = channel.boxed();
    response.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// `400` for a request whose body could not be read, closing the connection.
pub(crate) fn bad_request() -> Response<Body> {
    let mut response = full(400, &[], Bytes::new());
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
