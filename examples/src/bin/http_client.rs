//! Fetches a URL through ustack: a hyper 1.x HTTP/1.1 client over a ustack `TcpStream`
//! (through hyper-util's `TokioIo`). Prints the status, the headers, the body length and
//! its SHA-256.
//!
//! ```sh
//! sudo http_client --tun tun0 --addr 10.0.0.2/24 http://10.0.0.1:8000/
//! ```

use std::time::Instant;

use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use ustack::net::TcpStream;
use ustack_examples::{human_bytes, human_rate, init_tracing, StackArgs};

/// HTTP GET through ustack; prints status, headers and a SHA-256 of the body.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    stack: StackArgs,
    /// URL to fetch: http://HOST/PATH or http://HOST:PORT/PATH; HOST is an IPv4 address, or a
    /// name resolved through the stack with the `--dns` servers.
    url: String,
    /// Fail (exit status 1) unless the response status is 2xx.
    #[arg(long)]
    fail: bool,
    /// Seconds to wait for the whole exchange.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> Result<(), ustack_examples::Failure> {
    init_tracing();
    let cli = Cli::parse();
    let uri: hyper::Uri = cli.url.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs are supported".into());
    }
    let host = uri.host().ok_or("URL has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();

    let stack = cli.stack.build().await?;
    let fetch = async {
        let start = Instant::now();
        let stream = TcpStream::connect((host.as_str(), port)).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let conn_task = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!("connection error: {e}");
            }
        });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or(host.clone());
        let req = Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, "ustack-http_client/0.1")
            .body(Empty::<Bytes>::new())?;
        let mut resp = sender.send_request(req).await?;
        println!("{:?} {}", resp.version(), resp.status());
        for (k, v) in resp.headers() {
            println!("{k}: {}", v.to_str().unwrap_or("<binary>"));
        }
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        while let Some(frame) = resp.body_mut().frame().await {
            if let Ok(data) = frame?.into_data() {
                len += data.len() as u64;
                hasher.update(&data);
            }
        }
        let elapsed = start.elapsed();
        let digest: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        println!();
        println!(
            "body: {len} bytes ({}) in {:.3} s, {}",
            human_bytes(len),
            elapsed.as_secs_f64(),
            human_rate(len, elapsed)
        );
        println!("sha256: {digest}");
        drop(sender);
        let _ = conn_task.await;
        Ok::<_, Box<dyn std::error::Error>>(resp.status())
    };
    let result = tokio::time::timeout(std::time::Duration::from_secs(cli.timeout), fetch).await;
    stack.shutdown().await;
    let status = match result {
        Ok(r) => r?,
        Err(_) => return Err(format!("timed out after {} s", cli.timeout).into()),
    };
    if cli.fail && !status.is_success() {
        return Err(format!("HTTP status {status}").into());
    }
    Ok(())
}
