//! Tests of the HTTP layer against local receivers on 127.0.0.1.
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};

use tidings_test_server::receiver::{Behavior, Receiver};
use tidings_test_server::tls::TlsReceiver;

use super::*;

const LIMIT: usize = 64 * 1024;

fn sender() -> HttpSender {
    HttpSender::new(EgressPolicy::allow_all_private(), 4, "tidings-test/1.0".to_owned())
}

fn post(url: &str, timeout: Duration) -> OutgoingRequest {
    OutgoingRequest {
        url: url.to_owned(),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: br#"{"n":1}"#.to_vec(),
        timeout,
        verify_tls: true,
        ca_cert: None,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn ok_response_with_body_and_headers() {
    let receiver = Receiver::start();
    let response = sender().send(&post(&receiver.url(), secs(5)), LIMIT).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"{\"ok\":true}");
    assert_eq!(response.content_type.as_deref(), Some("application/json"));
    assert_eq!(response.retry_after, None);
    assert_eq!(receiver.count(), 1);
}

#[test]
fn headers_body_and_user_agent_arrive_as_given() {
    let receiver = Receiver::start();
    let mut request = post(&receiver.url_for("/hook?tenant=a&x=1"), secs(5));
    request.headers.extend([
        ("webhook-id".to_owned(), "msg_2Lh5".to_owned()),
        ("webhook-timestamp".to_owned(), "1649367553".to_owned()),
        ("Authorization".to_owned(), "Bearer s3cr3t".to_owned()),
        ("x-tag".to_owned(), "one".to_owned()),
        ("x-tag".to_owned(), "two".to_owned()),
    ]);
    request.body = br#"{"email":"test@example.com"}"#.to_vec();
    sender().send(&request, LIMIT).unwrap();
    let recorded = receiver.requests();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook?tenant=a&x=1");
    assert_eq!(r.body, request.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("webhook-id"), Some("msg_2Lh5"));
    assert_eq!(r.header("webhook-timestamp"), Some("1649367553"));
    assert_eq!(r.header("authorization"), Some("Bearer s3cr3t"));
    assert_eq!(r.header("user-agent"), Some("tidings-test/1.0"));
    assert_eq!(r.header("content-length"), Some(request.body.len().to_string().as_str()));
    let tags: Vec<_> = r.headers.iter().filter(|(n, _)| n == "x-tag").map(|(_, v)| v.as_str()).collect();
    assert_eq!(tags, ["one", "two"]);
}

#[test]
fn server_errors_and_retry_after_are_responses() {
    let receiver = Receiver::start();
    receiver.push_script(vec![
        Behavior::Status(500),
        Behavior::StatusWithHeaders(429, vec![("Retry-After".into(), " 7 ".into())]),
        Behavior::Body(410, "gone".into()),
    ]);
    let sender = sender();
    let request = post(&receiver.url(), secs(5));
    let r = sender.send(&request, LIMIT).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (500, &b"{\"ok\":false}"[..]));
    let r = sender.send(&request, LIMIT).unwrap();
    assert_eq!((r.status, r.retry_after.as_deref()), (429, Some("7")));
    let r = sender.send(&request, LIMIT).unwrap();
    assert_eq!(
        (r.status, r.body.as_slice(), r.content_type.as_deref()),
        (410, &b"gone"[..], Some("text/plain; charset=utf-8"))
    );
}

#[test]
fn redirects_are_returned_not_followed() {
    let receiver = Receiver::start();
    let elsewhere = Receiver::start();
    receiver.set_behavior(Behavior::Redirect(elsewhere.url()));
    let response = sender().send(&post(&receiver.url(), secs(5)), LIMIT).unwrap();
    assert_eq!(response.status, 302);
    thread::sleep(Duration::from_millis(200));
    assert_eq!(elsewhere.count(), 0, "the Location was contacted");
    assert_eq!(receiver.count(), 1);
}

#[test]
fn a_hanging_receiver_times_out() {
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::Hang);
    let started = Instant::now();
    let err = sender().send(&post(&receiver.url(), Duration::from_millis(300)), LIMIT).unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind, SendErrorKind::Timeout, "{err}");
    assert!(err.message.contains("waiting for the response"), "{err}");
    assert!(took >= Duration::from_millis(290) && took < secs(3), "took {took:?}");
}

#[test]
fn a_reset_connection_is_an_io_error() {
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::Reset);
    let err = sender().send(&post(&receiver.url(), secs(5)), LIMIT).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Io, "{err}");
    receiver.set_behavior(Behavior::CloseBeforeHeaders);
    let err = sender().send(&post(&receiver.url(), secs(5)), LIMIT).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Io, "{err}");
}

#[test]
fn a_closed_port_is_a_connect_error() {
    let url = format!("http://127.0.0.1:{}/hook", closed_port());
    let started = Instant::now();
    let err = sender().send(&post(&url, secs(5)), LIMIT).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Connect, "{err}");
    assert!(started.elapsed() < secs(2));
}

#[test]
fn a_huge_body_is_cut_at_the_limit() {
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::HugeBody(50 * 1024 * 1024));
    let started = Instant::now();
    let response = sender().send(&post(&receiver.url(), secs(10)), LIMIT).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), LIMIT);
    assert!(started.elapsed() < secs(3), "took {:?}", started.elapsed());
    let empty = sender().send(&post(&receiver.url(), secs(10)), 0).unwrap();
    assert!(empty.body.is_empty());
}

/// Serves one connection: answers with a `content-length` of 100 MB, sends `sent` bytes of
/// it, then waits (up to 10 s) for the client to close. Returns whether it closed.
fn stalling_body_server(sent: usize) -> (SocketAddr, JoinHandle<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let mut response = b"HTTP/1.1 200 OK\r\ncontent-length: 104857600\r\n\r\n".to_vec();
        response.resize(response.len() + sent, b'x');
        let _ = stream.write_all(&response);
        stream.set_read_timeout(Some(secs(10))).unwrap();
        let mut rest = [0u8; 1024];
        matches!(stream.read(&mut rest), Ok(0) | Err(_)) && {
            // Ok(0) or a reset: the client is gone (a timeout would be TimedOut/WouldBlock).
            !matches!(stream.read(&mut rest), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        }
    });
    (addr, handle)
}

#[test]
fn the_rest_of_a_body_is_never_read() {
    // The receiver announces 100 MB, sends 256 KiB and stalls: reading on would time out,
    // stopping at the limit returns at once and closes the connection.
    let (addr, server) = stalling_body_server(256 * 1024);
    let mut request = post(&format!("http://{addr}/hook"), secs(5));
    request.body.clear();
    let started = Instant::now();
    let response = sender().send(&request, LIMIT).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), LIMIT);
    assert!(started.elapsed() < secs(2), "took {:?}", started.elapsed());
    assert!(server.join().unwrap(), "the connection was not closed");
}

#[test]
fn a_trickling_body_times_out() {
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::SlowBody { bytes_per_sec: 1, total: 1000 });
    let started = Instant::now();
    let err = sender().send(&post(&receiver.url(), Duration::from_millis(300)), LIMIT).unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind, SendErrorKind::Timeout, "{err}");
    assert!(err.message.contains("response body"), "{err}");
    assert!(took >= Duration::from_millis(290) && took < secs(3), "took {took:?}");
}

/// A TCP proxy on 127.0.0.1 that counts the connections it accepts.
struct CountingProxy {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl CountingProxy {
    fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping) = (Arc::clone(&accepted), Arc::clone(&stop));
        let accept = thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let upstream = TcpStream::connect(target).unwrap();
                let (client2, upstream2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                thread::spawn(move || pipe(client, upstream));
                thread::spawn(move || pipe(upstream2, client2));
            }
        });
        CountingProxy { addr, accepted, stop, accept: Some(accept) }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if TcpStream::connect(self.addr).is_ok()
            && let Some(accept) = self.accept.take()
        {
            let _ = accept.join();
        }
    }
}

#[test]
fn sequential_requests_reuse_connections() {
    let receiver = Receiver::start();
    let proxy = CountingProxy::start(receiver.addr());
    let sender = sender();
    let request = post(&format!("http://{}/hook", proxy.addr), secs(5));
    for _ in 0..50 {
        assert_eq!(sender.send(&request, LIMIT).unwrap().status, 200);
    }
    assert_eq!(receiver.count(), 50);
    let connections = proxy.accepted.load(Ordering::SeqCst);
    assert!((1..=3).contains(&connections), "{connections} connections for 50 requests");
}

#[test]
fn invalid_requests_are_refused_before_sending() {
    let receiver = Receiver::start();
    let sender = sender();
    let mut cases = Vec::new();
    for url in ["not a url", "ftp://127.0.0.1/x", "/relative", "http:///nohost"] {
        cases.push(post(url, secs(5)));
    }
    let mut zero = post(&receiver.url(), Duration::ZERO);
    zero.timeout = Duration::ZERO;
    cases.push(zero);
    for (name, value) in [
        ("content-length", "999"),
        ("Transfer-Encoding", "chunked"),
        ("host", "evil.example"),
        ("bad header", "x"),
        ("x-secret", "s3cr3t\r\ninjected: 1"),
    ] {
        let mut r = post(&receiver.url(), secs(5));
        r.headers.push((name.to_owned(), value.to_owned()));
        cases.push(r);
    }
    let mut bad_ca = post(&receiver.url(), secs(5));
    bad_ca.ca_cert = Some("not a certificate".to_owned());
    cases.push(bad_ca);
    for request in &cases {
        let err = sender.send(request, LIMIT).unwrap_err();
        assert_eq!(err.kind, SendErrorKind::InvalidRequest, "{request:?}: {err}");
        assert!(!err.message.contains("s3cr3t") && !err.message.contains("999"), "{err}");
    }
    assert_eq!(receiver.count(), 0);
    assert_eq!(sender.ca_agents(), 0);
}

#[test]
fn default_policy_refuses_loopback_without_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let policy = EgressPolicy::default();
    let sender = HttpSender::new(policy.clone(), 4, "tidings-test/1.0".to_owned());
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("https://localhost:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://127.1:{port}/hook?token=s3cr3t"),
    ] {
        let err = sender.send(&post(&url, secs(5)), LIMIT).unwrap_err();
        assert_eq!(err.kind, SendErrorKind::EgressRefused, "{url}: {err}");
        assert!(err.message.contains("loopback"), "{err}");
        assert!(!err.message.contains("s3cr3t") && !err.message.contains("/hook"), "{err}");
        assert_eq!(check_url_egress(&policy, &url).unwrap_err().kind, SendErrorKind::EgressRefused, "{url}");
    }
    // Nothing ever connected to the listener.
    let accepted = listener.accept();
    assert!(matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock), "{accepted:?}");

    let err: Error = sender.send(&post(&format!("http://127.0.0.1:{port}/"), secs(5)), LIMIT).unwrap_err().into();
    assert!(matches!(&err, Error::Delivery { kind, .. } if kind == "egress_refused"), "{err:?}");
}

#[test]
fn opened_policies_let_loopback_through() {
    let receiver = Receiver::start();
    for policy in [EgressPolicy::allow_all_private(), EgressPolicy::new(false, ["127.0.0.0/8"]).unwrap()] {
        let sender = HttpSender::new(policy.clone(), 4, "tidings-test/1.0".to_owned());
        assert_eq!(check_url_egress(&policy, &receiver.url()), Ok(()));
        assert_eq!(sender.send(&post(&receiver.url(), secs(5)), LIMIT).unwrap().status, 200);
    }
    assert_eq!(receiver.count(), 2);
}

#[test]
fn refused_addresses_are_filtered_out() {
    let addrs: Vec<SocketAddr> = ["10.0.0.1:443", "8.8.8.8:443", "[::1]:443", "[2606:4700::1111]:443"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let empty = DefaultResolver::default().empty();
    let (allowed, refused) = filter_allowed(&EgressPolicy::default(), &addrs, empty.clone());
    assert_eq!(&allowed[..], &[addrs[1], addrs[3]]);
    assert_eq!(refused.iter().map(|r| r.ip).collect::<Vec<_>>(), [addrs[0].ip(), addrs[2].ip()]);
    let (allowed, refused) = filter_allowed(&EgressPolicy::allow_all_private(), &addrs, empty.clone());
    assert_eq!((allowed.len(), refused.len()), (4, 0));
    let (allowed, refused) = filter_allowed(&EgressPolicy::default(), &addrs[..1], empty);
    assert!(allowed.is_empty());
    let shown = AllAddressesRefused { refused: refused.clone(), show: true }.to_string();
    assert_eq!(shown, "address 10.0.0.1 is private and refused by the egress policy");
    let hidden = AllAddressesRefused { refused, show: false }.to_string();
    assert_eq!(hidden, "the host resolves to a private address, refused by the egress policy");
}

#[test]
fn ureq_errors_map_to_kinds() {
    use std::io::{Error as IoError, ErrorKind};
    let io = |kind: ErrorKind| ureq::Error::Io(IoError::new(kind, "x"));
    let cases: Vec<(ureq::Error, SendErrorKind)> = vec![
        (ureq::Error::Timeout(ureq::Timeout::Connect), SendErrorKind::Timeout),
        (ureq::Error::Timeout(ureq::Timeout::RecvBody), SendErrorKind::Timeout),
        (ureq::Error::HostNotFound, SendErrorKind::Dns),
        (ureq::Error::Other(Box::new(LookupFailed("no such host".into()))), SendErrorKind::Dns),
        (
            ureq::Error::Other(Box::new(AllAddressesRefused { refused: Vec::new(), show: false })),
            SendErrorKind::EgressRefused,
        ),
        (io(ErrorKind::ConnectionRefused), SendErrorKind::Connect),
        (io(ErrorKind::HostUnreachable), SendErrorKind::Connect),
        (io(ErrorKind::TimedOut), SendErrorKind::Timeout),
        (io(ErrorKind::ConnectionReset), SendErrorKind::Io),
        (io(ErrorKind::UnexpectedEof), SendErrorKind::Io),
        (
            ureq::Error::Io(IoError::new(
                ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            )),
            SendErrorKind::Tls,
        ),
        (ureq::Error::Tls("bad"), SendErrorKind::Tls),
        (ureq::Error::BadUri("http://x/?token=s3cr3t".into()), SendErrorKind::InvalidRequest),
        (ureq::Error::ConnectionFailed, SendErrorKind::Connect),
        (ureq::Error::BodyStalled, SendErrorKind::Io),
    ];
    for (err, kind) in cases {
        let shown = err.to_string();
        let mapped = classify(err);
        assert_eq!(mapped.kind, kind, "{shown}");
        assert!(!mapped.message.contains("s3cr3t"), "{mapped}");
    }
}

#[test]
fn kinds_and_errors_convert() {
    let kinds = [
        (SendErrorKind::Timeout, "timeout"),
        (SendErrorKind::Connect, "connect"),
        (SendErrorKind::Tls, "tls"),
        (SendErrorKind::Dns, "dns"),
        (SendErrorKind::EgressRefused, "egress_refused"),
        (SendErrorKind::Io, "io"),
        (SendErrorKind::InvalidRequest, "invalid_request"),
    ];
    for (kind, name) in kinds {
        assert_eq!(kind.as_str(), name);
    }
    let err = SendError::new(SendErrorKind::Tls, "TLS failed: x");
    assert_eq!(err.to_string(), "tls: TLS failed: x");
    match Error::from(err) {
        Error::Delivery { kind, reason } => assert_eq!((kind.as_str(), reason.as_str()), ("tls", "TLS failed: x")),
        other => panic!("unexpected {other:?}"),
    }
    let mut request = post("https://user:pw@example.com:8443/hooks/a?token=s3cr3t#f", secs(1));
    request.headers.push(("authorization".into(), "Bearer s3cr3t".into()));
    let shown = format!("{request:?}");
    assert!(shown.contains("https://example.com:8443/hooks/a"), "{shown}");
    assert!(!shown.contains("s3cr3t") && !shown.contains("pw") && !shown.contains("\"n\""), "{shown}");
}

fn self_signed() -> (String, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    (cert.pem(), signing_key.serialize_pem())
}

#[test]
fn tls_verification_default_ca_cert_and_off() {
    let (cert, key) = self_signed();
    let receiver = TlsReceiver::start(&cert, &key);
    let sender = sender();

    let err = sender.send(&post(&receiver.url(), secs(5)), LIMIT).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Tls, "{err}");
    assert_eq!(receiver.count(), 0);

    let mut trusted = post(&receiver.url(), secs(5));
    trusted.ca_cert = Some(cert.clone());
    let response = sender.send(&trusted, LIMIT).unwrap();
    assert_eq!((response.status, response.body.as_slice()), (200, &b"{\"ok\":true}"[..]));
    assert_eq!(sender.send(&trusted, LIMIT).unwrap().status, 200);
    assert_eq!(sender.ca_agents(), 1, "one agent per distinct ca_cert");

    let mut unverified = post(&receiver.url(), secs(5));
    unverified.verify_tls = false;
    assert_eq!(sender.send(&unverified, LIMIT).unwrap().status, 200);
    assert_eq!(receiver.count(), 3);

    // Another certificate as ca_cert does not make this one trusted.
    let (other, _) = self_signed();
    let mut wrong = post(&receiver.url(), secs(5));
    wrong.ca_cert = Some(other);
    assert_eq!(sender.send(&wrong, LIMIT).unwrap_err().kind, SendErrorKind::Tls);
    assert_eq!(sender.ca_agents(), 2);
    assert_eq!(receiver.count(), 3);
}

#[test]
fn sender_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<HttpSender>();
    let bad = HttpSender::new(EgressPolicy::default(), 0, "bad\nagent".to_owned());
    assert_eq!(bad.user_agent, FALLBACK_USER_AGENT);
    assert_eq!(bad.max_idle_per_host, 1);
}

#[test]
fn a_response_head_over_the_limit_fails_and_a_large_request_body_goes_out_whole() {
    let receiver = Receiver::start();
    let big_header = "x".repeat(RESPONSE_HEAD_LIMIT + 1);
    receiver.set_behavior(Behavior::StatusWithHeaders(200, vec![("x-big".to_owned(), big_header)]));
    let err = sender().send(&post(&receiver.url(), secs(5)), LIMIT).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::Io, "{err}");

    // A head just under the limit is read; a body of 2 MiB (many output buffers) arrives whole.
    receiver.set_behavior(Behavior::StatusWithHeaders(200, vec![("x-big".to_owned(), "y".repeat(16 * 1024))]));
    let mut request = post(&receiver.url(), secs(10));
    request.body = vec![b'7'; 2 * 1024 * 1024];
    let response = sender().send(&request, LIMIT).unwrap();
    assert_eq!(response.status, 200);
    let recorded = receiver.requests();
    assert_eq!(recorded.last().map(|r| r.body.len()), Some(2 * 1024 * 1024));
}
