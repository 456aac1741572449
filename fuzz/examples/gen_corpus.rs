//! Writes the seed corpora into `fuzz/corpus/<target>/seed-*`: a few valid packets per
//! parser target and a few operation scripts for `rx_path` (handshake data, SYN flood,
//! RST/SYN injections, UDP, ICMP errors, fragments, close). Run with
//! `cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus`.

use std::net::Ipv4Addr;
use std::path::Path;

use ustack_fuzz::build;
use ustack_tcp::seq::SeqNum;
use ustack_tcp::wire::{TcpFlags, TcpRepr};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
}

fn with_mode(mode: u8, p: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(p);
    v
}

fn syn() -> TcpRepr {
    let mut r = TcpRepr::new(40000, 80, SeqNum(1000), SeqNum(0), TcpFlags::SYN);
    r.window = 65535;
    r.options.mss = Some(1460);
    r.options.wscale = Some(7);
    r.options.sack_permitted = true;
    r.options.timestamp = Some((1, 0));
    r.header_len = r.emit_len();
    r
}

fn data_seg() -> TcpRepr {
    let mut r = TcpRepr::new(
        40000,
        80,
        SeqNum(1001),
        SeqNum(5001),
        TcpFlags::ACK | TcpFlags::PSH,
    );
    r.window = 1024;
    r.options.timestamp = Some((5, 9));
    r.options.push_sack((SeqNum(6000), SeqNum(7000)));
    r.options.push_sack((SeqNum(8000), SeqNum(9000)));
    r.header_len = r.emit_len();
    r
}

/// Encoders of the `rx_path` operation format (see `fuzz/src/rx.rs`, `Harness::op`).
struct Script(Vec<u8>);

impl Script {
    fn op(&mut self, kind: u8, step: u8) -> &mut Self {
        self.0.push(kind << 3 | (step & 7));
        self
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A TCP segment on flow `i` with seq/ack deltas (0 = exact).
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        step: u8,
        i: u8,
        flags: u8,
        dseq: u16,
        window: u16,
        opts: &[u8],
        payload: &[u8],
    ) -> &mut Self {
        self.op(3, step).u8(i).u8(flags);
        if dseq == 0 {
            self.u8(0);
        } else {
            self.u8(1).u16(dseq);
        }
        self.u8(0) // dack exact
            .u16(window)
            .u8(opts.len() as u8)
            .bytes(opts)
            .u16(payload.len() as u16)
            .bytes(payload)
    }
}

fn main() {
    // ipv4_parse
    let seg = build::tcp(A, B, &syn(), &[]);
    write(
        "ipv4_parse",
        "tcp-syn",
        &with_mode(0, &build::ipv4(A, B, 6, 1, &seg)),
    );
    let u = build::udp(A, B, 5353, 53, b"query", true);
    write(
        "ipv4_parse",
        "udp",
        &with_mode(0, &build::ipv4(A, B, 17, 2, &u)),
    );
    let e = build::icmp(8, 0, [0, 1, 0, 1], b"ping");
    write(
        "ipv4_parse",
        "icmp-echo",
        &with_mode(0, &build::ipv4(A, B, 1, 3, &e)),
    );
    let mut frag = build::ipv4(A, B, 17, 4, &[0u8; 16]);
    frag[6] = 0x20; // MF
    frag[7] = 0x02; // offset 16 bytes
    write("ipv4_parse", "fragment", &with_mode(1, &frag));
    let mut opt = build::ipv4(A, B, 17, 5, &[0u8; 12]);
    opt[0] = 0x46; // IHL 6: the first 4 payload bytes are options (NOPs)
    opt[20..24].copy_from_slice(&[1, 1, 1, 0]);
    write("ipv4_parse", "options", &with_mode(1, &opt));

    // tcp_parse
    write(
        "tcp_parse",
        "syn-all-options",
        &with_mode(0, &build::tcp(A, B, &syn(), &[])),
    );
    write(
        "tcp_parse",
        "data-ts-sack",
        &with_mode(0, &build::tcp(A, B, &data_seg(), b"payload")),
    );
    let raw = build::tcp_raw_opts(
        A,
        B,
        &data_seg(),
        &[30, 4, 0, 0, 1, 1, 2, 4, 5, 0xb4, 0],
        b"x",
    );
    write("tcp_parse", "unknown-option", &with_mode(1, &raw));

    // udp_parse
    write(
        "udp_parse",
        "dns",
        &with_mode(2, &build::udp(A, B, 5353, 53, b"\x12\x34\x01\x00", true)),
    );
    write(
        "udp_parse",
        "no-checksum",
        &with_mode(2, &build::udp(A, B, 1000, 53, b"plain", false)),
    );
    let mut pad = build::udp(A, B, 1000, 53, b"padded", true);
    pad.extend_from_slice(&[0; 6]);
    write("udp_parse", "padded", &with_mode(0, &pad));

    // icmp_parse
    write(
        "icmp_parse",
        "echo",
        &with_mode(0, &build::icmp(8, 0, [0, 7, 0, 1], b"abcdefgh")),
    );
    let quoted = build::ipv4(B, A, 6, 9, &build::tcp(B, A, &data_seg(), &[]));
    write(
        "icmp_parse",
        "frag-needed",
        &with_mode(0, &build::icmp(3, 4, [0, 0, 2, 0x40], &quoted[..28])),
    );
    write(
        "icmp_parse",
        "port-unreach",
        &with_mode(0, &build::icmp(3, 3, [0; 4], &quoted[..28])),
    );
    write(
        "icmp_parse",
        "time-exceeded",
        &with_mode(0, &build::icmp(11, 0, [0; 4], &quoted[..40])),
    );

    // rx_path scripts
    let mut s = Script(Vec::new());
    s.tcp(1, 0, 0x18, 0, 4096, &[], &[0x55; 100])
        .op(19, 2)
        .u8(0)
        .u16(4096)
        .tcp(3, 0, 0x10, 0, 4096, &[], &[])
        .op(25, 0)
        .u8(2);
    write("rx_path", "established-data", &s.0);

    let mut s = Script(Vec::new());
    for i in 0..24u16 {
        // Only every sixth handshake completes: the SYN queue overflows into cookies,
        // and some cookies come back.
        let complete = u8::from(i % 6 == 5);
        s.op(10, 0)
            .u16(i * 7)
            .u8(0)
            .u16(1460)
            .u32(0x1000_0000 + u32::from(i))
            .u8(complete);
    }
    s.op(19, 1).u8(2).u8(0).u8(1).u8(0).op(0, 7);
    write("rx_path", "syn-flood", &s.0);

    let mut s = Script(Vec::new());
    s.tcp(1, 0, 0x04, 100, 0, &[], &[]) // RST in window, not exact: challenge ACK
        .tcp(1, 0, 0x02, 7, 0, &[], &[]) // SYN: challenge ACK
        .tcp(1, 0, 0x18, 40000, 512, &[], &[1; 64]) // out-of-window data
        .tcp(1, 1, 0x10, 0, 512, &[], &[]) // completes the half-open
        .op(19, 1)
        .u8(2)
        .u8(0);
    write("rx_path", "injections", &s.0);

    let mut s = Script(Vec::new());
    s.op(12, 1)
        .u8(0)
        .u16(40)
        .bytes(&[9; 40])
        .op(12, 1)
        .u8(1)
        .u16(99)
        .u16(8)
        .bytes(b"to:99!!!");
    s.op(16, 1).u8(16).bytes(&[0xab; 16]);
    // ICMP errors on flow 0: flow, raw type, type selector (0 = 3), code, MTU bytes,
    // seq delta selector, quote length.
    s.op(14, 1)
        .u8(0)
        .u8(0)
        .u8(0)
        .u8(4)
        .u8(0x02)
        .u8(0x40)
        .u8(0)
        .u8(8); // frag needed, 576
    s.op(14, 1).u8(0).u8(0).u8(0).u8(3).u8(0).u8(0).u8(0).u8(8); // port unreachable
    write("rx_path", "udp-icmp", &s.0);

    // Fragments: flow, length, payload, TCP (0) or UDP (1), MTU - 68, order word (low
    // bits rotate the order, byte 3 = index dropped, byte 2 = index duplicated).
    let mut s = Script(Vec::new());
    s.op(17, 1)
        .u8(0)
        .u16(3000)
        .bytes(&[0x77; 3000])
        .u8(0)
        .u16(432)
        .u32(0xffff_0003);
    s.op(17, 1)
        .u8(0)
        .u16(1200)
        .bytes(&[0x66; 1200])
        .u8(1)
        .u16(32)
        .u32(0xff01_0000);
    // One fragment missing: the queue waits, then times out.
    s.op(17, 1)
        .u8(0)
        .u16(900)
        .bytes(&[0x55; 900])
        .u8(1)
        .u16(200)
        .u32(0x02ff_0000);
    s.op(25, 0).u8(1);
    write("rx_path", "fragments", &s.0);

    let mut s = Script(Vec::new());
    s.tcp(1, 0, 0x19, 0, 4096, &[], b"bye") // FIN+PSH+ACK with data
        .op(19, 2)
        .u8(0)
        .u16(100)
        .op(19, 2)
        .u8(4) // close
        .op(0, 6)
        .tcp(1, 0, 0x10, 0, 4096, &[], &[])
        .op(25, 0)
        .u8(3);
    write("rx_path", "close", &s.0);

    let mut s = Script(Vec::new());
    s.tcp(0, 2, 0x12, 0, 8192, &[2, 4, 5, 0xb4, 1, 3, 3, 2], &[]) // SYN-ACK for the active open
        .op(19, 1)
        .u8(1)
        .u16(5000)
        .tcp(2, 2, 0x10, 0, 0, &[], &[]) // zero window
        .op(0, 7)
        .op(0, 7);
    write("rx_path", "active-zero-window", &s.0);

    // IGMP and multicast: IGMP (selector: type index, group choice, bad checksum,
    // destination; raw type; code; extra bytes), UDP to a group or broadcast (selector,
    // length, payload), joins and leaves (selector: group, leave bit).
    let mut s = Script(Vec::new());
    s.op(26, 0).u8(0).u8(0).u8(10).u8(4).bytes(&[2, 125, 0, 0]); // v3 general query
    s.op(25, 6).u8(0);
    s.op(28, 0).u8(0).u16(5).bytes(b"hello"); // to the joined group
    s.op(29, 0).u8(1); // join 239.1.1.2
    s.op(26, 0).u8(1).u8(0).u8(100).u8(0); // v2 query
    s.op(26, 0)
        .u8(4 | (1 << 3) | (1 << 6))
        .u8(0)
        .u8(0)
        .u8(0)
        .u8(0); // a v2 report heard
    s.op(25, 7).u8(0);
    s.op(29, 0).u8(5); // leave 239.1.1.2
    s.op(26, 0).u8(0x20).u8(0).u8(10).u8(0); // bad checksum
    s.op(28, 0).u8(4).u16(2).bytes(b"hi"); // limited broadcast
    s.op(26, 0).u8(2).u8(0).u8(0).u8(0); // v1 query
    s.op(25, 0).u8(10);
    write("rx_path", "igmp-multicast", &s.0);

    // dhcp_parse (see fuzz/src/dhcp.rs): an ACK with every option the client reads
    // (mode 1: fixed part and cookie built), and an OFFER whose message type sits in the
    // overloaded `file` field (mode 7: its first three bytes go there).
    let mut ack = vec![1u8, 53, 1, 5, 54, 4, 10, 0, 0, 1, 51, 4, 0, 0, 14, 16];
    ack.extend_from_slice(&[1, 4, 255, 255, 255, 0, 3, 4, 10, 0, 0, 1, 6, 4, 10, 0, 0, 1]);
    ack.extend_from_slice(&[15, 4, b'l', b'a', b'n', 0, 26, 2, 5, 220]);
    // Classless static routes: 192.168.5.0/24 via 10.0.0.1, default via 10.0.0.254.
    ack.extend_from_slice(&[121, 13, 24, 192, 168, 5, 10, 0, 0, 1, 0, 10, 0, 0, 254, 255]);
    write("dhcp_parse", "ack", &ack);
    write(
        "dhcp_parse",
        "overload",
        &[7, 53, 1, 2, 52, 1, 1, 54, 4, 10, 0, 0, 1, 255],
    );

    // arp_rx (see fuzz/src/ether.rs): 3 = send (destination selector, address
    // selector, length / 8, DF), 1 = ARP (opcode, sha, spa, tha, tpa, frame destination,
    // damage, frame source), 4 = IPv4 frame (destination, length, bytes, source),
    // 5 = time step (selector, value), 0 = raw frame (length, bytes), 6 = neighbour set by
    // hand or removed (address selector, remove bit, MAC selector), 7 = send as 3 with
    // the transport's reachability confirmation, 8 = address probe started (0), ended
    // (1) or our address announced (2) (address selector, action).
    let send_to_10_0_0_4 = [3u8, 1, 3, 4, 1];
    let reply_from_10_0_0_4 = [1u8, 2, 4, 3, 0, 0, 0, 1, 4];
    let request_from_10_0_0_3 = [1u8, 0, 5, 2, 2, 0, 1, 1, 5];
    let mut a = Vec::new();
    a.extend_from_slice(&send_to_10_0_0_4);
    a.extend_from_slice(&send_to_10_0_0_4);
    a.extend_from_slice(&reply_from_10_0_0_4);
    a.extend_from_slice(&[5, 3, 40]); // 40 s: the entry ages
    a.extend_from_slice(&send_to_10_0_0_4); // used while stale: delay, then probe
    a.extend_from_slice(&[5, 2, 5, 1, 5, 1]);
    a.extend_from_slice(&reply_from_10_0_0_4);
    a.extend_from_slice(&[5, 3, 40]); // aged again: a confirmed send makes it reachable
    a.extend_from_slice(&[7, 1, 3, 4, 1]);
    a.extend_from_slice(&request_from_10_0_0_3);
    a.extend_from_slice(&[4, 0, 24]);
    a.extend_from_slice(&[0x45; 24]);
    a.push(5); // an IPv4 frame to us
    a.extend_from_slice(&[3, 0, 7, 2, 0]); // off-link: the gateway never answers
    a.extend_from_slice(&[5, 1, 5, 1, 5, 1, 5, 1]);
    a.extend_from_slice(&[0, 16]);
    a.extend_from_slice(&[0xff; 16]); // a raw broadcast frame of another type
    a.extend_from_slice(&[6, 4, 0, 5]); // 10.0.0.5 set by hand
    a.extend_from_slice(&[3, 1, 4, 2, 1]); // sent to at once
    a.extend_from_slice(&[6, 4, 1]); // and removed
    a.extend_from_slice(&[8, 3, 0]); // probe for 10.0.0.4, which answers: a conflict
    a.extend_from_slice(&reply_from_10_0_0_4);
    a.extend_from_slice(&[8, 3, 1, 8, 0, 2]); // probe ended; our address announced
    write("arp_rx", "resolve-age-fail", &a);
}
