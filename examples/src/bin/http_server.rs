//! An axum application served by ustack over a TUN device:
//! - `GET /`: a small HTML page with the stack's live counters;
//! - `GET /bytes/N`: N bytes where byte i is `i % 251`, streamed (never buffered whole);
//! - `POST /echo`: the request body back;
//! - `GET /stats`: the counters as JSON.
//!
//! ```sh
//! sudo http_server --tun tun0 --addr 10.0.0.2/24 --host-addr 10.0.0.1/24 --port 80
//! curl http://10.0.0.2/stats
//! ```

use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use http_body::{Frame, SizeHint};
use ustack::net::TcpListener;
use ustack::Stack;
use ustack_examples::{
    init_tracing, pattern_buffer, pattern_chunk, shutdown_signal, stack_counters, StackArgs,
};

/// HTTP server (axum) on ustack: pages, a byte stream, echo, counters.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    stack: StackArgs,
    /// TCP port to listen on.
    #[arg(long, default_value_t = 80)]
    port: u16,
}

/// Largest body `POST /echo` accepts.
const ECHO_LIMIT: usize = 64 * 1024 * 1024;
/// Largest chunk `GET /bytes/N` hands to hyper at once.
const CHUNK: usize = 64 * 1024;

struct AppState {
    stack: Stack,
    started: Instant,
    requests: AtomicU64,
    bytes_streamed: AtomicU64,
    pattern: Bytes,
    /// The index page's table of stack counters and when it was made (see
    /// [`COUNTERS_TTL`]).
    counters: Mutex<Option<(Instant, Arc<str>)>>,
}

/// How long the index page reuses its table of stack counters. Making it (every counter
/// of `Stack::stats`, through JSON) costs about ten times what serving the page does;
/// the page refreshes every 2 s.
const COUNTERS_TTL: Duration = Duration::from_millis(100);

type Shared = Arc<AppState>;

/// `GET /bytes/N` body: the pattern, produced chunk by chunk as hyper asks for it, with
/// an exact length (so the response has a Content-Length).
struct PatternBody {
    state: Shared,
    pattern: Bytes,
    offset: u64,
    len: u64,
}

impl http_body::Body for PatternBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let left = self.len - self.offset;
        if left == 0 {
            return Poll::Ready(None);
        }
        let n = left.min(CHUNK as u64) as usize;
        let chunk = pattern_chunk(&self.pattern, self.offset, n);
        self.offset += n as u64;
        // Counted as produced: a HEAD request or a client that goes away counts only
        // what was really handed to the connection.
        self.state
            .bytes_streamed
            .fetch_add(n as u64, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.offset == self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.offset)
    }
}

async fn bytes(State(st): State<Shared>, Path(n): Path<u64>) -> Response {
    let body = PatternBody {
        pattern: st.pattern.clone(),
        state: st,
        offset: 0,
        len: n,
    };
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::new(body),
    )
        .into_response()
}

async fn echo(body: Bytes) -> Bytes {
    body
}

fn stats_json(st: &AppState) -> String {
    format!(
        "{{\"http\":{{\"requests\":{},\"bytes_streamed\":{},\"uptime_secs\":{:.3}}},\"stack\":{}}}",
        st.requests.load(Ordering::Relaxed),
        st.bytes_streamed.load(Ordering::Relaxed),
        st.started.elapsed().as_secs_f64(),
        st.stack.stats().to_json()
    )
}

async fn stats(State(st): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        stats_json(&st),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The rows of the index page's counter table, made at most once per [`COUNTERS_TTL`].
fn counter_rows(st: &AppState) -> Arc<str> {
    let mut cached = st.counters.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((made, rows)) = &*cached {
        if made.elapsed() < COUNTERS_TTL {
            return rows.clone();
        }
    }
    let mut rows = String::new();
    for (k, v) in stack_counters(&st.stack, true) {
        rows.push_str(&format!(
            "<tr><td>{}</td><td align=right>{}</td></tr>\n",
            escape(&k),
            escape(&v)
        ));
    }
    let rows: Arc<str> = rows.into();
    *cached = Some((Instant::now(), rows.clone()));
    rows
}

async fn index(State(st): State<Shared>) -> Html<String> {
    let rows = counter_rows(&st);
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=utf-8><meta http-equiv=refresh content=2>\
         <title>ustack</title></head><body>\n<h1>Served by ustack</h1>\n\
         <p>A user-space TCP/IPv4 stack in Rust, on a TUN device. Requests served: {} \
         &middot; bytes streamed: {} &middot; up {:.0} s</p>\n\
         <p><a href=/stats>/stats</a> (JSON) &middot; <a href=/bytes/1048576>/bytes/1048576</a> \
         &middot; POST /echo</p>\n<h2>Stack counters (non-zero)</h2>\n<table>\n{rows}</table>\n</body></html>\n",
        st.requests.load(Ordering::Relaxed),
        st.bytes_streamed.load(Ordering::Relaxed),
        st.started.elapsed().as_secs_f64()
    ))
}

async fn count(State(st): State<Shared>, req: Request, next: Next) -> Response {
    st.requests.fetch_add(1, Ordering::Relaxed);
    next.run(req).await
}

fn app(state: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/bytes/{n}", get(bytes))
        .route("/echo", post(echo))
        .route("/stats", get(stats))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(DefaultBodyLimit::max(ECHO_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

// One thread: every connection goes through one stack, which has one lock; a
// multi-thread runtime only adds lock hand-offs and cross-thread wake-ups (README,
// "Benchmarks").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ustack_examples::Failure> {
    init_tracing();
    let cli = Cli::parse();
    let stack = cli.stack.build().await?;
    let state = Arc::new(AppState {
        stack: stack.clone(),
        started: Instant::now(),
        requests: AtomicU64::new(0),
        bytes_streamed: AtomicU64::new(0),
        pattern: pattern_buffer(CHUNK),
        counters: Mutex::new(None),
    });
    let listener = TcpListener::bind(("0.0.0.0", cli.port)).await?;
    println!(
        "http_server: ready on http://{}:{}/",
        cli.stack.own_addr(&stack),
        cli.port
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serve = axum::serve(listener, app(state.clone())).with_graceful_shutdown(async {
        let _ = stop_rx.await;
    });
    let mut server = tokio::spawn(serve.into_future());
    tokio::select! {
        r = &mut server => r??,
        _ = shutdown_signal() => {
            let _ = stop_tx.send(());
            // Graceful: finish requests in flight, but do not wait forever for idle clients.
            if tokio::time::timeout(Duration::from_secs(5), &mut server).await.is_err() {
                tracing::warn!("connections still open after 5 s; closing them");
                server.abort();
            }
        }
    }
    println!(
        "http_server: stopped after {} requests",
        state.requests.load(Ordering::Relaxed)
    );
    stack.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ustack_netdev::mem::{MemLink, MemLinkConfig};

    /// The index page's counter table is made once per `COUNTERS_TTL`: a counter that
    /// moves within that time shows on the page only once the table is remade.
    #[tokio::test]
    async fn the_counter_table_is_reused_for_its_ttl_then_remade() {
        let (a, b) = MemLink::pair(MemLinkConfig::default());
        let build = |dev, addr: &str| {
            Stack::builder()
                .device(dev)
                .addr(addr.parse().unwrap())
                .build()
        };
        let server = build(a, "10.9.0.1/24").await.unwrap();
        let peer = build(b, "10.9.0.2/24").await.unwrap();
        let st = AppState {
            stack: server,
            started: Instant::now(),
            requests: AtomicU64::new(0),
            bytes_streamed: AtomicU64::new(0),
            pattern: Bytes::new(),
            counters: Mutex::new(None),
        };
        let to = "10.9.0.1".parse().unwrap();
        let echoes = |rows: &str| {
            rows.lines()
                .find(|l| l.contains(">icmp.in_echos<"))
                .map(str::to_string)
        };
        peer.ping(to, Duration::from_secs(2)).await.unwrap();
        let t0 = Instant::now();
        let first = counter_rows(&st);
        assert!(echoes(&first).is_some_and(|l| l.contains(">1<")), "{first}");
        peer.ping(to, Duration::from_secs(2)).await.unwrap();
        let again = counter_rows(&st);
        if t0.elapsed() < COUNTERS_TTL {
            // The same table: the second echo request is not in it yet.
            assert!(Arc::ptr_eq(&first, &again));
        }
        tokio::time::sleep(COUNTERS_TTL + Duration::from_millis(20)).await;
        let later = counter_rows(&st);
        assert!(!Arc::ptr_eq(&first, &later));
        assert!(echoes(&later).is_some_and(|l| l.contains(">2<")), "{later}");
    }
}
