//! A small HTTP/1.1 server on std::net: one thread per connection, keep-alive,
//! `Content-Length` and chunked request bodies, `Expect: 100-continue`.
//! Handlers may also ask for a truncated answer or a connection reset, which
//! the fault injection needs.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Time allowed to finish a request once its first byte arrived. An idle
/// keep-alive connection waits without limit: closing it under a pooling
/// client (Envoy) would race with its next request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the query string has `name` with a truthy value (`1`, `true`, `yes`).
    pub fn query_flag(&self, name: &str) -> bool {
        self.query.split('&').any(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, "1"));
            k == name && matches!(v, "1" | "true" | "yes")
        })
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response { status, headers: vec![("Content-Type".into(), content_type.into())], body: body.into() }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Response::new(status, "application/json", value.to_string())
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What to do with a request.
#[derive(Debug)]
pub enum Reply {
    /// Answer normally.
    Send(Response),
    /// Send the headers with a `Content-Length` larger than the body, the
    /// body, then close.
    Truncated(Response),
    /// Close the connection without answering, with a TCP reset.
    Reset,
}

pub type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

enum ReadOutcome {
    Request(Request, bool),
    Closed,
    Bad(&'static str),
}

fn read_line(reader: &mut BufReader<TcpStream>, budget: &mut usize) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = reader.by_ref().take(*budget as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget || !buf.ends_with(b"\n") {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large or cut"));
    }
    *budget -= n;
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map(Some).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "non-UTF-8 head"))
}

fn read_request(reader: &mut BufReader<TcpStream>) -> ReadOutcome {
    let stream = reader.get_ref();
    let _ = stream.set_read_timeout(None);
    let mut budget = MAX_HEAD;
    // Wait for the first line without a deadline (idle keep-alive).
    let first = loop {
        match read_line(reader, &mut budget) {
            Ok(None) => return ReadOutcome::Closed,
            Ok(Some(line)) if line.is_empty() => continue, // tolerate stray CRLF
            Ok(Some(line)) => break line,
            Err(_) => return ReadOutcome::Closed,
        }
    };
    let _ = reader.get_ref().set_read_timeout(Some(REQUEST_TIMEOUT));
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return ReadOutcome::Bad("bad request line");
    };
    if !version.starts_with("HTTP/1.") {
        return ReadOutcome::Bad("unsupported HTTP version");
    }
    let http10 = version == "HTTP/1.0";
    let mut headers = Vec::new();
    loop {
        match read_line(reader, &mut budget) {
            Ok(Some(line)) if line.is_empty() => break,
            Ok(Some(line)) => match line.split_once(':') {
                Some((k, v)) => headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string())),
                None => return ReadOutcome::Bad("bad header line"),
            },
            Ok(None) | Err(_) => return ReadOutcome::Closed,
        }
    }
    let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let connection = get("connection").unwrap_or("").to_ascii_lowercase();
    let keep_alive = if http10 { connection.contains("keep-alive") } else { !connection.contains("close") };
    if get("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
        let _ = reader.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let chunked = get("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        match read_chunked(reader) {
            Ok(b) => b,
            Err(_) => return ReadOutcome::Bad("bad chunked body"),
        }
    } else {
        let len = match get("content-length").map(|v| v.parse::<usize>()) {
            None => 0,
            Some(Ok(n)) if n <= MAX_BODY => n,
            Some(_) => return ReadOutcome::Bad("bad content-length"),
        };
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return ReadOutcome::Closed;
        }
        body
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    ReadOutcome::Request(Request { method: method.to_string(), path, query, headers, body }, keep_alive)
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad chunk");
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    loop {
        let line = read_line(reader, &mut budget)?.ok_or_else(bad)?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad())?;
        if size == 0 {
            // Trailers until the empty line.
            loop {
                let t = read_line(reader, &mut budget)?.ok_or_else(bad)?;
                if t.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(bad());
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let end = read_line(reader, &mut budget)?.ok_or_else(bad)?;
        if !end.is_empty() {
            return Err(bad());
        }
    }
}

fn write_response(
    stream: &mut TcpStream,
    resp: &Response,
    head_only: bool,
    keep_alive: bool,
    declared_len: usize,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {declared_len}\r\n"));
    out.push_str(if keep_alive { "Connection: keep-alive\r\n\r\n" } else { "Connection: close\r\n\r\n" });
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&resp.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

/// Arms a TCP reset: with linger 0, closing the socket (dropping its last
/// handle) sends RST instead of FIN.
pub fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Serves one connection until the peer closes, a request asks to close, or
/// `alive()` turns false (checked before each request).
pub fn serve_connection(stream: TcpStream, handler: &Handler, alive: &dyn Fn() -> bool) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut writer = stream;
    let mut reader = BufReader::new(read_half);
    loop {
        match read_request(&mut reader) {
            ReadOutcome::Closed => return,
            ReadOutcome::Bad(why) => {
                let resp = Response::json(400, &serde_json::json!({"error": why}));
                let _ = write_response(&mut writer, &resp, false, false, resp.body.len());
                return;
            }
            ReadOutcome::Request(req, keep_alive) => {
                if !alive() {
                    reset(&writer);
                    return;
                }
                let head_only = req.method == "HEAD";
                match handler(&req) {
                    Reply::Send(resp) => {
                        if write_response(&mut writer, &resp, head_only, keep_alive, resp.body.len()).is_err()
                            || !keep_alive
                        {
                            return;
                        }
                    }
                    Reply::Truncated(resp) => {
                        let declared = resp.body.len() + 64;
                        let _ = write_response(&mut writer, &resp, head_only, true, declared);
                        let _ = writer.shutdown(Shutdown::Both);
                        return;
                    }
                    Reply::Reset => {
                        reset(&writer);
                        return;
                    }
                }
            }
        }
    }
}

/// Accepts connections on a plain listener forever, one thread each.
pub fn serve(listener: TcpListener, handler: Arc<Handler>) {
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(stream) = conn else { continue };
            let handler = Arc::clone(&handler);
            thread::spawn(move || serve_connection(stream, &*handler, &|| true));
        }
    });
}

/// A listener that can be closed (connections refused) and re-opened on the
/// same address, dropping its open connections when it closes.
pub struct Switchable {
    addr: SocketAddr,
    state: Mutex<SwitchState>,
    changed: Condvar,
}

struct SwitchState {
    want_open: bool,
    is_open: bool,
    conns: HashMap<u64, TcpStream>,
    next_id: u64,
}

impl Switchable {
    /// Starts accepting on an already bound listener.
    pub fn start(listener: TcpListener, handler: Arc<Handler>) -> io::Result<Arc<Switchable>> {
        let addr = listener.local_addr()?;
        let sw = Arc::new(Switchable {
            addr,
            state: Mutex::new(SwitchState { want_open: true, is_open: true, conns: HashMap::new(), next_id: 0 }),
            changed: Condvar::new(),
        });
        let me = Arc::clone(&sw);
        thread::spawn(move || me.accept_loop(Some(listener), handler));
        Ok(sw)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SwitchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn want_open(&self) -> bool {
        self.lock().want_open
    }

    fn accept_loop(self: Arc<Self>, mut first: Option<TcpListener>, handler: Arc<Handler>) {
        loop {
            // Wait until we should listen.
            {
                let mut st = self.lock();
                while !st.want_open {
                    st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            }
            let listener = match first.take() {
                Some(l) => l,
                None => match TcpListener::bind(self.addr) {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("rebinding {} failed: {e}; retrying", self.addr);
                        thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                },
            };
            self.set_open(true);
            for conn in listener.incoming() {
                let Ok(stream) = conn else { continue };
                if !self.want_open() {
                    reset(&stream);
                    break;
                }
                let Some(id) = self.register(&stream) else {
                    continue;
                };
                let me = Arc::clone(&self);
                let handler = Arc::clone(&handler);
                thread::spawn(move || {
                    let alive = || me.want_open();
                    serve_connection(stream, &*handler, &alive);
                    me.lock().conns.remove(&id);
                });
            }
            drop(listener);
            self.set_open(false);
        }
    }

    fn register(&self, stream: &TcpStream) -> Option<u64> {
        let clone = stream.try_clone().ok()?;
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.conns.insert(id, clone);
        Some(id)
    }

    fn set_open(&self, open: bool) {
        self.lock().is_open = open;
        self.changed.notify_all();
    }

    /// Opens or closes the listening socket and waits (up to 2 s) until done.
    /// Closing also shuts every open connection, so that pooled keep-alive
    /// connections do not keep answering.
    pub fn set_listening(&self, open: bool) {
        {
            let mut st = self.lock();
            if st.want_open == open && st.is_open == open {
                return;
            }
            st.want_open = open;
            if !open {
                for (_, c) in st.conns.drain() {
                    let _ = c.shutdown(Shutdown::Both);
                }
            }
        }
        self.changed.notify_all();
        if !open {
            // Wake the accept loop blocked in accept().
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut st = self.lock();
        while st.is_open != open {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self.changed.wait_timeout(st, deadline - now).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// A minimal blocking HTTP/1.1 client, for the tests.
#[cfg(test)]
pub mod client {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream};

    pub struct Conn {
        reader: BufReader<TcpStream>,
    }

    pub struct Answer {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Answer {
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
        }
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }
    }

    impl Conn {
        pub fn open(addr: SocketAddr) -> std::io::Result<Conn> {
            let s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
            Ok(Conn { reader: BufReader::new(s) })
        }

        pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<Answer> {
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let s = self.reader.get_mut();
            s.write_all(head.as_bytes())?;
            s.write_all(body)?;
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let status: u16 =
                line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(std::io::ErrorKind::InvalidData)?;
            let mut headers = Vec::new();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if self.reader.read_line(&mut h)? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    headers.push((k.to_string(), v.trim().to_string()));
                }
            }
            let mut body = vec![0u8; len];
            if method != "HEAD" {
                self.reader.read_exact(&mut body)?;
            }
            Ok(Answer { status, headers, body })
        }
    }

    pub fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> std::io::Result<Answer> {
        Conn::open(addr)?.request(method, path, body)
    }
}
