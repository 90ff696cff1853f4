//! The receiver's own tests, with a raw HTTP/1.1 client over one socket: what a client sees
//! on the wire for each behavior, and what the receiver records.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use super::{Behavior, Receiver};

/// A minimal raw HTTP/1.1 client over one connection.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl Client {
    fn connect(receiver: &Receiver) -> Client {
        let stream = TcpStream::connect(receiver.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client { stream, buf: Vec::new() }
    }

    fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).unwrap();
    }

    fn post(&mut self, path: &str, body: &str, extra: &str) {
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        );
        self.send(raw.as_bytes());
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn response(&mut self) -> io::Result<Response> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        };
        let head = String::from_utf8(self.buf.drain(..head_end + 4).collect()).unwrap();
        let mut lines = head.trim_end().split("\r\n");
        let status_line = lines.next().unwrap();
        // `HTTP/1.0` when answering an HTTP/1.0 request.
        assert!(status_line.starts_with("HTTP/1.1 ") || status_line.starts_with("HTTP/1.0 "), "{status_line}");
        let status = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let len: usize = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
        while self.buf.len() < len {
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let body = self.buf.drain(..len).collect();
        Ok(Response { status, headers, body })
    }

    /// Reads until end of stream or error; the bytes read and how it ended.
    fn read_to_end(&mut self) -> io::Result<usize> {
        let mut total = 0;
        loop {
            match self.fill()? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn answers_200_and_records_the_request() {
    let receiver = Receiver::start();
    assert!(receiver.url().starts_with("http://127.0.0.1:"));
    assert!(receiver.url().ends_with("/hook"));
    assert_eq!(receiver.url_for("x"), format!("http://127.0.0.1:{}/x", receiver.port()));
    let mut client = Client::connect(&receiver);
    client.post("/hook?a=1", r#"{"n":1}"#, "Webhook-Id: msg_1\r\n");
    let response = client.response().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"{\"ok\":true}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert!(receiver.wait_for(1, SECOND));
    let recorded = receiver.requests();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook?a=1");
    assert_eq!(r.body, br#"{"n":1}"#);
    assert_eq!(r.body_text(), r#"{"n":1}"#);
    assert_eq!(r.header("webhook-id"), Some("msg_1"));
    assert_eq!(r.header("WEBHOOK-ID"), Some("msg_1"));
    assert!(r.headers.iter().any(|(n, _)| n == "content-type"), "names are lowercased");
    assert_eq!(r.header("x-missing"), None);
    assert_eq!(r.behavior, Behavior::Status(200));
    assert_eq!(receiver.requests_to("/hook").len(), 1);
    assert_eq!(receiver.requests_to("/other").len(), 0);
    receiver.clear();
    assert_eq!(receiver.count(), 0);
}

#[test]
fn keeps_the_connection_alive_and_pipelines() {
    let receiver = Receiver::start();
    let mut client = Client::connect(&receiver);
    client.post("/hook", "one", "");
    assert_eq!(client.response().unwrap().status, 200);
    client.post("/hook", "two", "");
    assert_eq!(client.response().unwrap().status, 200);
    // Two requests in one write.
    client.send(b"POST /p HTTP/1.1\r\nContent-Length: 1\r\n\r\naPOST /p HTTP/1.1\r\nContent-Length: 1\r\n\r\nb");
    assert_eq!(client.response().unwrap().status, 200);
    assert_eq!(client.response().unwrap().status, 200);
    assert!(receiver.wait_for(4, SECOND));
    let bodies: Vec<_> = receiver.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies, [b"one".to_vec(), b"two".to_vec(), b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn connection_close_is_honoured() {
    let receiver = Receiver::start();
    let mut client = Client::connect(&receiver);
    client.post("/hook", "x", "Connection: close\r\n");
    let response = client.response().unwrap();
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(client.read_to_end().unwrap(), 0, "server closes after the answer");

    let mut old = Client::connect(&receiver);
    old.send(b"GET /hook HTTP/1.0\r\n\r\n");
    assert_eq!(old.response().unwrap().status, 200);
    assert_eq!(old.read_to_end().unwrap(), 0, "HTTP/1.0 closes by default");
}

#[test]
fn script_runs_before_the_default() {
    let receiver = Receiver::start();
    receiver.push_script(vec![Behavior::Status(500), Behavior::Status(500)]);
    let mut client = Client::connect(&receiver);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        client.post("/hook", "{}", "");
        let response = client.response().unwrap();
        if response.status == 500 {
            assert_eq!(response.body, b"{\"ok\":false}");
        }
        statuses.push(response.status);
    }
    assert_eq!(statuses, [500, 500, 200]);
    let behaviors: Vec<_> = receiver.requests().into_iter().map(|r| r.behavior).collect();
    assert_eq!(behaviors, [Behavior::Status(500), Behavior::Status(500), Behavior::Status(200)]);
    receiver.set_behavior(Behavior::Status(503));
    client.post("/hook", "{}", "");
    assert_eq!(client.response().unwrap().status, 503);
}

#[test]
fn per_path_behaviors_and_scripts() {
    let receiver = Receiver::start();
    receiver.set_behavior_for("/a", Behavior::Status(410));
    receiver.push_script_for("/b", vec![Behavior::Status(502)]);
    receiver.push_script(vec![Behavior::Status(201)]);
    let mut client = Client::connect(&receiver);
    let mut status = |path: &str| {
        client.post(path, "", "");
        client.response().unwrap().status
    };
    assert_eq!(status("/a"), 410, "path setting wins over the global script");
    assert_eq!(status("/a?x=1"), 410, "query ignored");
    assert_eq!(status("/b"), 502, "path script first");
    assert_eq!(status("/b"), 201, "then the global script");
    assert_eq!(status("/b"), 200, "then the default");
    assert_eq!(status("/a"), 410);
    assert_eq!(receiver.requests_to("/a").len(), 3);
}

#[test]
fn status_with_headers_reaches_the_client() {
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::StatusWithHeaders(429, vec![("Retry-After".into(), "7".into())]));
    let mut client = Client::connect(&receiver);
    client.post("/hook", "{}", "");
    let response = client.response().unwrap();
    assert_eq!(response.status, 429);
    assert_eq!(response.header("retry-after"), Some("7"));
}

#[test]
fn body_redirect_and_bodiless_statuses() {
    let receiver = Receiver::start();
    receiver.push_script(vec![
        Behavior::Body(418, "teapot".into()),
        Behavior::Redirect("http://127.0.0.1:1/elsewhere".into()),
        Behavior::Status(204),
    ]);
    let mut client = Client::connect(&receiver);
    client.post("/hook", "", "");
    let r = client.response().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (418, &b"teapot"[..]));
    client.post("/hook", "", "");
    let r = client.response().unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://127.0.0.1:1/elsewhere"));
    client.post("/hook", "", "");
    let r = client.response().unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-length"), None);
    // The connection is still in sync after the bodiless answer.
    client.post("/hook", "", "");
    assert_eq!(client.response().unwrap().status, 200);
}

#[test]
fn hang_holds_the_socket_until_drop() {
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::Hang);
    let mut client = Client::connect(&receiver);
    client.stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    client.post("/hook", "{}", "");
    let err = client.response().unwrap_err();
    assert!(matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{err:?}");
    assert!(receiver.wait_for(1, SECOND), "a hung request is still recorded");
    assert_eq!(receiver.requests()[0].behavior, Behavior::Hang);
    client.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    drop(receiver);
    let dropped_in = started.elapsed();
    assert!(dropped_in < SECOND, "drop took {dropped_in:?}");
    assert_eq!(client.read_to_end().unwrap(), 0, "the socket is closed on drop");
}

#[test]
fn delay_answers_late() {
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::Delay(Duration::from_millis(200), 202));
    let mut client = Client::connect(&receiver);
    let started = Instant::now();
    client.post("/hook", "{}", "");
    assert_eq!(client.response().unwrap().status, 202);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn drop_interrupts_a_long_delay() {
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::Delay(Duration::from_secs(60), 200));
    let mut client = Client::connect(&receiver);
    client.post("/hook", "{}", "");
    assert!(receiver.wait_for(1, SECOND));
    let started = Instant::now();
    drop(receiver);
    assert!(started.elapsed() < SECOND);
    assert!(client.response().is_err());
}

#[test]
fn reset_is_seen_by_the_client() {
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::Reset);
    let mut client = Client::connect(&receiver);
    client.post("/hook", "{}", "");
    let outcome = client.read_to_end();
    assert!(receiver.wait_for(1, SECOND));
    match &outcome {
        Ok(n) => assert_eq!(*n, 0, "nothing is written before the reset"),
        Err(e) => {
            assert!(matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted), "{e:?}")
        }
    }
    #[cfg(target_os = "linux")]
    assert_eq!(outcome.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
}

#[test]
fn close_before_headers_is_a_clean_eof() {
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::CloseBeforeHeaders);
    let mut client = Client::connect(&receiver);
    client.post("/hook", "{}", "");
    assert_eq!(client.read_to_end().unwrap(), 0);
    assert_eq!(receiver.count(), 1);
}

#[test]
fn slow_body_trickles() {
    let receiver = Receiver::start();
    receiver.set_behavior(Behavior::SlowBody { bytes_per_sec: 50, total: 10 });
    let mut client = Client::connect(&receiver);
    let started = Instant::now();
    client.post("/hook", "{}", "");
    let response = client.response().unwrap();
    let took = started.elapsed();
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), 10);
    assert!(took >= Duration::from_millis(170), "{took:?}");
    // Headers come before the body is complete.
    client.post("/hook", "{}", "");
    while !client.buf.windows(4).any(|w| w == b"\r\n\r\n") {
        client.fill().unwrap();
    }
    let head_at = started.elapsed();
    client.response().unwrap();
    assert!(started.elapsed().saturating_sub(head_at) >= Duration::from_millis(100));
}

#[test]
fn huge_body_is_sent_whole() {
    let receiver = Receiver::start();
    let size = 5 * 1024 * 1024 + 3;
    receiver.set_behavior(Behavior::HugeBody(size));
    let mut client = Client::connect(&receiver);
    client.post("/hook", "{}", "");
    let response = client.response().unwrap();
    assert_eq!(response.header("content-length"), Some(size.to_string().as_str()));
    assert_eq!(response.body.len(), size);
    client.post("/hook", "{}", "");
    // A client that stops reading does not keep the receiver from stopping.
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    drop(receiver);
    assert!(started.elapsed() < SECOND);
}

#[test]
fn chunked_request_body_is_decoded() {
    let receiver = Receiver::start();
    let mut client = Client::connect(&receiver);
    client.send(
        b"POST /hook HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
          4\r\nWiki\r\n5;ext=1\r\npedia\r\na\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    assert_eq!(client.response().unwrap().status, 200);
    client.post("/hook", "after", "");
    assert_eq!(client.response().unwrap().status, 200);
    assert!(receiver.wait_for(2, SECOND));
    let last_two: Vec<_> = receiver.requests().into_iter().rev().take(2).collect();
    assert_eq!(last_two[1].body, b"Wikipedia0123456789");
    assert_eq!(last_two[0].body, b"after");
}

#[test]
fn expect_continue_and_bad_requests() {
    let receiver = Receiver::start();
    let mut client = Client::connect(&receiver);
    client.send(b"POST /hook HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
    let interim = client.response().unwrap();
    assert_eq!(interim.status, 100);
    client.send(b"hi");
    assert_eq!(client.response().unwrap().status, 200);
    assert!(receiver.wait_for(1, SECOND));
    assert_eq!(receiver.requests()[0].body, b"hi");

    let mut client = Client::connect(&receiver);
    client.send(b"POST /hook HTTP/1.1\r\nContent-Length: nope\r\n\r\n");
    assert_eq!(client.response().unwrap().status, 400);
    assert_eq!(client.read_to_end().unwrap(), 0);
    assert_eq!(receiver.count(), 1, "bad requests are not recorded");
}

#[test]
fn wait_for_times_out_without_busy_looping() {
    let receiver = Receiver::start();
    let started = Instant::now();
    assert!(!receiver.wait_for(1, Duration::from_millis(150)));
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(receiver.wait_for(0, Duration::ZERO));
    let addr = receiver.addr();
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(b"GET /late HTTP/1.1\r\n\r\n").unwrap();
        let mut buf = [0u8; 256];
        let _ = stream.read(&mut buf);
    });
    assert!(receiver.wait_for(1, Duration::from_secs(5)));
    assert_eq!(receiver.requests()[0].path, "/late");
    sender.join().unwrap();
}

#[test]
fn many_receivers_start_and_stop_quickly() {
    let started = Instant::now();
    for _ in 0..20 {
        let receiver = Receiver::start();
        let mut client = Client::connect(&receiver);
        client.post("/hook", "{}", "");
        assert_eq!(client.response().unwrap().status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}
