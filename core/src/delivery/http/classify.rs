//! What went wrong with a request, in [`SendErrorKind`]s: `ureq`'s errors and the I/O errors
//! under them, mapped to the kinds a delivery record keeps.

use super::resolve::{AllAddressesRefused, LookupFailed};
use super::{SendError, SendErrorKind};

/// The phase a `ureq` timeout belongs to, for messages.
pub(super) fn phase(timeout: ureq::Timeout) -> &'static str {
    match timeout {
        ureq::Timeout::Resolve => "resolving the host",
        ureq::Timeout::Connect => "connecting",
        ureq::Timeout::SendRequest => "sending the request",
        ureq::Timeout::SendBody => "sending the request body",
        ureq::Timeout::RecvResponse => "waiting for the response",
        ureq::Timeout::RecvBody => "receiving the response body",
        _ => "the exchange",
    }
}

/// Maps a `ureq` error to a [`SendError`] without copying request data into the message.
pub(super) fn classify(err: ureq::Error) -> SendError {
    use SendErrorKind as K;
    match err {
        ureq::Error::Timeout(t) => SendError::new(K::Timeout, format!("timed out {}", phase(t))),
        ureq::Error::HostNotFound => SendError::new(K::Dns, "the host name did not resolve to any address"),
        ureq::Error::Other(inner) => {
            if let Some(refused) = inner.downcast_ref::<AllAddressesRefused>() {
                SendError::new(K::EgressRefused, refused.to_string())
            } else if let Some(lookup) = inner.downcast_ref::<LookupFailed>() {
                SendError::new(K::Dns, lookup.to_string())
            } else {
                SendError::new(K::Io, format!("the request failed: {inner}"))
            }
        }
        ureq::Error::Io(e) => classify_io(&e),
        ureq::Error::Rustls(e) => SendError::new(K::Tls, format!("TLS failed: {e}")),
        ureq::Error::Tls(what) => SendError::new(K::Tls, format!("TLS failed: {what}")),
        ureq::Error::TlsRequired => SendError::new(K::Tls, "TLS required but not established"),
        ureq::Error::Pem(_) => SendError::invalid("ca_cert is not valid PEM"),
        ureq::Error::ConnectionFailed => SendError::new(K::Connect, "the connection could not be opened"),
        ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_) => SendError::invalid("the URL is not usable"),
        ureq::Error::Http(e) => SendError::invalid(format!("the request is invalid: {e}")),
        ureq::Error::BodyExceedsLimit(_) => SendError::invalid("the body does not match its length"),
        ureq::Error::Protocol(_) => SendError::new(K::Io, "the response is not valid HTTP/1.1"),
        ureq::Error::LargeResponseHeader(_, limit) => {
            SendError::new(K::Io, format!("the response head is larger than {limit} bytes"))
        }
        ureq::Error::Decompress(coding, e) => {
            SendError::new(K::Io, format!("the {coding} response body could not be decoded: {}", e.kind()))
        }
        ureq::Error::BodyStalled => SendError::new(K::Io, "the response body stalled"),
        ureq::Error::StatusCode(status) => SendError::new(K::Io, format!("unexpected status {status}")),
        other => SendError::new(K::Io, format!("the request failed: {other}")),
    }
}

/// Maps an I/O error: TLS failures (rustls errors wrapped by the handshake or a record read),
/// connection failures, time-outs, and everything else as [`SendErrorKind::Io`].
pub(super) fn classify_io(err: &std::io::Error) -> SendError {
    use SendErrorKind as K;
    use std::io::ErrorKind as E;
    if let Some(tls) = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return SendError::new(K::Tls, format!("TLS failed: {tls}"));
    }
    match err.kind() {
        E::ConnectionRefused => SendError::new(K::Connect, "the connection was refused"),
        E::HostUnreachable | E::NetworkUnreachable | E::NetworkDown | E::AddrNotAvailable => {
            SendError::new(K::Connect, format!("the host is unreachable: {err}"))
        }
        E::TimedOut | E::WouldBlock => SendError::new(K::Timeout, "timed out"),
        E::ConnectionReset => SendError::new(K::Io, "the connection was reset by the receiver"),
        E::ConnectionAborted => SendError::new(K::Io, "the connection was aborted"),
        E::UnexpectedEof => SendError::new(K::Io, "the receiver closed the connection early"),
        E::BrokenPipe => SendError::new(K::Io, "the receiver closed the connection while the request was sent"),
        _ => SendError::new(K::Io, format!("I/O error: {err}")),
    }
}
