//! ustack streams with the tokio ecosystem: tokio-util codecs, hyper, axum.

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use common::{pair, B};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio_util::codec::{Framed, LinesCodec};
use ustack::net::{TcpListener, TcpStream};

#[tokio::test]
async fn framed_lines_codec() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:1000").await.unwrap();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut f = Framed::new(s, LinesCodec::new());
        while let Some(Ok(line)) = f.next().await {
            f.send(line.to_uppercase()).await.unwrap();
        }
    });
    let c = TcpStream::connect_with(&s1, (B, 1000)).await.unwrap();
    let mut f = Framed::new(c, LinesCodec::new());
    f.send("hello").await.unwrap();
    f.send("framed world").await.unwrap();
    assert_eq!(f.next().await.unwrap().unwrap(), "HELLO");
    assert_eq!(f.next().await.unwrap().unwrap(), "FRAMED WORLD");
}

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("hello {} {}", req.method(), req.uri().path());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// A ustack pair with a hyper server (`hello`) on the second stack's port 80 and a hyper
/// client connected to it from the first: the stacks and the client's sender.
async fn hyper_pair() -> (
    ustack::Stack,
    ustack::Stack,
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
) {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:80").await.unwrap();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(s), hyper::service::service_fn(hello))
            .await
            .unwrap();
    });
    let stream = TcpStream::connect_with(&s1, (B, 80)).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    (s1, s2, sender)
}

#[tokio::test]
async fn hyper_client_and_server() {
    let (_s1, _s2, mut sender) = hyper_pair().await;
    let req = Request::builder()
        .uri("/ustack")
        .header("host", "10.0.0.2")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello GET /ustack");
}

/// hyper writes a response's head and body with one `write_vectored`; it must leave as one
/// write. If each buffer were sent on its own, Nagle's algorithm (on by default, as on
/// Linux) would hold the small body until the head is acknowledged, and once the client
/// leaves quick-ACK mode every response would wait for its delayed ACK (40 ms). On tokio's
/// paused clock nothing here waits on a timer: 30 keep-alive requests take no time.
#[tokio::test(start_paused = true)]
async fn hyper_responses_do_not_wait_for_delayed_acks() {
    let (s1, _s2, mut sender) = hyper_pair().await;
    let delacks0 = s1.stats().tcp.delayed_acks;
    let t0 = tokio::time::Instant::now();
    for i in 0..30 {
        let req = Request::builder()
            .uri(format!("/r{i}"))
            .header("host", "10.0.0.2")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("hello GET /r{i}").as_bytes());
    }
    assert_eq!(
        s1.stats().tcp.delayed_acks - delacks0,
        0,
        "a response waited for the client's delayed ACK"
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_millis(40),
        "30 requests took {:?} of (paused) time",
        t0.elapsed()
    );
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_serve_on_a_ustack_listener() {
    use axum::routing::get;
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:3000").await.unwrap();
    let app = axum::Router::new().route("/", get(|| async { "Hello from axum on ustack" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let stream = TcpStream::connect_with(&s1, (B, 3000)).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("/")
        .header("host", "10.0.0.2")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"Hello from axum on ustack");
}

#[tokio::test]
async fn tls_over_ustack_with_tokio_rustls() {
    tls_exchange(1).await;
}

/// The TLS handshake's flights (several records in one `write_vectored`) and small
/// request/response exchanges after it wait on no timer: on tokio's paused clock they take
/// no time and the client's delayed-ACK timer never fires.
#[tokio::test(start_paused = true)]
async fn tls_handshake_and_exchanges_do_not_wait_for_delayed_acks() {
    tls_exchange(20).await;
}

/// A TLS server echoing `rounds` 5-byte messages (prefixed with "secret ") over a ustack
/// pair, then closing; on a paused clock, checks that nothing waited for a delayed ACK.
async fn tls_exchange(rounds: usize) {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    let ck = rcgen::generate_simple_self_signed(vec!["ustack.test".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let server_cfg = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:443").await.unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_cfg));
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut buf = [0u8; 5];
        for _ in 0..rounds {
            tls.read_exact(&mut buf).await.unwrap();
            let mut reply = b"secret ".to_vec();
            reply.extend_from_slice(&buf);
            tls.write_all(&reply).await.unwrap();
        }
        tls.shutdown().await.unwrap();
    });
    let paused_at = tokio::time::Instant::now();
    let delacks0 = s1.stats().tcp.delayed_acks + s2.stats().tcp.delayed_acks;
    let tcp = TcpStream::connect_with(&s1, (B, 443)).await.unwrap();
    let connector = TlsConnector::from(Arc::new(client_cfg));
    let mut tls = connector
        .connect(ServerName::try_from("ustack.test").unwrap(), tcp)
        .await
        .unwrap();
    let mut resp = [0u8; 12];
    for i in 0..rounds {
        let msg = format!("hel{:02}", i % 100);
        tls.write_all(msg.as_bytes()).await.unwrap();
        tls.read_exact(&mut resp).await.unwrap();
        assert_eq!(&resp[..], format!("secret {msg}").as_bytes());
    }
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    if rounds > 1 {
        let delacks = s1.stats().tcp.delayed_acks + s2.stats().tcp.delayed_acks - delacks0;
        assert_eq!(delacks, 0, "an exchange waited for a delayed ACK");
        let took = paused_at.elapsed();
        assert!(took < std::time::Duration::from_millis(40), "took {took:?}");
    }
}
