//! The DNS stub resolver against a small DNS server on the peer stack (in memory).

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{echo_server, pair_custom};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::dns::{wire, DnsConfig};
use ustack::net::{lookup_host_with, TcpListener, TcpStream, UdpSocket};
use ustack::netdev::mem::MemLinkConfig;
use ustack::Stack;

/// Appends a resource record with a TTL of 60 s: `owner` and `rdata` as wire bytes.
fn record(m: &mut Vec<u8>, owner: &[u8], rtype: u16, rdata: &[u8]) {
    record_ttl(m, owner, rtype, 60, rdata)
}

fn record_ttl(m: &mut Vec<u8>, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) {
    m.extend_from_slice(owner);
    m.extend_from_slice(&rtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&ttl.to_be_bytes());
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(rdata);
}

/// The answer to `query` with `flags` and `records` (count, bytes).
fn answer(query: &[u8], flags: u16, records: (u16, &[u8])) -> Vec<u8> {
    let mut m = query.to_vec();
    m[2..4].copy_from_slice(&flags.to_be_bytes());
    m[6..8].copy_from_slice(&records.0.to_be_bytes());
    m[10..12].copy_from_slice(&[0, 0]); // no additional records (an OPT is not echoed)
    m.extend_from_slice(records.1);
    m
}

/// Serves a few names on `sock`; counts the queries it gets.
async fn dns_server(sock: UdpSocket, queries: Arc<AtomicUsize>) {
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            return;
        };
        queries.fetch_add(1, Ordering::Relaxed);
        let q = &buf[..n];
        let Ok((name, end)) = wire::read_name(q, wire::HEADER_LEN) else {
            continue;
        };
        // The UDP payload an EDNS(0) OPT record after the question advertises (RFC 6891).
        let edns = (q[10..12] == [0, 1] && q.get(end + 4..end + 7) == Some(&[0, 0, 41]))
            .then(|| {
                q.get(end + 7..end + 9)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
            })
            .flatten();
        let q = &q[..end + 4];
        let qname: &[u8] = &[0xc0, 12];
        let mut rr = Vec::new();
        let reply = match name.as_str() {
            "www.example.test" => {
                record(&mut rr, qname, 1, &[10, 0, 0, 1]);
                answer(q, 0x8180, (1, &rr))
            }
            "alias.example.test" => {
                // alias -> www (spelled out), then www's address.
                let www = b"\x03www\x07example\x04test\x00";
                record(&mut rr, qname, 5, www);
                record(&mut rr, www, 1, &[10, 0, 0, 1]);
                answer(q, 0x8180, (2, &rr))
            }
            "short.example.test" => {
                record_ttl(&mut rr, qname, 1, 1, &[10, 0, 0, 1]);
                answer(q, 0x8180, (1, &rr))
            }
            "nocache.example.test" => {
                record_ttl(&mut rr, qname, 1, 0, &[10, 0, 0, 1]);
                answer(q, 0x8180, (1, &rr))
            }
            "missing.example.test" => answer(q, 0x8183, (0, &[])),
            // NXDOMAIN and NODATA with the zone's SOA (TTL 60, MINIMUM 1): cacheable for
            // 1 s (RFC 2308).
            "gone.example.test" | "nodata.example.test" => {
                let mut soa = vec![0, 0];
                for v in [1u32, 7200, 3600, 1_209_600, 1] {
                    soa.extend_from_slice(&v.to_be_bytes());
                }
                record(&mut rr, b"\x07example\x04test\x00", 6, &soa);
                let rcode = if name.starts_with("gone") { 3 } else { 0 };
                let mut m = answer(q, 0x8180 | rcode, (0, &[]));
                m[8..10].copy_from_slice(&[0, 1]);
                m.extend_from_slice(&rr);
                m
            }
            // 60 addresses (976 bytes) in one datagram when the query advertised room
            // for them.
            "big.example.test" if edns.is_some_and(|size| size >= 1000) => {
                for i in 0..60 {
                    record(&mut rr, qname, 1, &[10, 0, 1, i]);
                }
                answer(q, 0x8180, (60, &rr))
            }
            // A server that knows no EDNS: a format error to a query with an OPT record.
            "old.example.test" if edns.is_some() => answer(q, 0x8181, (0, &[])),
            "old.example.test" => {
                record(&mut rr, qname, 1, &[10, 0, 0, 7]);
                answer(q, 0x8180, (1, &rr))
            }
            // Cut to fit a datagram (TC): two of the addresses, or none, or cut inside
            // the second record; the whole answer comes over TCP (`tcp_dns_server`).
            "big.example.test" | "broken-tcp.example.test" => {
                record(&mut rr, qname, 1, &[10, 0, 1, 0]);
                record(&mut rr, qname, 1, &[10, 0, 1, 1]);
                answer(q, 0x8380, (2, &rr))
            }
            "cut.example.test" => {
                record(&mut rr, qname, 1, &[10, 0, 1, 0]);
                record(&mut rr, qname, 1, &[10, 0, 1, 1]);
                let mut m = answer(q, 0x8380, (2, &rr));
                m.truncate(m.len() - 3);
                m
            }
            "empty-tc.example.test" | "wrong-tcp.example.test" => answer(q, 0x8380, (0, &[])),
            "v6only.example.test" => answer(q, 0x8180, (0, &[])),
            "silent.example.test" => continue,
            "spoofed.example.test" => {
                // First an answer with another id, then garbage, then the real one.
                let mut wrong = q.to_vec();
                wrong[0] ^= 0xff;
                record(&mut rr, qname, 1, &[6, 6, 6, 6]);
                sock.send_to(&answer(&wrong, 0x8180, (1, &rr)), from)
                    .await
                    .unwrap();
                sock.send_to(&[0xff; 7], from).await.unwrap();
                rr.clear();
                record(&mut rr, qname, 1, &[10, 0, 0, 1]);
                answer(q, 0x8180, (1, &rr))
            }
            _ => answer(q, 0x8182, (0, &[])), // SERVFAIL
        };
        let _ = sock.send_to(&reply, from).await;
    }
}

/// Serves DNS over TCP on 10.0.0.1:53 (RFC 7766: each message behind its two-byte
/// length): the whole answers of the names the UDP server truncates (60 addresses for
/// `big` and `cut`, more than a 512-byte datagram holds), `www` as over UDP, an answer
/// with the wrong id for `wrong-tcp`; `broken-tcp` and `empty-tc` get the connection
/// closed without an answer. Counts the queries it reads.
async fn tcp_dns_server(stack: &Stack) -> Arc<AtomicUsize> {
    let l = TcpListener::bind_with(stack, "10.0.0.1:53").await.unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let count = queries.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                s.read_exact(&mut len).await?;
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                s.read_exact(&mut q).await?;
                count.fetch_add(1, Ordering::Relaxed);
                let Ok((name, end)) = wire::read_name(&q, wire::HEADER_LEN) else {
                    return Ok(());
                };
                let q = &q[..end + 4];
                let qname: &[u8] = &[0xc0, 12];
                let mut rr = Vec::new();
                let reply = match name.as_str() {
                    "big.example.test" | "cut.example.test" => {
                        for i in 0..60 {
                            record(&mut rr, qname, 1, &[10, 0, 1, i]);
                        }
                        answer(q, 0x8180, (60, &rr))
                    }
                    "www.example.test" => {
                        record(&mut rr, qname, 1, &[10, 0, 0, 1]);
                        answer(q, 0x8180, (1, &rr))
                    }
                    "wrong-tcp.example.test" => {
                        let mut wrong = q.to_vec();
                        wrong[0] ^= 0xff;
                        answer(&wrong, 0x8180, (0, &[]))
                    }
                    _ => return Ok(()),
                };
                s.write_all(&(reply.len() as u16).to_be_bytes()).await?;
                s.write_all(&reply).await?;
                s.shutdown().await
            });
        }
        std::io::Result::Ok(())
    });
    queries
}

/// The server stack (10.0.0.1, DNS server and a TCP echo on port 7500) and the client
/// stack (10.0.0.2, resolving through 10.0.0.1).
async fn setup() -> (Stack, Stack, Arc<AtomicUsize>) {
    let (server, client, _) = pair_custom(
        MemLinkConfig::default(),
        |b| b,
        |b| b.dns("10.0.0.1".parse().unwrap()),
    )
    .await;
    let queries = Arc::new(AtomicUsize::new(0));
    // Bound before the first query can arrive (a query to a closed port would only be
    // answered by the resolver's retry, a timeout later).
    let sock = UdpSocket::bind_with(&server, "10.0.0.1:53").await.unwrap();
    tokio::spawn(dns_server(sock, queries.clone()));
    let l = TcpListener::bind_with(&server, "10.0.0.1:7500")
        .await
        .unwrap();
    tokio::spawn(echo_server(l));
    (server, client, queries)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

async fn lookup(stack: &Stack, host: &str) -> std::io::Result<Vec<SocketAddr>> {
    tokio::time::timeout(Duration::from_secs(20), lookup_host_with(stack, host))
        .await
        .expect("lookup hung")
        .map(|a| a.collect())
}

#[tokio::test]
async fn names_resolve_through_the_stack() {
    let (server, client, queries) = setup().await;
    // Case does not matter; a trailing dot is allowed.
    assert_eq!(
        lookup(&client, "WWW.Example.Test.:81").await.unwrap(),
        [sa("10.0.0.1:81")]
    );
    // A CNAME is followed.
    assert_eq!(
        lookup(&client, "alias.example.test:82").await.unwrap(),
        [sa("10.0.0.1:82")]
    );
    assert_eq!(queries.load(Ordering::Relaxed), 2);
    // Within its TTL (60 s) an answer comes from the cache, whatever the spelling.
    assert_eq!(
        lookup(&client, "www.example.test:80").await.unwrap(),
        [sa("10.0.0.1:80")]
    );
    let tuple: Vec<_> = lookup_host_with(&client, ("www.example.test", 83))
        .await
        .unwrap()
        .collect();
    assert_eq!(tuple, [sa("10.0.0.1:83")]);
    assert_eq!(queries.load(Ordering::Relaxed), 2);
    assert_eq!(client.dns_cached(), 2);
    // Numbers and localhost need no server.
    assert_eq!(
        lookup(&client, "10.9.8.7:1").await.unwrap(),
        [sa("10.9.8.7:1")]
    );
    assert_eq!(
        lookup(&client, "localhost:5").await.unwrap(),
        [sa("127.0.0.1:5")]
    );
    assert_eq!(queries.load(Ordering::Relaxed), 2);

    // connect takes a name, for TCP and UDP alike.
    let mut s = TcpStream::connect_with(&client, "alias.example.test:7500")
        .await
        .unwrap();
    assert_eq!(s.peer_addr().unwrap(), sa("10.0.0.1:7500"));
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping");
    let u = UdpSocket::bind_with(&client, "0.0.0.0:0").await.unwrap();
    u.connect("www.example.test:9").await.unwrap();
    assert_eq!(u.peer_addr().unwrap(), sa("10.0.0.1:9"));
    // send_to takes a name as well.
    let far = UdpSocket::bind_with(&server, "10.0.0.1:10").await.unwrap();
    let v = UdpSocket::bind_with(&client, "0.0.0.0:0").await.unwrap();
    v.send_to(b"by name", ("alias.example.test", 10))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), far.recv_from(&mut buf))
        .await
        .expect("datagram sent by name")
        .unwrap();
    assert_eq!(&buf[..n], b"by name");
}

#[tokio::test]
async fn failures_say_what_went_wrong() {
    let (server, client, queries) = setup().await;
    let e = lookup(&client, "missing.example.test:80")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = lookup(&client, "v6only.example.test:80").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = TcpStream::connect_with(&client, "missing.example.test:7500")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // Names DNS cannot carry or that are no host names, and a port that is not a number.
    for bad in [
        "bad..name:80",
        "x.-:99999",
        "[::1]:80",
        "sp ace.test:80",
        &format!("{}.test:80", "a".repeat(64)),
    ] {
        let e = lookup(&client, bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
    }
    // A stack without a DNS server says so.
    let e = lookup(&server, "www.example.test:80").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("no DNS server"), "{e}");

    // A server that never answers: every attempt times out.
    client.set_dns(DnsConfig {
        timeout: Duration::from_millis(200),
        attempts: 3,
        ..client.dns()
    });
    let before = queries.load(Ordering::Relaxed);
    let e = lookup(&client, "silent.example.test:80").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert_eq!(
        queries.load(Ordering::Relaxed) - before,
        3,
        "one query per attempt"
    );
    // SERVFAIL from the only server: tried each attempt, then given up.
    let before = queries.load(Ordering::Relaxed);
    let e = lookup(&client, "unknown.example.test:80")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other, "{e}");
    assert!(e.to_string().contains("rcode 2"), "{e}");
    assert_eq!(queries.load(Ordering::Relaxed) - before, 3);
    // No route to the server: the send error's kind.
    client.set_dns(DnsConfig {
        servers: vec!["192.0.2.53:53".parse().unwrap()],
        ..client.dns()
    });
    let e = lookup(&client, "www.example.test:80").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NetworkUnreachable, "{e}");
}

#[tokio::test]
async fn answers_that_do_not_match_the_query_are_ignored() {
    let (_server, client, _) = setup().await;
    assert_eq!(
        lookup(&client, "spoofed.example.test:80").await.unwrap(),
        [sa("10.0.0.1:80")]
    );
}

#[tokio::test]
async fn the_next_server_is_asked_when_one_does_not_answer() {
    let (_server, client, queries) = setup().await;
    // Nothing listens on port 5353 of the server stack: that server never answers.
    client.set_dns(DnsConfig {
        servers: vec![sa4("10.0.0.1:5353"), sa4("10.0.0.1:53")],
        timeout: Duration::from_millis(200),
        attempts: 1,
        ..DnsConfig::default()
    });
    assert_eq!(
        lookup(&client, "www.example.test:80").await.unwrap(),
        [sa("10.0.0.1:80")]
    );
    assert_eq!(queries.load(Ordering::Relaxed), 1);
}

fn sa4(s: &str) -> std::net::SocketAddrV4 {
    s.parse().unwrap()
}

#[tokio::test]
async fn answers_are_kept_for_their_ttl() {
    let (_server, client, queries) = setup().await;
    let asked = || queries.load(Ordering::Relaxed);
    // TTL 0: never kept.
    for n in 1..=2 {
        lookup(&client, "nocache.example.test:1").await.unwrap();
        assert_eq!(asked(), n);
    }
    // TTL 1 s: kept for a second.
    lookup(&client, "short.example.test:1").await.unwrap();
    lookup(&client, "short.example.test:1").await.unwrap();
    assert_eq!(asked(), 3);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    lookup(&client, "short.example.test:1").await.unwrap();
    assert_eq!(asked(), 4);
    // set_dns empties the cache; max_ttl zero keeps nothing.
    lookup(&client, "www.example.test:1").await.unwrap();
    assert_eq!((asked(), client.dns_cached()), (5, 2));
    client.set_dns(DnsConfig {
        max_ttl: Duration::ZERO,
        ..client.dns()
    });
    assert_eq!(client.dns_cached(), 0);
    lookup(&client, "www.example.test:1").await.unwrap();
    lookup(&client, "www.example.test:1").await.unwrap();
    assert_eq!((asked(), client.dns_cached()), (7, 0));
}

#[tokio::test]
async fn negative_answers_are_kept_as_their_soa_allows() {
    let (_server, client, queries) = setup().await;
    let asked = || queries.load(Ordering::Relaxed);
    // Without an SOA, NXDOMAIN is not kept: asked each time.
    for n in 1..=2 {
        let e = lookup(&client, "missing.example.test:1").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(asked(), n);
    }
    // With one, NXDOMAIN and NODATA are kept for the SOA's MINIMUM (1 s), with their
    // errors.
    for name in ["gone.example.test:1", "nodata.example.test:1"] {
        let first = lookup(&client, name).await.unwrap_err();
        let before = asked();
        let again = lookup(&client, name).await.unwrap_err();
        assert_eq!(asked(), before, "{name} came from the cache");
        assert_eq!(again.kind(), ErrorKind::NotFound);
        assert_eq!(again.to_string(), first.to_string());
    }
    assert!(lookup(&client, "gone.example.test:1")
        .await
        .unwrap_err()
        .to_string()
        .contains("does not exist"));
    assert!(lookup(&client, "nodata.example.test:1")
        .await
        .unwrap_err()
        .to_string()
        .contains("no IPv4 address"));
    assert_eq!(asked(), 4);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    lookup(&client, "gone.example.test:1").await.unwrap_err();
    assert_eq!(asked(), 5, "expired after 1 s");
    // max_negative_ttl zero keeps none.
    client.set_dns(DnsConfig {
        max_negative_ttl: Duration::ZERO,
        ..client.dns()
    });
    lookup(&client, "gone.example.test:1").await.unwrap_err();
    lookup(&client, "gone.example.test:1").await.unwrap_err();
    assert_eq!(asked(), 7);
}

#[tokio::test]
async fn hosts_entries_answer_without_asking() {
    let (_server, client, queries) = setup().await;
    let mut cfg = client.dns();
    cfg.add_hosts("10.0.0.1 echo.internal Echo # the echo server\n10.7.7.7 www.example.test\n");
    client.set_dns(cfg);
    assert_eq!(
        lookup(&client, "ECHO.internal.:7500").await.unwrap(),
        vec![sa("10.0.0.1:7500")]
    );
    // A hosts entry wins over DNS, as with `hosts: files dns`.
    assert_eq!(
        lookup(&client, "www.example.test:80").await.unwrap(),
        vec![sa("10.7.7.7:80")]
    );
    assert_eq!(queries.load(Ordering::Relaxed), 0, "no query was sent");
    // And connect by such a name works end to end.
    let mut s = TcpStream::connect_with(&client, "echo:7500").await.unwrap();
    s.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hi");
}

#[tokio::test]
async fn the_builder_reads_a_hosts_file() {
    let path = std::env::temp_dir().join(format!("ustack-hosts-{}", std::process::id()));
    std::fs::write(&path, "10.0.0.1 peer.internal\n").unwrap();
    let (a, _b) = ustack::netdev::mem::MemLink::pair(MemLinkConfig::default());
    let stack = Stack::builder()
        .device(a)
        .addr("10.0.0.2/24".parse().unwrap())
        .hosts_file(&path)
        .build()
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        lookup(&stack, "peer.internal:1").await.unwrap(),
        vec![sa("10.0.0.1:1")]
    );
    let (a, _b) = ustack::netdev::mem::MemLink::pair(MemLinkConfig::default());
    let e = Stack::builder()
        .device(a)
        .addr("10.0.0.2/24".parse().unwrap())
        .hosts_file("/nonexistent/ustack-hosts")
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("/nonexistent/ustack-hosts"), "{e}");
}

#[tokio::test]
async fn search_domains_complete_short_names() {
    let (_server, client, queries) = setup().await;
    let asked = || queries.load(Ordering::Relaxed);
    let mut cfg = client.dns();
    cfg.search = vec!["nowhere.test".into(), "example.test.".into()];
    client.set_dns(cfg);
    // No dot (fewer than ndots 1): the search domains first. www.nowhere.test fails
    // (SERVFAIL, asked twice), www.example.test answers.
    assert_eq!(
        lookup(&client, "www:80").await.unwrap(),
        vec![sa("10.0.0.1:80")]
    );
    assert_eq!(asked(), 3);
    // Enough dots: the name as given first, and it answers.
    assert_eq!(
        lookup(&client, "alias.example.test:80").await.unwrap(),
        vec![sa("10.0.0.1:80")]
    );
    assert_eq!(asked(), 4);
    // Absolute (trailing dot): only as given.
    let e = lookup(&client, "www.:80").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other, "{e}");
    assert_eq!(asked(), 6);
    // Every candidate fails: the name that does not exist is what is reported.
    let e = lookup(&client, "missing:80").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("missing.example.test"), "{e}");
}

#[tokio::test]
async fn truncated_answers_are_asked_again_over_tcp() {
    let (server, client, udp) = setup().await;
    let tcp = tcp_dns_server(&server).await;
    let counts = || (udp.load(Ordering::Relaxed), tcp.load(Ordering::Relaxed));
    let all: Vec<SocketAddr> = (0..60).map(|i| sa(&format!("10.0.1.{i}:80"))).collect();
    // The truncated answer (2 addresses) is replaced by the whole one (60).
    assert_eq!(lookup(&client, "big.example.test:80").await.unwrap(), all);
    assert_eq!(counts(), (1, 1));
    // Cut inside a record: still recognised as truncated, asked over TCP.
    assert_eq!(lookup(&client, "cut.example.test:80").await.unwrap(), all);
    assert_eq!(counts(), (2, 2));
    // The whole answer is what is cached.
    assert_eq!(lookup(&client, "big.example.test:80").await.unwrap(), all);
    assert_eq!(counts(), (2, 2));
    // TCP fails (closed without an answer): the truncated answer's addresses are used.
    assert_eq!(
        lookup(&client, "broken-tcp.example.test:80").await.unwrap(),
        [sa("10.0.1.0:80"), sa("10.0.1.1:80")]
    );
    assert_eq!(counts(), (3, 3));
    // ... and with none in it, the TCP failure is the error, after every attempt.
    let e = lookup(&client, "empty-tc.example.test:80")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "{e}");
    assert!(e.to_string().contains("over TCP to 10.0.0.1:53"), "{e}");
    assert_eq!(counts(), (5, 5));
    // An answer over TCP to another query is refused, not taken.
    let e = lookup(&client, "wrong-tcp.example.test:80")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
    assert_eq!(counts(), (7, 7));
    // `use_tcp` (resolv.conf `options use-vc`): TCP only.
    let mut cfg = client.dns();
    cfg.use_tcp = true;
    client.set_dns(cfg);
    assert_eq!(
        lookup(&client, "www.example.test:80").await.unwrap(),
        [sa("10.0.0.1:80")]
    );
    assert_eq!(counts(), (7, 8));
}

/// EDNS(0) (`DnsConfig::edns0`, `resolv.conf` `options edns0`): a 60-address answer comes
/// in one datagram, with no TCP; a server that refuses EDNS with a format error is asked
/// again without it.
#[tokio::test]
async fn edns0_brings_big_answers_over_udp() {
    let (server, client, udp) = setup().await;
    let tcp = tcp_dns_server(&server).await;
    let counts = || (udp.load(Ordering::Relaxed), tcp.load(Ordering::Relaxed));
    let mut cfg = client.dns();
    cfg.edns0 = true;
    cfg.max_ttl = Duration::ZERO;
    client.set_dns(cfg.clone());
    let all: Vec<SocketAddr> = (0..60).map(|i| sa(&format!("10.0.1.{i}:80"))).collect();
    assert_eq!(lookup(&client, "big.example.test:80").await.unwrap(), all);
    assert_eq!(counts(), (1, 0));
    assert_eq!(
        lookup(&client, "old.example.test:80").await.unwrap(),
        [sa("10.0.0.7:80")]
    );
    assert_eq!(counts(), (3, 0));
    // Without EDNS the same answer is truncated and asked again over TCP.
    cfg.edns0 = false;
    client.set_dns(cfg);
    assert_eq!(lookup(&client, "big.example.test:80").await.unwrap(), all);
    assert_eq!(counts(), (4, 1));
    // The resolv.conf option.
    let mut c = DnsConfig::default();
    c.add_resolv_conf("options edns0\n");
    assert!(c.edns0);
}

#[tokio::test]
async fn without_tcp_on_the_server_a_truncated_answer_is_used_as_it_is() {
    // No TCP listener on port 53: the connection is refused.
    let (_server, client, udp) = setup().await;
    assert_eq!(
        lookup(&client, "big.example.test:80").await.unwrap(),
        [sa("10.0.1.0:80"), sa("10.0.1.1:80")]
    );
    assert_eq!(udp.load(Ordering::Relaxed), 1);
    let e = lookup(&client, "empty-tc.example.test:80")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
}

#[tokio::test]
async fn the_builder_reads_a_resolv_conf() {
    let path = std::env::temp_dir().join(format!("ustack-resolv-{}", std::process::id()));
    std::fs::write(
        &path,
        "# written by a test\n\
         nameserver 10.0.0.1\n\
         nameserver fd00::1\n\
         search nowhere.test example.test\n\
         options ndots:2 timeout:1 attempts:1 rotate\n",
    )
    .unwrap();
    let (server, client, _) =
        pair_custom(MemLinkConfig::default(), |b| b, |b| b.resolv_conf(&path)).await;
    std::fs::remove_file(&path).unwrap();
    let sock = UdpSocket::bind_with(&server, "10.0.0.1:53").await.unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    tokio::spawn(dns_server(sock, queries.clone()));
    let cfg = client.dns();
    assert_eq!(cfg.servers, [sa4("10.0.0.1:53")]);
    assert_eq!(cfg.search, ["nowhere.test", "example.test"]);
    assert_eq!(
        (cfg.ndots, cfg.timeout, cfg.attempts, cfg.use_tcp),
        (2, Duration::from_secs(1), 1, false)
    );
    // The search domains in the file's order, each asked once (attempts:1):
    // www.nowhere.test fails (SERVFAIL), www.example.test answers.
    assert_eq!(
        lookup(&client, "www:80").await.unwrap(),
        vec![sa("10.0.0.1:80")]
    );
    assert_eq!(queries.load(Ordering::Relaxed), 2);
    // ndots:2: a name with one dot tries them first as well. The server knows none of
    // alias.example.nowhere.test, alias.example.example.test and alias.example (each
    // SERVFAIL): three queries, the error of the last candidate, the name as given.
    let e = lookup(&client, "alias.example:80").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other, "{e}");
    assert!(e.to_string().contains("\"alias.example\""), "{e}");
    assert_eq!(queries.load(Ordering::Relaxed), 5);
    let (a, _b) = ustack::netdev::mem::MemLink::pair(MemLinkConfig::default());
    let e = Stack::builder()
        .device(a)
        .addr("10.0.0.2/24".parse().unwrap())
        .resolv_conf("/nonexistent/ustack-resolv.conf")
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string().contains("/nonexistent/ustack-resolv.conf"),
        "{e}"
    );
}
