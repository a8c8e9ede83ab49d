//! A fake Fonnte API on loopback, for tests and benchmarks.
//!
//! A real HTTP/1.1 server on `127.0.0.1:0` (std only, one thread per connection,
//! keep-alive) that records every request and answers the shapes Fonnte's API
//! documentation (docs.fonnte.com) shows for `/send` and `/device`, including every
//! documented error reason. By default it emulates Fonnte:
//! it checks the token, the device connection and the quota, and answers `/send` and
//! `/device`. Tests can queue exact replies with [`FonnteFake::push_reply`] or fix one
//! with [`FonnteFake::always`].
//!
//! Like the real service, it can call the webhooks set in its "dashboard"
//! ([`FonnteFake::set_webhooks`]): the message-status webhook after each accepted
//! send (the states of [`FonnteFake::set_message_states`]), and the connect webhook
//! when the device connects or disconnects ([`FonnteFake::set_connected`]). The
//! payloads are those of Fonnte's webhook documentation (docs.fonnte.com: "webhook
//! update message status", "webhook connect"): status calls carry `device`, `id`,
//! `stateid`, `status`, `state` (first `id` and `status`; then `id`, `stateid` and
//! `state`; then `stateid` and `state` only); connect calls carry `device`,
//! `status` (`connect`/`disconnect`), `token`, `timestamp`, `reason`. Each call is
//! a JSON `POST`; its answer's status is kept ([`FonnteFake::webhook_calls`]).
//!
//! A dev-dependency of the crates whose tests talk to Fonnte, and of the bench.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long after accepting a message the fake reports its first state.
pub const STATUS_DELAY: Duration = Duration::from_millis(500);

/// The token [`FonnteFake::start`] accepts.
pub const TOKEN: &str = "fake-device-token-d41d8cd9";

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `POST`, usually.
    pub method: String,
    /// The path, e.g. `/send`.
    pub path: String,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `application/x-www-form-urlencoded` body, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (url_decode(k), url_decode(v))
            })
            .collect()
    }

    /// The form field `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// What the fake answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// HTTP 200 with this JSON body.
    Json(String),
    /// Any status, content type and body.
    Http {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
    /// Read the request, then say nothing for this long, then close.
    Hang(Duration),
    /// Close the connection without answering.
    Close,
}

impl Reply {
    /// Fonnte's success answer for one target, with message id `id`.
    pub fn success(id: u64, target: &str) -> Reply {
        Reply::Json(format!(
            r#"{{"detail":"success! message in queue","id":["{id}"],"process":"pending","requestid":{},"status":true,"target":["{target}"]}}"#,
            id + 1_000_000
        ))
    }

    /// Fonnte's failure answer: `{"reason":…,"status":false}`.
    pub fn reason(reason: &str) -> Reply {
        Reply::Json(format!(
            r#"{{"reason":{},"requestid":331477110,"status":false}}"#,
            json_string(reason)
        ))
    }

    /// An HTTP status with an HTML body, like a proxy's error page.
    pub fn html(status: u16) -> Reply {
        Reply::Http {
            status,
            content_type: "text/html; charset=utf-8".into(),
            body: format!("<html><body><h1>{status}</h1><p>nginx</p></body></html>").into_bytes(),
        }
    }
}

/// Every `reason` Fonnte is documented to answer (its API documentation's known
/// reason strings).
pub const DOCUMENTED_REASONS: &[&str] = &[
    "token invalid",
    "unknown token",
    "unknown user",
    "request invalid on disconnected device",
    "insufficient quota",
    "target invalid",
    "input invalid",
    "url invalid",
    "file format not supported",
    "file size must under 4MB",
    "JSON format invalid",
    "request timeout",
    "id required",
    "invalid device",
    "incorrect OTP",
];

struct State {
    token: String,
    device: String,
    requests: Mutex<Vec<Request>>,
    script: Mutex<VecDeque<Reply>>,
    always: Mutex<Option<Reply>>,
    connected: AtomicBool,
    quota: AtomicI64,
    next_id: AtomicU64,
    stop: AtomicBool,
    /// Connections accepted (the Drop's wake-up connection included).
    connections: AtomicU64,
    /// The message-status and connect webhook URLs, when set.
    webhooks: Mutex<(Option<String>, Option<String>)>,
    /// The states reported for each accepted message, in order.
    message_states: Mutex<Vec<String>>,
    /// Webhook calls made: (url, body, HTTP status or 0 when unanswered).
    calls: Mutex<Vec<WebhookCall>>,
}

/// One webhook call the fake made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookCall {
    pub url: String,
    pub body: String,
    /// The answer's HTTP status; 0 when there was none (connection refused, …).
    pub status: u16,
}

/// A running fake; stops when dropped.
pub struct FonnteFake {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl FonnteFake {
    /// Starts a fake that accepts [`TOKEN`], with a connected device and 1000 quota.
    pub fn start() -> FonnteFake {
        FonnteFake::with_token(TOKEN)
    }

    /// Starts a fake that accepts `token`.
    pub fn with_token(token: &str) -> FonnteFake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            token: token.to_owned(),
            device: "6285700000001".into(),
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            always: Mutex::new(None),
            connected: AtomicBool::new(true),
            quota: AtomicI64::new(1000),
            next_id: AtomicU64::new(80_367_170),
            stop: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            webhooks: Mutex::new((None, None)),
            message_states: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
        });
        let accept_state = Arc::clone(&state);
        let accept = thread::Builder::new()
            .name("fonnte-fake".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_state.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    accept_state.connections.fetch_add(1, Ordering::SeqCst);
                    let state = Arc::clone(&accept_state);
                    let _ = thread::Builder::new()
                        .name("fonnte-fake-conn".into())
                        .spawn(move || serve(&state, stream));
                }
            })
            .expect("spawn fonnte-fake");
        FonnteFake {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// The base URL, for `FONNTE_URL`: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token this fake accepts, for `FONNTE_TOKEN`.
    pub fn token(&self) -> &str {
        &self.state.token
    }

    /// Settings lookup pairs that point a `Settings` at this fake.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("WHATSAPP_DRIVER", "fonnte".into()),
            ("FONNTE_URL", self.url()),
            ("FONNTE_TOKEN", self.state.token.clone()),
        ]
    }

    /// Answers the next request with `reply` (queued replies are used in order, then
    /// the emulation resumes).
    pub fn push_reply(&self, reply: Reply) {
        lock(&self.state.script).push_back(reply);
    }

    /// Answers every request with `reply` (after queued ones); `None` restores the
    /// emulation.
    pub fn always(&self, reply: Option<Reply>) {
        *lock(&self.state.always) = reply;
    }

    /// Connects or disconnects the emulated device; a change calls the connect
    /// webhook (when set) before this returns.
    pub fn set_connected(&self, connected: bool) {
        let was = self.state.connected.swap(connected, Ordering::SeqCst);
        let url = lock(&self.state.webhooks).1.clone();
        if let (Some(url), true) = (url, was != connected) {
            let body = format!(
                r#"{{"device":"{}","status":"{}","token":{},"timestamp":{},"reason":"{}"}}"#,
                self.state.device,
                if connected { "connect" } else { "disconnect" },
                json_string(&self.state.token),
                unix_now(),
                if connected { "" } else { "logout" }
            );
            call_webhook(&self.state, &url, body);
        }
    }

    /// Sets the webhook URLs of the emulated device, as in Fonnte's dashboard:
    /// message status and connect (`None`: not set).
    pub fn set_webhooks(&self, status: Option<String>, connect: Option<String>) {
        *lock(&self.state.webhooks) = (status, connect);
    }

    /// The states the message-status webhook reports for each message `/send`
    /// accepts from now on, in order: e.g. `["sent", "delivered", "read"]` or
    /// `["invalid"]`. Empty (the default): no status call.
    pub fn set_message_states(&self, states: &[&str]) {
        *lock(&self.state.message_states) = states.iter().map(|s| (*s).to_owned()).collect();
    }

    /// The webhook calls made so far, in order.
    pub fn webhook_calls(&self) -> Vec<WebhookCall> {
        lock(&self.state.calls).clone()
    }

    /// Sets the emulated quota.
    pub fn set_quota(&self, quota: i64) {
        self.state.quota.store(quota, Ordering::SeqCst);
    }

    /// The emulated quota left.
    pub fn quota(&self) -> i64 {
        self.state.quota.load(Ordering::SeqCst)
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state.requests).clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// The requests to `/send`.
    pub fn sent(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/send")
            .collect()
    }
}

impl Drop for FonnteFake {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves one connection: requests one after another (HTTP/1.1 keep-alive, as the
/// real API behind its web server) until the client closes it, asks for `Connection:
/// close`, stays idle for 30 s, or a scripted reply hangs up.
fn serve(state: &Arc<State>, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(&stream);
    let mut out = &stream;
    while !state.stop.load(Ordering::SeqCst) {
        let Some(request) = read_request(&mut reader) else {
            break;
        };
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        lock(&state.requests).push(request.clone());
        let reply = lock(&state.script)
            .pop_front()
            .or_else(|| lock(&state.always).clone())
            .unwrap_or_else(|| emulate(state, &request));
        let accepted = match (&reply, request.path.as_str()) {
            (Reply::Json(body), "/send") => accepted_id(body),
            _ => None,
        };
        let kept = match reply {
            Reply::Json(body) => {
                write_response(&mut out, 200, "application/json", body.as_bytes(), close)
            }
            Reply::Http {
                status,
                content_type,
                body,
            } => write_response(&mut out, status, &content_type, &body, close),
            Reply::Hang(d) => {
                let until = Instant::now() + d;
                while Instant::now() < until && !state.stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(20));
                }
                false
            }
            Reply::Close => false,
        };
        if let Some(id) = accepted {
            report_states(state, id);
        }
        if close || !kept {
            break;
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// What real Fonnte would answer, for the documented cases.
fn emulate(state: &State, request: &Request) -> Reply {
    if request.header("authorization") != Some(state.token.as_str()) {
        return Reply::reason("token invalid");
    }
    match request.path.as_str() {
        "/device" => Reply::Json(format!(
            r#"{{"device":"{}","device_status":"{}","expired":"18 November 2029","messages":16785,"name":"fake","package":"Free","quota":"{}","status":true}}"#,
            state.device,
            if state.connected.load(Ordering::SeqCst) {
                "connect"
            } else {
                "disconnect"
            },
            state.quota.load(Ordering::SeqCst)
        )),
        "/send" => {
            if !state.connected.load(Ordering::SeqCst) {
                return Reply::reason("request invalid on disconnected device");
            }
            let target = request.field("target").unwrap_or_default();
            if target.is_empty() || !target.bytes().all(|b| b.is_ascii_digit()) {
                return Reply::reason("target invalid");
            }
            if request.field("message").is_none_or(|m| m.is_empty()) {
                return Reply::reason("input invalid");
            }
            if state.quota.fetch_sub(1, Ordering::SeqCst) <= 0 {
                state.quota.fetch_add(1, Ordering::SeqCst);
                return Reply::reason("insufficient quota");
            }
            let id = state.next_id.fetch_add(1, Ordering::SeqCst);
            Reply::success(id, &target)
        }
        _ => Reply::html(404),
    }
}

fn read_request(reader: &mut BufReader<&TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    let mut header_bytes = 0;
    loop {
        let mut h = String::new();
        let n = reader.read_line(&mut h).ok()?;
        header_bytes += n;
        if n == 0 || header_bytes > 64 * 1024 {
            return None;
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length.min(16 * 1024 * 1024)];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// Writes one response; returns whether the connection stays open for another
/// request.
fn write_response(
    stream: &mut &TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    close: bool,
) -> bool {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        match status {
            200 => "OK",
            404 => "Not Found",
            500 => "Internal Server Error",
            502 => "Bad Gateway",
            _ => "Status",
        },
        body.len(),
        if close { "close" } else { "keep-alive" }
    );
    // One write: head and body in separate segments would wait for the client's
    // delayed ACK (Nagle) on a kept-alive connection. The client may hang up early
    // (a body over its limit): not an error here.
    let mut response = head.into_bytes();
    response.extend_from_slice(body);
    stream
        .write_all(&response)
        .and_then(|()| stream.flush())
        .is_ok()
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The message id of a success answer to `/send` (`"id":["80367170"]`).
fn accepted_id(body: &str) -> Option<String> {
    if !body.contains(r#""status":true"#) {
        return None;
    }
    let rest = &body[body.find(r#""id":[""#)? + 7..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// Reports the configured states of message `id` to the message-status webhook,
/// after the `/send` answer, on a thread of its own (as Fonnte does, later).
fn report_states(state: &Arc<State>, id: String) {
    let Some(url) = lock(&state.webhooks).0.clone() else {
        return;
    };
    let states = lock(&state.message_states).clone();
    if states.is_empty() {
        return;
    }
    let state = Arc::clone(state);
    let _ = thread::Builder::new()
        .name("fonnte-fake-status".into())
        .spawn(move || {
            // Fonnte reports a message once its device has sent it, not while it
            // answers `/send`; the sender has recorded the id by then.
            thread::sleep(STATUS_DELAY);
            let state_id = format!("3EB0{id}");
            for (i, s) in states.iter().enumerate() {
                // First the id and its status; then the stateid is linked to the id
                // with the first state; after that the stateid alone names the message.
                let body = match i {
                    0 => format!(
                        r#"{{"device":"{}","id":"{id}","stateid":"","status":"{s}","state":""}}"#,
                        state.device
                    ),
                    1 => format!(
                        r#"{{"device":"{}","id":"{id}","stateid":"{state_id}","status":"","state":"{s}"}}"#,
                        state.device
                    ),
                    _ => format!(
                        r#"{{"device":"{}","stateid":"{state_id}","state":"{s}"}}"#,
                        state.device
                    ),
                };
                call_webhook(&state, &url, body);
            }
        });
}

/// POSTs `body` (JSON) to `url` (`http://host:port/path?query`) and records the
/// answer's status.
fn call_webhook(state: &State, url: &str, body: String) {
    let status = post_json(url, &body).unwrap_or(0);
    lock(&state.calls).push(WebhookCall {
        url: url.to_owned(),
        body,
        status,
    });
}

fn post_json(url: &str, body: &str) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(host).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fonnte-fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}
