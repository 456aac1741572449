//! TCP through the facade: two stacks on an in-memory link.

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use common::{
    echo_conn, echo_roundtrip, echo_server, eventually, pair, pair_custom, pair_with_link, A, B,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use ustack::net::{TcpListener, TcpStream};

fn fnv1a(h: &mut u64, data: &[u8]) {
    for b in data {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

#[tokio::test]
async fn tcp_echo() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:7").await.unwrap();
    assert_eq!(
        listener.local_addr().unwrap(),
        "0.0.0.0:7".parse::<SocketAddr>().unwrap()
    );
    tokio::spawn(echo_server(listener));
    let mut c = TcpStream::connect_with(&s1, (B, 7)).await.unwrap();
    assert_eq!(c.peer_addr().unwrap(), SocketAddr::from((B, 7)));
    assert_eq!(c.local_addr().unwrap().ip(), A);
    c.write_all(b"hello ustack").await.unwrap();
    let mut buf = [0u8; 12];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello ustack");
    let info = c.info().unwrap();
    assert_eq!(info.state, ustack::TcpState::Established);
}

#[tokio::test]
async fn tcp_half_close() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "10.0.0.2:80").await.unwrap();
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), A);
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap(); // until the client's FIN
        s.write_all(b"after your FIN: ").await.unwrap();
        s.write_all(&got).await.unwrap();
        s.shutdown().await.unwrap();
    });
    let mut c = TcpStream::connect_with(&s1, "10.0.0.2:80").await.unwrap();
    c.write_all(b"request").await.unwrap();
    c.shutdown().await.unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).await.unwrap();
    assert_eq!(resp, "after your FIN: request");
    // Reads after FIN keep returning 0.
    assert_eq!(c.read(&mut [0u8; 4]).await.unwrap(), 0);
    server.await.unwrap();
}

#[tokio::test]
async fn tcp_8mib_transfer_with_hash() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:5001").await.unwrap();
    const LEN: usize = 8 << 20;
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            fnv1a(&mut h, &buf[..n]);
            total += n;
        }
        s.write_all(&h.to_be_bytes()).await.unwrap();
        (total, h)
    });
    let mut c = TcpStream::connect_with(&s1, (B, 5001)).await.unwrap();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut sent = 0usize;
    let mut chunk = vec![0u8; 100_000];
    let mut rng = ustack::netdev::rng::SplitMix64::new(1);
    while sent < LEN {
        let n = chunk.len().min(LEN - sent);
        rng.fill(&mut chunk[..n]);
        fnv1a(&mut h, &chunk[..n]);
        c.write_all(&chunk[..n]).await.unwrap();
        sent += n;
    }
    c.shutdown().await.unwrap();
    let mut theirs = [0u8; 8];
    c.read_exact(&mut theirs).await.unwrap();
    let (total, sh) = server.await.unwrap();
    assert_eq!(total, LEN);
    assert_eq!(sh, h);
    assert_eq!(u64::from_be_bytes(theirs), h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_200_concurrent_connections() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:9").await.unwrap();
    tokio::spawn(echo_server(listener));
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let s1 = s1.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = TcpStream::connect_with(&s1, (B, 9)).await.unwrap();
            let msg = format!("connection {i}");
            c.write_all(msg.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; msg.len()];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, msg.as_bytes());
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn tcp_connection_refused() {
    let (s1, _s2) = pair().await;
    let err = TcpStream::connect_with(&s1, (B, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn tcp_addr_in_use() {
    let (_s1, s2) = pair().await;
    let _l = TcpListener::bind_with(&s2, "0.0.0.0:8080").await.unwrap();
    let err = TcpListener::bind_with(&s2, "0.0.0.0:8080")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
}

#[tokio::test(start_paused = true)]
async fn tcp_connect_timeout() {
    let (s1, _s2) = pair().await;
    // Nobody owns 10.0.0.9: the SYNs go unanswered until the retries are used up.
    let start = tokio::time::Instant::now();
    let err = TcpStream::connect_with(&s1, "10.0.0.9:80")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(
        start.elapsed() >= Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn tcp_connect_unrouted() {
    let (s1, _s2) = pair().await;
    let err = TcpStream::connect_with(&s1, "192.168.200.1:80")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NetworkUnreachable);
}

#[tokio::test]
async fn tcp_reset_by_linger_zero() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:81").await.unwrap();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        s.set_linger(Some(Duration::ZERO)).unwrap();
        assert_eq!(s.linger().unwrap(), Some(Duration::ZERO));
        // Wait until the client saw its connect succeed (an RST before that makes connect
        // itself fail with ConnectionReset, as on Linux).
        go_rx.await.unwrap();
        drop(s); // RST
    });
    let mut c = TcpStream::connect_with(&s1, (B, 81)).await.unwrap();
    go_tx.send(()).unwrap();
    server.await.unwrap();
    let err = c.read(&mut [0u8; 16]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn tcp_drop_with_unread_data_sends_rst() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:82").await.unwrap();
    let mut c = TcpStream::connect_with(&s1, (B, 82)).await.unwrap();
    let (s, _) = listener.accept().await.unwrap();
    c.write_all(b"never read").await.unwrap();
    s.readable().await.unwrap();
    drop(s); // unread data: RST, not FIN
    let err = c.read(&mut [0u8; 16]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn tcp_graceful_drop_gives_eof() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:83").await.unwrap();
    let mut c = TcpStream::connect_with(&s1, (B, 83)).await.unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    s.write_all(b"bye").await.unwrap();
    drop(s);
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"bye");
}

#[tokio::test]
async fn tcp_split_peek_try_and_options() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:84").await.unwrap();
    tokio::spawn(echo_server(listener));
    let mut c = TcpStream::connect_with(&s1, (B, 84)).await.unwrap();
    c.set_nodelay(true).unwrap();
    assert!(c.nodelay().unwrap());
    c.set_ttl(33).unwrap();
    assert_eq!(c.ttl().unwrap(), 33);
    assert_eq!(
        c.try_read(&mut [0u8; 4]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    c.writable().await.unwrap();
    assert_eq!(c.try_write(b"ping").unwrap(), 4);
    let ready = c.ready(Interest::READABLE).await.unwrap();
    assert!(ready.is_readable());
    let mut b = [0u8; 4];
    let n = c.peek(&mut b).await.unwrap();
    assert_eq!(&b[..n], &b"ping"[..n]);
    c.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping");
    {
        let (mut r, mut w) = c.split();
        w.write_all(b"split").await.unwrap();
        let mut b = [0u8; 5];
        r.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"split");
    }
    let (mut r, mut w) = c.into_split();
    let writer = tokio::spawn(async move {
        let n = w
            .write_vectored(&[std::io::IoSlice::new(b"ab"), std::io::IoSlice::new(b"cd")])
            .await
            .unwrap();
        assert_eq!(n, 4);
        w
    });
    let w = writer.await.unwrap();
    let mut b = [0u8; 4];
    r.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"abcd");
    let c = r.reunite(w).unwrap();
    assert!(c.is_write_vectored_probe());
}

trait Probe {
    fn is_write_vectored_probe(&self) -> bool;
}
impl Probe for TcpStream {
    fn is_write_vectored_probe(&self) -> bool {
        tokio::io::AsyncWrite::is_write_vectored(self)
    }
}

#[tokio::test]
async fn tcp_reunite_rejects_foreign_halves() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:85").await.unwrap();
    tokio::spawn(echo_server(listener));
    let c1 = TcpStream::connect_with(&s1, (B, 85)).await.unwrap();
    let c2 = TcpStream::connect_with(&s1, (B, 85)).await.unwrap();
    let (r1, _w1) = c1.into_split();
    let (_r2, w2) = c2.into_split();
    assert!(r1.reunite(w2).is_err());
}

#[tokio::test]
async fn tcp_transparent_listener_sees_original_destination() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_any_with(&s2).await.unwrap();
    // s1 routes everything to s2 (which does not own 203.0.113.7).
    s1.add_route("203.0.113.0/24".parse().unwrap(), Some(B))
        .unwrap();
    let client = tokio::spawn({
        let s1 = s1.clone();
        async move {
            let mut c = TcpStream::connect_with(&s1, "203.0.113.7:443")
                .await
                .unwrap();
            c.write_all(b"x").await.unwrap();
            c
        }
    });
    let (mut s, peer) = listener.accept().await.unwrap();
    assert_eq!(peer.ip(), A);
    assert_eq!(
        s.local_addr().unwrap(),
        "203.0.113.7:443".parse::<SocketAddr>().unwrap()
    );
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
    drop(client.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn tcp_transfer_over_lossy_delayed_link() {
    use ustack::netdev::mem::MemLinkConfig;
    use ustack::FaultConfig;
    let fault = |seed| FaultConfig {
        loss: 0.02,
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(2),
        seed,
        ..FaultConfig::default()
    };
    let (s1, s2, _) = pair_custom(
        MemLinkConfig::default(),
        |b| b.fault(fault(1)),
        |b| b.fault(fault(2)),
    )
    .await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:5002").await.unwrap();
    const LEN: usize = 1 << 20;
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut buf = vec![0u8; 32 * 1024];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            fnv1a(&mut h, &buf[..n]);
            total += n;
        }
        (total, h)
    });
    let mut c = TcpStream::connect_with(&s1, (B, 5002)).await.unwrap();
    let data: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    fnv1a(&mut h, &data);
    c.write_all(&data).await.unwrap();
    c.shutdown().await.unwrap();
    let (total, sh) = tokio::time::timeout(Duration::from_secs(600), server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((total, sh), (LEN, h));
    let st = s1.stats();
    assert!(
        st.tcp.retrans_segs > 0,
        "2% loss must cause retransmissions: {:?}",
        st.tcp
    );
}

/// Echo in both directions at once over a link that loses, reorders and delays packets,
/// with buffers small enough that both sides keep hitting a zero window: every byte comes
/// back in order and no connection stalls (twelve seeds of the fault injector).
#[tokio::test(start_paused = true)]
async fn echo_both_ways_over_lossy_reordering_link_with_small_buffers() {
    for seed in 0..SEEDS {
        echo_over_lossy_link(seed).await;
    }
}

const SEEDS: u64 = 12;

async fn echo_over_lossy_link(seed: u64) {
    use ustack::netdev::mem::MemLinkConfig;
    use ustack::FaultConfig;
    let fault = |seed| FaultConfig {
        loss: 0.03,
        reorder: 0.05,
        delay: Duration::from_millis(5),
        jitter: Duration::from_millis(1),
        seed,
        ..FaultConfig::default()
    };
    let (s1, s2, _) = pair_custom(
        MemLinkConfig::default(),
        |b| b.fault(fault(2 * seed + 1)),
        |b| b.fault(fault(2 * seed + 2)),
    )
    .await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:7").await.unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            s.set_recv_buffer_size(16 * 1024).unwrap();
            s.set_send_buffer_size(16 * 1024).unwrap();
            tokio::spawn(async move { echo_conn(&mut s).await });
        }
    });
    let mut tasks = Vec::new();
    for i in 0..4u64 {
        let s1 = s1.clone();
        tasks.push(tokio::spawn(async move {
            let st = TcpStream::connect_with(&s1, (B, 7)).await.unwrap();
            st.set_recv_buffer_size(16 * 1024).unwrap();
            let len = 256 * 1024 + i as usize * 777;
            echo_roundtrip(st, len, i, &format!("seed {seed}, connection {i}")).await;
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    if tokio::time::timeout(Duration::from_secs(600), all)
        .await
        .is_err()
    {
        panic!(
            "seed {seed}: an echo over the lossy link stalled\n{:?}\n{:?}",
            s1.stats().tcp,
            s2.stats().tcp
        );
    }
    assert!(s1.stats().tcp.retrans_segs > 0 && s2.stats().tcp.retrans_segs > 0);
    server.abort();
    s1.shutdown().await;
    s2.shutdown().await;
}

#[tokio::test]
async fn tcp_backpressure_waits_for_the_reader() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:86").await.unwrap();
    let mut c = TcpStream::connect_with(&s1, (B, 86)).await.unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    c.set_send_buffer_size(4096).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    // Without a reader, the sender fills the peer's window and its own buffer, then stops.
    let mut sent = 0usize;
    loop {
        match c.try_write(&[0x5a; 1024]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 4 << 20, "the send side never pushed back");
    }
    let blocked =
        tokio::time::timeout(Duration::from_millis(50), c.write_all(&[1u8; 64 * 1024])).await;
    assert!(blocked.is_err(), "write_all must wait while nobody reads");
    // A reader frees space; the writer resumes and everything arrives.
    let reader = tokio::spawn(async move {
        let mut total = 0usize;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
    });
    c.write_all(&[2u8; 64 * 1024]).await.unwrap();
    c.shutdown().await.unwrap();
    let total = reader.await.unwrap();
    // What the timed-out write_all had queued before it was dropped also arrived.
    assert!(total >= sent + 64 * 1024, "{total} < {}", sent + 64 * 1024);
}

#[tokio::test]
async fn tcp_extra_socket_options() {
    let (s1, s2) = pair().await;
    let _listener = TcpListener::bind_with(&s2, "0.0.0.0:87").await.unwrap();
    let c = TcpStream::connect_with(&s1, (B, 87)).await.unwrap();
    c.set_congestion(ustack::CcAlgorithm::Reno).unwrap();
    assert_eq!(c.congestion().unwrap(), ustack::CcAlgorithm::Reno);
    let ka = ustack::KeepaliveConfig {
        idle: Duration::from_secs(30),
        interval: Duration::from_secs(5),
        count: 3,
    };
    c.set_keepalive(Some(ka)).unwrap();
    assert_eq!(c.keepalive().unwrap(), Some(ka));
    c.set_recv_buffer_size(256 * 1024).unwrap();
    assert!(c.recv_buffer_size().unwrap() >= 64 * 1024);
    c.set_send_buffer_size(128 * 1024).unwrap();
    assert!(c.send_buffer_size().unwrap() >= 64 * 1024);
    assert_eq!(c.max_pacing_rate().unwrap(), None);
    let e = c.set_max_pacing_rate(Some(0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    c.set_max_pacing_rate(Some(1_000_000)).unwrap();
    assert_eq!(c.max_pacing_rate().unwrap(), Some(1_000_000));
    let info = c.info().unwrap();
    assert!(info.snd_mss > 0);
    // The stack does not pace; this socket does, at the cap (the in-memory link's RTT
    // would allow far more).
    assert_eq!(info.pacing_rate, 1_000_000);
    assert!(s1.stats().tcp.active_opens >= 1);
    assert!(s1.tcp_connection_count() >= 1);
}

#[tokio::test(start_paused = true)]
async fn tcp_keepalive_detects_a_dead_peer() {
    let (s1, s2, link) = pair_with_link(Default::default()).await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:88").await.unwrap();
    let mut c = TcpStream::connect_with(&s1, (B, 88)).await.unwrap();
    let _server_side = listener.accept().await.unwrap();
    c.set_keepalive(Some(ustack::KeepaliveConfig {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        count: 3,
    }))
    .unwrap();
    link.set_up(false); // the peer vanishes without a FIN or RST
    let start = tokio::time::Instant::now();
    let err = c.read(&mut [0u8; 8]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited <= Duration::from_secs(30),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn tcp_cancelled_connects_leave_nothing_behind() {
    let (s1, _s2) = pair().await;
    for _ in 0..50 {
        let r = tokio::time::timeout(
            Duration::from_millis(100),
            TcpStream::connect_with(&s1, "10.0.0.9:80"),
        )
        .await;
        assert!(r.is_err(), "nobody answers at 10.0.0.9");
    }
    assert_eq!(
        s1.tcp_connection_count(),
        0,
        "dropping a connect future releases its socket"
    );
}

#[tokio::test]
async fn tcp_listener_drop_refuses_new_connections() {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:89").await.unwrap();
    let c = TcpStream::connect_with(&s1, (B, 89)).await.unwrap();
    drop(listener);
    drop(c);
    let err = TcpStream::connect_with(&s1, (B, 89)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    // The port is free again.
    let _again = TcpListener::bind_with(&s2, "0.0.0.0:89").await.unwrap();
}

/// Reads into uninitialized buffers (hyper's pattern, `read_buf` into a `Vec`'s spare
/// capacity) return every byte in order even though each call zeroes only part of a large
/// buffer; a peek into such a buffer sees the same bytes without consuming them.
#[tokio::test]
async fn tcp_reads_into_uninitialized_buffers() {
    let (s1, s2) = pair().await;
    let l = TcpListener::bind_with(&s2, SocketAddr::from((B, 7100)))
        .await
        .unwrap();
    let len = 600 * 1024;
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    let expect = data.clone();
    let srv = tokio::spawn(async move {
        let (mut st, _) = l.accept().await.unwrap();
        st.write_all(&data).await.unwrap();
        st.shutdown().await.unwrap();
    });
    let mut st = TcpStream::connect_with(&s1, SocketAddr::from((B, 7100)))
        .await
        .unwrap();
    // Wait until a good part of the data is queued, so one call could return a lot.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut peeked = [0u8; 16];
    let n = st.peek(&mut peeked).await.unwrap();
    assert!(n > 0 && peeked[..n] == expect[..n]);
    let mut got: Vec<u8> = Vec::new();
    loop {
        got.reserve(1024 * 1024);
        let before = got.len();
        let n = st.read_buf(&mut got).await.unwrap();
        if n == 0 {
            break;
        }
        assert_eq!(got.len(), before + n);
    }
    assert_eq!(got.len(), expect.len());
    assert!(got == expect, "bytes differ");
    srv.await.unwrap();
}

/// The tokio pattern `writable().await` + `try_write` with writes that fill the send
/// buffer exactly (no partial write ever reports the buffer full): the writer that then
/// waits in `writable()` is woken when the peer's ACKs free space, and every byte arrives.
#[tokio::test(flavor = "current_thread")]
async fn writable_wakes_a_writer_that_filled_the_send_buffer_exactly() {
    // A 2 ms link each way: ACKs come back after the writer has gone to sleep.
    let (a, b) = ustack::netdev::mem::MemLink::pair(Default::default());
    let delay = ustack::FaultConfig {
        delay: Duration::from_millis(2),
        ..Default::default()
    };
    let c = ustack::Stack::builder()
        .device(a)
        .fault(delay.clone())
        .addr("10.0.0.1/24".parse().unwrap())
        .build()
        .await
        .unwrap();
    let s = ustack::Stack::builder()
        .device(b)
        .fault(delay)
        .addr("10.0.0.2/24".parse().unwrap())
        .build()
        .await
        .unwrap();
    let l = TcpListener::bind_with(&s, SocketAddr::from((B, 7301)))
        .await
        .unwrap();
    const CHUNK: usize = 16 * 1024;
    const TOTAL: usize = 64 * CHUNK;
    let writer = tokio::spawn(async move {
        let (st, _) = l.accept().await.unwrap();
        st.set_send_buffer_size(4 * CHUNK).unwrap();
        let cap = st.send_buffer_size().unwrap();
        assert_eq!(
            cap % CHUNK,
            0,
            "the buffer must hold a whole number of chunks"
        );
        let chunk = vec![0x5au8; CHUNK];
        let mut sent = 0;
        while sent < TOTAL {
            st.writable().await.unwrap();
            match st.try_write(&chunk[..(TOTAL - sent).min(CHUNK)]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        st
    });
    let mut cl = TcpStream::connect_with(&c, SocketAddr::from((B, 7301)))
        .await
        .unwrap();
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let read_all = async {
        while got < TOTAL {
            let n = cl.read(&mut buf).await.unwrap();
            assert!(n > 0, "early EOF");
            got += n;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("the writer stalled in writable()");
    let _st = writer.await.unwrap();
    assert_eq!(got, TOTAL);
}

/// `Stack::tcp_sockets` lists listeners and connections with their states and queues,
/// like `ss -tan`: a connection waiting for accept counts in its listener's Recv-Q, unread
/// bytes in the connection's, and the side that closed first ends in TIME-WAIT.
#[tokio::test]
async fn socket_table_shows_listeners_connections_and_time_wait() {
    use ustack::TcpState;
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, "0.0.0.0:88").await.unwrap();
    let mut c = TcpStream::connect_with(&s1, (B, 88)).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let client_addr = match c.local_addr().unwrap() {
        SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    let server_addr = std::net::SocketAddrV4::new(B, 88);
    // Wait until the bytes have arrived (they stay unread).
    eventually(|| s2.tcp_sockets().iter().any(|e| e.recv_q == 5)).await;
    let table = s2.tcp_sockets();
    let l = table
        .iter()
        .find(|e| e.state == TcpState::Listen)
        .expect("the listener");
    assert_eq!((l.local.port(), l.remote, l.recv_q), (88, None, 1));
    let conn = table
        .iter()
        .find(|e| e.remote == Some(client_addr))
        .expect("the connection");
    assert_eq!(
        (conn.state, conn.local, conn.recv_q, conn.orphan),
        (TcpState::Established, server_addr, 5, false)
    );
    let (mut s, _) = listener.accept().await.unwrap();
    let l = s2
        .tcp_sockets()
        .into_iter()
        .find(|e| e.state == TcpState::Listen)
        .unwrap();
    assert_eq!(l.recv_q, 0);
    // The client closes first: it ends in TIME-WAIT, the server's socket goes away.
    c.shutdown().await.unwrap();
    let mut buf = [0u8; 16];
    let mut got = 0;
    loop {
        let n = s.read(&mut buf[got..]).await.unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(&buf[..got], b"hello");
    drop(s);
    let mut eof = [0u8; 1];
    assert_eq!(c.read(&mut eof).await.unwrap(), 0);
    drop(c);
    let client_sock = || {
        s1.tcp_sockets()
            .into_iter()
            .find(|e| e.local == client_addr)
    };
    eventually(|| client_sock().is_some_and(|e| e.state == TcpState::TimeWait)).await;
    let tw = client_sock().expect("the client's socket");
    assert_eq!(
        (tw.state, tw.remote, tw.orphan),
        (TcpState::TimeWait, Some(server_addr), true)
    );
    let gone = eventually(|| {
        !s2.tcp_sockets()
            .iter()
            .any(|e| e.remote == Some(client_addr))
    })
    .await;
    assert!(gone, "the server's side of the connection was freed");
}

#[tokio::test]
async fn try_read_buf_appends_what_is_queued() {
    let (s1, s2) = pair().await;
    let l = TcpListener::bind_with(&s2, "0.0.0.0:7301").await.unwrap();
    let (c, a) = tokio::join!(TcpStream::connect_with(&s1, "10.0.0.2:7301"), l.accept());
    let mut c = c.unwrap();
    let (srv, _) = a.unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        c.write_all(&sent).await.unwrap();
        c.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    // A bounded BufMut first: no more than it has room for.
    let mut small = bytes::BufMut::limit(Vec::new(), 10);
    srv.readable().await.unwrap();
    assert_eq!(srv.try_read_buf(&mut small).unwrap(), 10);
    got.extend_from_slice(small.get_ref());
    assert_eq!(srv.try_read_buf(&mut small).unwrap(), 0, "no room left");
    loop {
        match srv.try_read_buf(&mut got) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                tokio::time::timeout(Duration::from_secs(10), srv.readable())
                    .await
                    .expect("stalled")
                    .unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
    writer.await.unwrap();
    assert!(
        got == data,
        "bytes differ ({} of {})",
        got.len(),
        data.len()
    );
}

/// Request/response with Nagle on (the default) waits on no timer, whatever the sizes: a
/// message of one full segment and a tail (2,000 bytes) used to leave its tail held
/// until the peer's delayed ACK of the full segment (40 ms per exchange once quick-ACK
/// mode ended). On tokio's paused clock, every exchange takes no time and no delayed ACK
/// fires.
#[tokio::test(start_paused = true)]
async fn request_response_with_nagle_waits_on_no_timer() {
    const ROUNDS: usize = 30;
    let sizes = [1usize, 1448, 2000, 3000, 100_000];
    for q in sizes {
        for r in sizes {
            let (s1, s2) = pair().await;
            let l = TcpListener::bind_with(&s2, "0.0.0.0:9").await.unwrap();
            let server = tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let (mut req, resp) = (vec![0u8; q], vec![2u8; r]);
                for _ in 0..ROUNDS {
                    s.read_exact(&mut req).await.unwrap();
                    s.write_all(&resp).await.unwrap();
                }
            });
            let mut c = TcpStream::connect_with(&s1, (B, 9)).await.unwrap();
            let t0 = tokio::time::Instant::now();
            let (req, mut resp) = (vec![1u8; q], vec![0u8; r]);
            for _ in 0..ROUNDS {
                c.write_all(&req).await.unwrap();
                c.read_exact(&mut resp).await.unwrap();
            }
            server.await.unwrap();
            let delacks = s1.stats().tcp.delayed_acks + s2.stats().tcp.delayed_acks;
            assert_eq!(
                delacks, 0,
                "request {q} B, response {r} B: a delayed ACK fired"
            );
            assert_eq!(
                t0.elapsed(),
                Duration::ZERO,
                "request {q} B, response {r} B"
            );
        }
    }
}

/// `TCP_QUICKACK` as tokio exposes it: false ends quick-ACK mode, so a small segment's ACK
/// waits for the delayed-ACK timer (and Nagle holds the sender's next small write until
/// then: 40 ms on tokio's paused clock); true acknowledges at once what waits, so the
/// next write leaves at once. (The receiver only peeks: a read that frees buffer space
/// may announce the larger window with an ACK of its own.)
#[tokio::test(start_paused = true)]
async fn quickack_sends_the_delayed_ack_at_once() {
    let (s1, s2) = pair().await;
    let l = TcpListener::bind_with(&s2, "0.0.0.0:9").await.unwrap();
    let (c, a) = tokio::join!(TcpStream::connect_with(&s1, (B, 9)), l.accept());
    let (mut c, (mut s, _)) = (c.unwrap(), a.unwrap());
    c.set_nodelay(false).unwrap();
    assert!(
        s.quickack().unwrap(),
        "a connection starts in quick-ACK mode"
    );
    s.set_quickack(false).unwrap();
    assert!(!s.quickack().unwrap());
    let mut b = [0u8; 4];
    for quick in [false, true] {
        c.write_all(b"a").await.unwrap();
        c.write_all(b"b").await.unwrap(); // held by Nagle until "a" is acknowledged
        assert_eq!(s.peek(&mut b).await.unwrap(), 1);
        let t0 = tokio::time::Instant::now();
        if quick {
            s.set_quickack(true).unwrap();
            assert!(s.quickack().unwrap());
        }
        while s.peek(&mut b).await.unwrap() < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let waited = t0.elapsed();
        if quick {
            assert_eq!(waited, Duration::ZERO, "the ACK was not sent at once");
        } else {
            assert!(
                waited >= Duration::from_millis(20),
                "no delayed ACK without quick-ACK mode: {waited:?}"
            );
        }
        // Start the next round with nothing queued and no ACK owed.
        s.read_exact(&mut b[..2]).await.unwrap();
        assert_eq!(&b[..2], b"ab");
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.set_quickack(false).unwrap();
    }
}
