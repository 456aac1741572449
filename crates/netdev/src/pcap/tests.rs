use super::*;
use crate::loopback::Loopback;
use crate::testutil::{counting_waker, TsoDevice};

/// A unique temporary file path, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("ustack-netdev-{tag}-{}-{nanos}.pcap", std::process::id());
        TempPath(std::env::temp_dir().join(name))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A valid IPv4/UDP packet 10.0.0.1:1000 -> 10.0.0.2:2000 with `n` payload bytes.
fn udp(n: usize) -> PacketBuf {
    let total = 28 + n;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let mut sum: u32 = p[..20]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&1000u16.to_be_bytes());
    p[22..24].copy_from_slice(&2000u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + n) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = i as u8;
    }
    PacketBuf::from_vec(p)
}

struct Record {
    ts_sec: u32,
    incl: u32,
    orig: u32,
    data: Vec<u8>,
}

/// A minimal reader of little-endian classic pcap.
fn parse(file: &[u8]) -> (Vec<u8>, Vec<Record>) {
    let le32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let header = file[..24].to_vec();
    let mut records = Vec::new();
    let mut off = 24;
    while off < file.len() {
        let h = &file[off..off + 16];
        let incl = le32(&h[8..12]);
        let data = file[off + 16..off + 16 + incl as usize].to_vec();
        records.push(Record {
            ts_sec: le32(&h[0..4]),
            incl,
            orig: le32(&h[12..16]),
            data,
        });
        off += 16 + incl as usize;
    }
    assert_eq!(off, file.len(), "trailing garbage");
    (header, records)
}

#[test]
fn header_layout() {
    let h = file_header(LINKTYPE_RAW);
    assert_eq!(&h[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    assert_eq!(u16::from_le_bytes([h[4], h[5]]), 2);
    assert_eq!(u16::from_le_bytes([h[6], h[7]]), 4);
    assert_eq!(&h[8..16], &[0; 8]);
    assert_eq!(u32::from_le_bytes([h[16], h[17], h[18], h[19]]), 65535);
    assert_eq!(u32::from_le_bytes([h[20], h[21], h[22], h[23]]), 101);
    let r = record_header(UNIX_EPOCH + Duration::from_micros(5_000_123), 70_000);
    assert_eq!(u32::from_le_bytes([r[0], r[1], r[2], r[3]]), 5);
    assert_eq!(u32::from_le_bytes([r[4], r[5], r[6], r[7]]), 123);
    assert_eq!(u32::from_le_bytes([r[8], r[9], r[10], r[11]]), 65535);
    assert_eq!(u32::from_le_bytes([r[12], r[13], r[14], r[15]]), 70_000);
}

#[test]
fn captures_both_directions() {
    let tmp = TempPath::new("both");
    let mut cap = PcapCapture::new(Loopback::new(65536), &tmp.0).unwrap();
    cap.transmit(&mut vec![udp(10), udp(100), udp(1000)]);
    let (w, _) = counting_waker();
    let mut cx = Context::from_waker(&w);
    let mut out = Vec::new();
    assert!(matches!(
        cap.poll_recv(&mut cx, &mut out, 2),
        Poll::Ready(Ok(2))
    ));
    assert!(matches!(
        cap.poll_recv(&mut cx, &mut out, 2),
        Poll::Ready(Ok(1))
    ));
    // Going idle flushes: the file is complete before the capture is dropped.
    assert!(cap.poll_recv(&mut cx, &mut out, 2).is_pending());
    assert_eq!(cap.records(), 6);
    let (header, recs) = parse(&std::fs::read(&tmp.0).unwrap());
    assert_eq!(header, file_header(LINKTYPE_RAW).to_vec());
    assert_eq!(recs.len(), 6);
    let sizes: Vec<u32> = recs.iter().map(|r| r.orig).collect();
    assert_eq!(sizes, vec![38, 128, 1028, 38, 128, 1028]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    for (r, p) in recs.iter().zip(out.iter().chain(out.iter())) {
        assert_eq!(r.incl, r.orig);
        assert_eq!(r.data, p.data());
        assert!(now.abs_diff(r.ts_sec) < 60);
    }
    drop(cap);

    if let Ok(o) = std::process::Command::new("tcpdump")
        .args(["-nr"])
        .arg(&tmp.0)
        .output()
    {
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "tcpdump failed: {o:?}");
        assert_eq!(text.lines().count(), 6, "{text}");
        assert!(text.contains("10.0.0.1.1000 > 10.0.0.2.2000: UDP, length 1000"));
    } else {
        eprintln!("tcpdump not installed: skipping the tcpdump check");
    }
}

#[test]
fn flushes_on_drop_and_truncates_to_snaplen() {
    let tmp = TempPath::new("drop");
    let mut cap = PcapCapture::new(Loopback::new(100_000), &tmp.0).unwrap();
    let mut big = PacketBuf::from_vec(vec![0x45; 70_000]);
    big.data_mut()[1] = 1;
    cap.transmit(&mut vec![big]);
    drop(cap);
    let (_, recs) = parse(&std::fs::read(&tmp.0).unwrap());
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].incl, 65535);
    assert_eq!(recs[0].orig, 70_000);
    assert_eq!(recs[0].data.len(), 65535);
}

#[test]
fn bad_path_is_an_error() {
    let r = PcapCapture::new(Loopback::new(1500), "/nonexistent-dir/x.pcap");
    assert!(r.is_err());
}

/// Capturing leaves the device's transmit offload on: the stack keeps sending it
/// super-segments, and they are recorded whole.
#[test]
fn capture_keeps_the_devices_transmit_offload() {
    let path = TempPath::new("tso");
    let plain = PcapCapture::new(Loopback::new(1500), &path.0).unwrap();
    assert_eq!(plain.tso_max(), 0);
    drop(plain);
    let mut dev = PcapCapture::new(TsoDevice(Loopback::new(1500)), &path.0).unwrap();
    assert_eq!(dev.tso_max(), 65535);
    let mut pkts = vec![udp(20_000)];
    dev.transmit(&mut pkts);
    dev.flush().unwrap();
    let data = std::fs::read(&path.0).unwrap();
    // One record after the 24-byte header: 16-byte record header, then all 20,028 bytes.
    let incl = u32::from_le_bytes([data[32], data[33], data[34], data[35]]);
    assert_eq!(incl, 20_028);
    assert_eq!(data.len(), 24 + 16 + 20_028);
}

#[test]
fn ethernet_devices_are_captured_as_ethernet() {
    let tmp = TempPath::new("ether");
    let (a, _b) = crate::mem::MemLink::pair(crate::mem::MemLinkConfig {
        ethernet: true,
        ..Default::default()
    });
    let cap = PcapCapture::new(a, &tmp.0).unwrap();
    assert!(matches!(cap.link(), crate::Link::Ethernet(_)));
    drop(cap);
    let (header, _) = parse(&std::fs::read(&tmp.0).unwrap());
    assert_eq!(header, file_header(LINKTYPE_ETHERNET).to_vec());
    assert_eq!(
        u32::from_le_bytes([header[20], header[21], header[22], header[23]]),
        1
    );
}
