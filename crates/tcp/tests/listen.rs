//! Listener queues (SYN queue, accept queue) and SYN cookies.

mod common;
use common::*;
use std::time::Duration;
use ustack_tcp::wire::{TcpFlags, TcpRepr};
use ustack_tcp::{SeqNum, SockId, TcpState};

#[test]
fn backlog_8_hundred_clients_all_accepted() {
    let mut n = Net::new();
    n.keep_log = false;
    let l = n.listen_b(80, 8);
    // 100 clients start 2 ms apart (faster than the application accepts).
    let mut clients: Vec<SockId> = Vec::new();
    let mut accepted = Vec::new();
    let mut got = 0usize;
    let mut greeted = [false; 100];
    let limit = n.now + Duration::from_secs(600);
    let mut next_accept = n.now;
    let mut next_client = n.now;
    while (accepted.len() < 100 || got < 100 * 5) && n.now < limit {
        if clients.len() < 100 && n.now >= next_client {
            clients.push(n.connect_a(80));
            next_client = n.now + Duration::from_millis(2);
        }
        // Clients send a request once connected (so a lost third ACK is retransmitted).
        for (i, c) in clients.iter().enumerate() {
            if !greeted[i]
                && n.a.state(*c) == Some(TcpState::Established)
                && n.a_send(*c, b"hello") == 5
            {
                greeted[i] = true;
            }
        }
        // The application accepts one connection every 20 ms.
        if n.now >= next_accept {
            if let Some(s) = n.b.accept(l).unwrap() {
                accepted.push(s);
            }
            next_accept = n.now + Duration::from_millis(10);
        }
        for s in &accepted {
            got += n.recv_all(Dir::BtoA, *s).len();
        }
        let t = next_accept.min(limit).min(if clients.len() < 100 {
            next_client
        } else {
            limit
        });
        if !n.step(t) {
            n.now = t;
        }
    }
    let st = n.b.stats();
    eprintln!(
        "accepted {} bytes {got} overflows {} drops {} cookies sent {} recv {} virtual {:?}",
        accepted.len(),
        st.listen_overflows,
        st.listen_drops,
        st.syncookies_sent,
        st.syncookies_recv,
        n.now - n.start
    );
    for c in &clients {
        assert_eq!(n.a.state(*c), Some(TcpState::Established));
    }
    assert_eq!(accepted.len(), 100);
    assert_eq!(got, 500);
    assert!(st.listen_overflows > 0);
}

#[test]
fn syn_flood_engages_cookies_and_carries_mss() {
    let mut n = Net::new();
    let l = n.listen_b(80, 4);
    // A spoofed flood fills the SYN queue; replies go nowhere.
    n.syn_flood_b(80, 200);
    let st = n.b.stats();
    assert!(st.syncookies_sent >= 190, "{}", st.syncookies_sent);
    assert!(
        n.b.connection_count() <= 4,
        "SYN queue bounded: {}",
        n.b.connection_count()
    );
    // A legitimate client with a smaller MSS (route MTU 1340 -> MSS 1300).
    let (c, s) = n.connect_to_listener(l, 80, 1340);
    let st = n.b.stats();
    assert_eq!(st.syncookies_recv, 1);
    let info = n.b.info(s).unwrap();
    assert_eq!(info.snd_mss + if info.timestamps { 12 } else { 0 }, 1300);
    // Data flows on the cookie connection.
    n.a_send(c, b"through the cookie");
    n.settle();
    assert_eq!(n.recv_all(Dir::BtoA, s), b"through the cookie");
    // A forged ACK to the listener fails the cookie check and gets an RST.
    let mut r = TcpRepr::new(4444, 80, SeqNum(5), SeqNum(77), TcpFlags::ACK);
    r.window = 100;
    let replies = n.inject_noreply(Dir::AtoB, sa(A_IP, 4444), sa(B_IP, 80), &r, &[]);
    assert!(replies[0].has(TcpFlags::RST));
    assert_eq!(n.b.stats().syncookies_failed, 1);
}

#[test]
fn synack_retransmitted_with_backoff_then_dropped() {
    let mut n = Net::new();
    let _l = n.listen_b(80, 8);
    n.set_rule(Dir::BtoA, |_, _| Action::Drop);
    n.set_rule(Dir::AtoB, |s, _| {
        if s.is(TcpFlags::SYN) {
            Action::Pass
        } else {
            Action::Drop
        }
    });
    let c = n.a.socket();
    let mut out = Vec::new();
    n.a.connect(n.now, c, A_IP, sa(B_IP, 80), MTU, &mut out)
        .unwrap();
    // Only the first SYN reaches B.
    n.send(Dir::AtoB, out);
    n.set_rule(Dir::AtoB, |_, _| Action::Drop);
    n.run_for(Duration::from_secs(70));
    let synacks: Vec<_> = n
        .log
        .iter()
        .filter(|s| s.dir == Dir::BtoA && s.is(TcpFlags::SYN | TcpFlags::ACK))
        .collect();
    assert_eq!(synacks.len(), 6, "1 + synack_retries 5");
    let gaps: Vec<_> = synacks
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs())
        .collect();
    assert_eq!(gaps, vec![1, 2, 4, 8, 16]);
    n.run_for(Duration::from_secs(40));
    assert_eq!(n.b.connection_count(), 0);
}
