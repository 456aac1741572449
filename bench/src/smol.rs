//! The smoltcp side of the in-memory comparison: two smoltcp `Interface`s (10.0.0.1 client,
//! 10.0.0.2 server, `Medium::Ip`) joined by two in-memory packet queues, one thread polling
//! both, exactly like the ustack pair runs on one current-thread runtime.
//!
//! Configured as favourably as smoltcp's documentation allows while staying comparable:
//! the same MTU and socket buffer sizes as the ustack run, checksums computed and verified in
//! software (the default `ChecksumCapabilities`; ustack computes them too), packet buffers
//! recycled through a pool (no allocation per packet), Nagle and ACK delay left at their
//! defaults for bulk (what the docs recommend); for ping-pong Nagle is off and the ACK
//! delay stays at its default, which lets every ACK ride on a reply (the faster setting).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use serde_json::json;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use crate::util::{emit, gbps, latency_fields, round3};

const CLIENT: IpAddress = IpAddress::v4(10, 0, 0, 1);
const SERVER: IpAddress = IpAddress::v4(10, 0, 0, 2);

/// The wire: one queue per direction and a pool of spare buffers.
#[derive(Default)]
struct Wire {
    q: [VecDeque<Vec<u8>>; 2],
    pool: Vec<Vec<u8>>,
    packets: u64,
    bytes: u64,
}

type WireRef = Rc<RefCell<Wire>>;

/// One end of the wire (`side` 0 = client, 1 = server); it receives from queue `side` and
/// transmits into queue `1 - side`.
struct End {
    wire: WireRef,
    side: usize,
    mtu: usize,
}

struct RxTok {
    buf: Vec<u8>,
    wire: WireRef,
}

struct TxTok {
    wire: WireRef,
    to: usize,
}

impl phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.buf);
        self.wire.borrow_mut().pool.push(self.buf);
        r
    }
}

impl phy::TxToken for TxTok {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = self.wire.borrow_mut().pool.pop().unwrap_or_default();
        b.resize(len, 0);
        let r = f(&mut b);
        let mut w = self.wire.borrow_mut();
        w.packets += 1;
        w.bytes += len as u64;
        w.q[self.to].push_back(b);
        r
    }
}

impl Device for End {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok;

    fn receive(&mut self, _t: Instant) -> Option<(RxTok, TxTok)> {
        let buf = self.wire.borrow_mut().q[self.side].pop_front()?;
        Some((
            RxTok {
                buf,
                wire: self.wire.clone(),
            },
            TxTok {
                wire: self.wire.clone(),
                to: 1 - self.side,
            },
        ))
    }

    fn transmit(&mut self, _t: Instant) -> Option<TxTok> {
        Some(TxTok {
            wire: self.wire.clone(),
            to: 1 - self.side,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        // checksum: default = computed and verified in software.
        c
    }
}

/// Two interfaces on one wire and their socket sets.
struct Pair {
    wire: WireRef,
    dev: [End; 2],
    iface: [Interface; 2],
    sets: [SocketSet<'static>; 2],
    epoch: StdInstant,
}

impl Pair {
    fn new(mtu: usize) -> Pair {
        let wire: WireRef = Default::default();
        let mut dev = [
            End {
                wire: wire.clone(),
                side: 0,
                mtu,
            },
            End {
                wire: wire.clone(),
                side: 1,
                mtu,
            },
        ];
        let now = Instant::from_micros(0);
        let mk = |d: &mut End, ip: IpAddress| {
            let mut i = Interface::new(Config::new(HardwareAddress::Ip), d, now);
            i.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::new(ip, 24));
            });
            i
        };
        let (d0, d1) = dev.split_at_mut(1);
        let iface = [mk(&mut d0[0], CLIENT), mk(&mut d1[0], SERVER)];
        Pair {
            wire,
            dev,
            iface,
            sets: [SocketSet::new(vec![]), SocketSet::new(vec![])],
            epoch: StdInstant::now(),
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    fn poll(&mut self) {
        let now = self.now();
        for i in 0..2 {
            self.iface[i].poll(now, &mut self.dev[i], &mut self.sets[i]);
        }
    }

    fn sock(&mut self, side: usize, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sets[side].get_mut::<tcp::Socket>(h)
    }
}

fn new_socket(buf: usize) -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buf]),
        tcp::SocketBuffer::new(vec![0; buf]),
    )
}

/// Connects one client socket to one listening server socket on `port`; returns (client, server).
fn connected(
    p: &mut Pair,
    buf: usize,
    port: u16,
    tune: impl Fn(&mut tcp::Socket<'static>),
) -> (SocketHandle, SocketHandle) {
    let mut s = new_socket(buf);
    tune(&mut s);
    s.listen(port).expect("listen");
    let hs = p.sets[1].add(s);
    let mut c = new_socket(buf);
    tune(&mut c);
    let hc = p.sets[0].add(c);
    let cx = p.iface[0].context();
    p.sets[0]
        .get_mut::<tcp::Socket>(hc)
        .connect(cx, (SERVER, port), 49152)
        .expect("connect");
    let t0 = StdInstant::now();
    while !(p.sock(0, hc).may_send() && p.sock(1, hs).may_recv()) {
        p.poll();
        assert!(
            t0.elapsed() < StdDuration::from_secs(5),
            "smoltcp handshake did not complete"
        );
    }
    (hc, hs)
}

/// 1 GiB (or `bytes`) one way through a smoltcp pair.
pub fn bulk(bytes: u64, mtu: usize, buf: usize, max_secs: f64) {
    let mut p = Pair::new(mtu);
    let t0 = StdInstant::now();
    let (hc, hs) = connected(&mut p, buf, 5001, |_| {});
    let (mut sent, mut recvd, mut polls) = (0u64, 0u64, 0u64);
    let mut timed_out = false;
    while recvd < bytes {
        let c = p.sock(0, hc);
        while sent < bytes && c.can_send() {
            let n = c
                .send(|b| {
                    let n = b.len().min((bytes - sent) as usize);
                    (n, n)
                })
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            sent += n as u64;
        }
        p.poll();
        polls += 1;
        let s = p.sock(1, hs);
        while s.can_recv() {
            recvd += s.recv(|b| (b.len(), b.len())).unwrap_or(0) as u64;
        }
        if polls & 1023 == 0 && t0.elapsed().as_secs_f64() > max_secs {
            timed_out = true;
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let w = p.wire.borrow();
    emit(
        &format!("mem_bulk_{mtu}"),
        "smoltcp",
        json!({
            "bytes": recvd, "secs": round3(secs), "gbit_s": gbps(recvd, secs), "mtu": mtu, "buf": buf,
            "wire_packets": w.packets, "wire_bytes": w.bytes, "polls": polls, "timed_out": timed_out,
        }),
    );
}

/// 1-byte request/response round trips (Nagle off, default ACK delay) for `secs` seconds.
pub fn pingpong(secs: f64, mtu: usize) {
    let mut p = Pair::new(mtu);
    // Nagle off (TCP_NODELAY, as ustack's ends); the ACK delay stays at its default: each
    // ACK then rides on the reply (two packets per round trip instead of four), which
    // makes smoltcp's round trip about 30 % shorter here.
    let (hc, hs) = connected(&mut p, 64 * 1024, 5002, |s| {
        s.set_nagle_enabled(false);
    });
    let mut lat = Vec::with_capacity(1 << 20);
    let start = StdInstant::now();
    let mut i = 0u64;
    let mut b = [0u8; 1];
    let wire0 = p.wire.borrow().packets;
    loop {
        let t = StdInstant::now();
        let _ = p.sock(0, hc).send_slice(&[1u8]);
        loop {
            p.poll();
            let s = p.sock(1, hs);
            if s.can_recv() {
                let _ = s.recv_slice(&mut b);
                let _ = s.send_slice(&b);
                break;
            }
        }
        loop {
            p.poll();
            let c = p.sock(0, hc);
            if c.can_recv() {
                let _ = c.recv_slice(&mut b);
                break;
            }
        }
        i += 1;
        if i > 1000 {
            lat.push(t.elapsed().as_nanos() as u64);
        }
        if i & 255 == 0 && start.elapsed().as_secs_f64() >= secs {
            break;
        }
    }
    let wire = p.wire.borrow().packets - wire0;
    let mut f = latency_fields(lat);
    f["mtu"] = json!(mtu);
    f["packets_per_rt"] = json!(round3(wire as f64 / i as f64));
    emit("mem_pingpong", "smoltcp", f);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cl {
    Idle,
    Connecting,
    Sent,
    Closing,
}

/// Connection setup rate: `conc` client sockets each loop connect -> send 1 byte -> the
/// server reads it and closes -> the client sees EOF and closes. The server keeps a pool of
/// listening sockets on the port; a server socket that reaches TIME-WAIT is replaced by a
/// fresh listener (its 4-tuple is never reused within the run: client ports cycle over 16k).
pub fn connrate(secs: f64, conc: usize, mtu: usize, buf: usize) {
    let mut p = Pair::new(mtu);
    let port = 5003;
    let listeners = conc * 2;
    for _ in 0..listeners {
        let mut s = new_socket(buf);
        s.listen(port).expect("listen");
        p.sets[1].add(s);
    }
    let mut clients: Vec<(SocketHandle, Cl, StdInstant)> = Vec::with_capacity(conc);
    for _ in 0..conc {
        let h = p.sets[0].add(new_socket(buf));
        clients.push((h, Cl::Idle, StdInstant::now()));
    }
    let mut next_port: u16 = 49152;
    let (mut done, mut errors, mut timeouts) = (0u64, 0u64, 0u64);
    let start = StdInstant::now();
    let deadline = start + StdDuration::from_secs_f64(secs);
    let mut server_handles: Vec<SocketHandle> = p.sets[1].iter().map(|(h, _)| h).collect();
    while StdInstant::now() < deadline {
        p.poll();
        let now = StdInstant::now();
        for (h, st, since) in clients.iter_mut() {
            match *st {
                Cl::Idle => {
                    let lp = next_port;
                    next_port = if next_port == 65535 {
                        49152
                    } else {
                        next_port + 1
                    };
                    let cx = p.iface[0].context();
                    let s = p.sets[0].get_mut::<tcp::Socket>(*h);
                    if s.connect(cx, (SERVER, port), lp).is_ok() {
                        *st = Cl::Connecting;
                        *since = now;
                    } else {
                        errors += 1;
                    }
                }
                Cl::Connecting => {
                    let s = p.sets[0].get_mut::<tcp::Socket>(*h);
                    if s.may_send() {
                        let _ = s.send_slice(&[1u8]);
                        *st = Cl::Sent;
                    } else if s.state() == tcp::State::Closed {
                        errors += 1;
                        *st = Cl::Idle;
                    } else if now.duration_since(*since) > StdDuration::from_secs(3) {
                        timeouts += 1;
                        s.abort();
                        *st = Cl::Idle;
                    }
                }
                Cl::Sent => {
                    let s = p.sets[0].get_mut::<tcp::Socket>(*h);
                    if s.state() == tcp::State::CloseWait {
                        s.close();
                        *st = Cl::Closing;
                    } else if s.state() == tcp::State::Closed {
                        errors += 1;
                        *st = Cl::Idle;
                    }
                }
                Cl::Closing => {
                    let s = p.sets[0].get_mut::<tcp::Socket>(*h);
                    if s.state() == tcp::State::Closed {
                        done += 1;
                        *st = Cl::Idle;
                    }
                }
            }
        }
        for h in server_handles.iter_mut() {
            let s = p.sets[1].get_mut::<tcp::Socket>(*h);
            if s.can_recv() {
                let mut b = [0u8; 1];
                let _ = s.recv_slice(&mut b);
                s.close();
            }
            match s.state() {
                tcp::State::TimeWait | tcp::State::Closed => {
                    p.sets[1].remove(*h);
                    let mut n = new_socket(buf);
                    n.listen(port).expect("listen");
                    *h = p.sets[1].add(n);
                }
                _ => {}
            }
        }
    }
    let el = start.elapsed().as_secs_f64();
    let wp = p.wire.borrow().packets;
    emit(
        "mem_connrate",
        "smoltcp",
        json!({
            "conns": done, "secs": round3(el), "conn_per_s": round3(done as f64 / el), "conc": conc,
            "errors": errors, "timeouts": timeouts, "wire_packets": wp,
        }),
    );
}
