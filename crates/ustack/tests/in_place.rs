//! Reading and writing a TCP stream in place (`read_with` / `write_with`): two stacks on an
//! in-memory link.

mod common;

use std::io::ErrorKind;
use std::panic::{catch_unwind, AssertUnwindSafe};

use common::pair;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::net::{TcpListener, TcpStream};

/// Byte `i` of the test stream.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(0x9e37_79b9) >> 13) as u8 ^ (i as u8)
}

async fn connected(port: u16) -> (TcpStream, TcpStream, ustack::Stack, ustack::Stack) {
    let (s1, s2) = pair().await;
    let listener = TcpListener::bind_with(&s2, ("0.0.0.0", port))
        .await
        .unwrap();
    let client = TcpStream::connect_with(&s1, ("10.0.0.2", port))
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server, s1, s2)
}

/// 6 MiB written by closures that fill all, part or none of the space they are offered,
/// read by closures that take all or part of what they are shown: every byte arrives, in
/// order, and end of stream reads as 0 without calling the closure.
#[tokio::test]
async fn in_place_stream_carries_every_byte_in_order() {
    const LEN: u64 = 6 << 20;
    let (client, server, _s1, _s2) = connected(9000).await;
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut round = 0u64;
        while sent < LEN {
            round += 1;
            // Every third call writes a short piece, every seventh writes nothing.
            let limit = match round % 7 {
                0 => 0,
                r if r.is_multiple_of(3) => 1 + (round % 1500) as usize,
                _ => usize::MAX,
            };
            let before = sent;
            let n = client
                .write_with(|space| {
                    let n = space.len().min(limit).min((LEN - sent) as usize);
                    for (k, b) in space[..n].iter_mut().enumerate() {
                        *b = pattern(sent + k as u64);
                    }
                    sent += n as u64;
                    n
                })
                .await
                .unwrap();
            assert_eq!(
                sent - before,
                n as u64,
                "the call returns what the closure wrote"
            );
            assert!(n <= 64 * 1024, "one call offers at most 64 KiB, got {n}");
            if limit == 0 {
                assert_eq!(n, 0, "a closure that writes nothing queues nothing");
            }
        }
        let mut client = client;
        client.shutdown().await.unwrap();
        sent
    });
    let mut got = 0u64;
    let mut round = 0u64;
    loop {
        round += 1;
        let take = if round.is_multiple_of(2) {
            700
        } else {
            usize::MAX
        };
        let mut calls = 0;
        let mut bad = None;
        let before = got;
        let n = server
            .read_with(|data| {
                calls += 1;
                assert!(
                    !data.is_empty(),
                    "the closure is never shown an empty slice"
                );
                let n = data.len().min(take);
                for (k, b) in data[..n].iter().enumerate() {
                    if *b != pattern(got + k as u64) && bad.is_none() {
                        bad = Some(got + k as u64);
                    }
                }
                got += n as u64;
                n
            })
            .await
            .unwrap();
        assert_eq!(bad, None, "byte differs at this offset");
        assert_eq!(
            got - before,
            n as u64,
            "the call returns what the closure consumed"
        );
        if n == 0 {
            assert_eq!(calls, 0, "at end of stream the closure is not called");
            break;
        }
        assert_eq!(calls, 1);
    }
    assert_eq!(writer.await.unwrap(), LEN);
    assert_eq!(got, LEN);
}

/// What a closure does not consume stays queued for the next read of any kind.
#[tokio::test]
async fn in_place_reads_leave_the_rest_queued() {
    let (mut client, mut server, _s1, _s2) = connected(9001).await;
    client.write_all(b"hello\nworld").await.unwrap();
    // Wait until all 11 bytes are queued, then take the first line.
    let mut buf = [0u8; 11];
    while server.peek(&mut buf).await.unwrap() < 11 {
        tokio::task::yield_now().await;
    }
    let mut line = Vec::new();
    let n = server
        .read_with(|d| {
            let end = d
                .iter()
                .position(|&b| b == b'\n')
                .map_or(d.len(), |i| i + 1);
            line.extend_from_slice(&d[..end]);
            end
        })
        .await
        .unwrap();
    assert_eq!((n, &line[..]), (6, &b"hello\n"[..]));
    let mut rest = [0u8; 5];
    server.read_exact(&mut rest).await.unwrap();
    assert_eq!(&rest, b"world");
    // A closure that consumes nothing leaves everything.
    client.write_all(b"!").await.unwrap();
    let mut b = [0u8; 1];
    server.peek(&mut b).await.unwrap();
    assert_eq!(server.read_with(|_| 0).await.unwrap(), 0);
    assert_eq!(server.read_with(|d| d.len()).await.unwrap(), 1);
}

/// The `try_` forms never wait: nothing queued or no room is `WouldBlock`, and the closure
/// is not called then. Split halves offer the same calls.
#[tokio::test]
async fn try_in_place_calls_would_block_instead_of_waiting() {
    let (client, server, _s1, _s2) = connected(9002).await;
    let mut called = false;
    let e = server
        .try_read_with(|d| {
            called = true;
            d.len()
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert!(!called);
    // Nobody reads on the server: the client's send buffer fills up, within bounds.
    client.set_send_buffer_size(64 * 1024).unwrap();
    server.set_recv_buffer_size(64 * 1024).unwrap();
    let (read_half, write_half) = client.into_split();
    let mut queued = 0usize;
    let mut blocked = false;
    for _ in 0..10_000 {
        match write_half.try_write_with(|s| {
            s.fill(7);
            s.len()
        }) {
            Ok(n) => queued += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked = true;
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
        tokio::task::yield_now().await;
    }
    assert!(
        blocked,
        "the send buffer never filled ({queued} bytes queued)"
    );
    let mut called = false;
    let e = write_half
        .try_write_with(|s| {
            called = true;
            s.len()
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert!(!called);
    // Everything queued arrives.
    let mut got = 0usize;
    while got < queued {
        got += server
            .read_with(|d| {
                assert!(d.iter().all(|&b| b == 7));
                d.len()
            })
            .await
            .unwrap();
    }
    assert_eq!(got, queued);
    let e = read_half.try_read_with(|d| d.len()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
}

/// A closure that calls into the stack gets a panic that says why (instead of a deadlock
/// on the lock it runs under); the stack and the connection go on working afterwards.
#[tokio::test]
async fn a_closure_that_calls_the_stack_panics_and_the_stack_goes_on() {
    let (mut client, mut server, s1, _s2) = connected(9003).await;
    client.write_all(b"abc").await.unwrap();
    let mut b = [0u8; 3];
    while server.peek(&mut b).await.unwrap() < 3 {
        tokio::task::yield_now().await;
    }
    let caught = catch_unwind(AssertUnwindSafe(|| {
        server.try_read_with(|d| {
            let _ = server.local_addr();
            d.len()
        })
    }));
    let msg = caught.expect_err("calling the stack from the closure must panic");
    let text = msg
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| msg.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(text.contains("read_with/write_with closure"), "{text}");
    // Nothing was consumed, and both ends still work.
    server.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"abc");
    server.write_all(b"xyz").await.unwrap();
    client.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"xyz");
    let caught = catch_unwind(AssertUnwindSafe(|| {
        client.try_write_with(|s| {
            let _ = s1.tcp_sockets();
            s.len()
        })
    }));
    assert!(caught.is_err());
    client.write_all(b"end").await.unwrap();
    server.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"end");
}

/// The `poll_` forms (for hand-written futures) and the borrowed halves of `split` give the
/// same in-place access: `Pending` until there is data, then the bytes, then end of stream.
#[tokio::test]
async fn poll_forms_and_borrowed_halves_read_and_write_in_place() {
    let (mut client, mut server, _s1, _s2) = connected(9004).await;
    let (_, w) = client.split();
    let n = w
        .write_with(|space| {
            space[..5].copy_from_slice(b"hello");
            5
        })
        .await
        .unwrap();
    assert_eq!(n, 5);
    let mut got = Vec::new();
    while got.len() < 5 {
        let n = std::future::poll_fn(|cx| {
            server.poll_read_with(cx, |d| {
                got.extend_from_slice(d);
                d.len()
            })
        })
        .await
        .unwrap();
        assert!(n > 0);
    }
    assert_eq!(got, b"hello");
    // Nothing queued: the poll form is Pending and does not call the closure.
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut called = false;
    assert!(server
        .poll_read_with(&mut cx, |d| {
            called = true;
            d.len()
        })
        .is_pending());
    assert!(!called);
    // The other way: poll_write_with on the server, read_with on a borrowed read half.
    let n = std::future::poll_fn(|cx| {
        server.poll_write_with(cx, |space| {
            space[..3].copy_from_slice(b"abc");
            3
        })
    })
    .await
    .unwrap();
    assert_eq!(n, 3);
    server.shutdown().await.unwrap();
    let (r, _) = client.split();
    let mut back = Vec::new();
    loop {
        let n = r
            .read_with(|d| {
                back.extend_from_slice(d);
                d.len()
            })
            .await
            .unwrap();
        if n == 0 {
            break;
        }
    }
    assert_eq!(back, b"abc");
    assert_eq!(r.try_read_with(|d| d.len()).unwrap(), 0, "end of stream");
}
