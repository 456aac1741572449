//! SYN cookies (RFC 4987 section 3.6), shaped like Linux `net/ipv4/syncookies.c`.
//!
//! When the SYN queue overflows, the listener answers a SYN without keeping state: the
//! SYN-ACK's sequence number (the cookie) carries a keyed hash of the 4-tuple, a minute
//! counter and a 2-bit index into [`MSS_TABLE`]. The third ACK acknowledges cookie + 1;
//! decoding `ack - 1` against the ACK's 4-tuple and `seq - 1` proves the peer saw our
//! SYN-ACK and recovers the MSS.
//!
//! Layout (Linux `secure_tcp_syn_cookie`, except that the client ISN goes into H1
//! instead of being added, so an ACK with a nearby wrong SEQ is rejected too):
//! `cookie = H1(tuple, client_isn) + (count << 24) + ((H2(tuple, count) + mss_index) mod 2^24)`.
//! A cookie is valid during the minute it was made and the next one (Linux
//! `MAX_SYNCOOKIE_AGE` = 2). With timestamps on, the peer's window scale, SACK permission
//! and ECN agreement ride in the low 6 bits of our TSval ([`encode_ts_options`], Linux
//! `cookie_init_timestamp`), since the SYN's other options are not kept; without
//! timestamps a cookie connection has none of them.

use std::net::SocketAddrV4;
use std::time::Duration;

use crate::isn::siphash24;

/// MSS values a cookie can carry (Linux `msstab[]` for IPv4).
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// Cookies stay valid this many minute-counter values (Linux `MAX_SYNCOOKIE_AGE`).
pub const MAX_AGE: u32 = 2;

const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;

/// Low TSval bits used for options (Linux `TSBITS`).
const TS_BITS: u32 = 6;
const TS_MASK: u32 = (1 << TS_BITS) - 1;
/// Linux `TS_OPT_WSCALE_MASK`: "no window scaling".
const TS_WSCALE_NONE: u32 = 0xf;
/// Linux `TS_OPT_SACK`.
const TS_SACK: u32 = 1 << 4;
/// Linux `TS_OPT_ECN`.
const TS_ECN: u32 = 1 << 5;

/// The minute counter cookies are stamped with (Linux `tcp_cookie_time`:
/// seconds / 60), from the time since the stack started.
pub fn minute_counter(elapsed: Duration) -> u32 {
    (elapsed.as_secs() / 60) as u32
}

/// Options recovered from a cookie timestamp (Linux `cookie_timestamp_decode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TsCookieOptions {
    /// The window scale the peer offered in its SYN (`None`: no window scaling).
    pub wscale: Option<u8>,
    /// The peer sent SACK-permitted.
    pub sack: bool,
    /// ECN was agreed: the SYN asked for it and our SYN-ACK said yes (Linux
    /// `cookie_ecn_ok`).
    pub ecn: bool,
}

/// Puts the peer's SYN options into the low 6 bits of our TSval `ts_now`, keeping the
/// result not after `ts_now` (Linux `cookie_init_timestamp`). `peer_wscale` values above
/// 14 are clamped to 14 (RFC 7323 section 2.3).
pub fn encode_ts_options(ts_now: u32, peer_wscale: Option<u8>, sack: bool, ecn: bool) -> u32 {
    let mut opts = peer_wscale.map_or(TS_WSCALE_NONE, |w| u32::from(w.min(14)));
    if sack {
        opts |= TS_SACK;
    }
    if ecn {
        opts |= TS_ECN;
    }
    let ts = (ts_now & !TS_MASK) | opts;
    if ts > ts_now {
        ts.wrapping_sub(TS_MASK + 1)
    } else {
        ts
    }
}

/// Reads the options back from the TSecr of the third ACK; `None` when the bits are
/// not a valid encoding (Linux `cookie_timestamp_decode`).
pub fn decode_ts_options(tsecr: u32) -> Option<TsCookieOptions> {
    let w = tsecr & TS_WSCALE_NONE;
    let wscale = match w {
        TS_WSCALE_NONE => None,
        0..=14 => Some(w as u8),
        _ => return None,
    };
    Some(TsCookieOptions {
        wscale,
        sack: tsecr & TS_SACK != 0,
        ecn: tsecr & TS_ECN != 0,
    })
}

/// The SYN-cookie codec, keyed by the stack secret (Linux `syncookie_secret`).
#[derive(Clone)]
pub struct SynCookies {
    secret: [u8; 16],
}

impl std::fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SynCookies { .. }")
    }
}

impl SynCookies {
    /// A codec keyed by `secret` (the same 16 bytes as the ISN generator is fine: the
    /// hashes are domain-separated).
    pub fn new(secret: [u8; 16]) -> Self {
        SynCookies { secret }
    }

    /// Linux `cookie_hash`: keyed hash of the tuple, a counter (or the client ISN) and
    /// which of the two hashes this is.
    fn hash(&self, local: SocketAddrV4, remote: SocketAddrV4, count: u32, which: u8) -> u32 {
        let mut m = [0u8; 18];
        m[0] = b'C';
        m[1] = which;
        m[2..6].copy_from_slice(&local.ip().octets());
        m[6..8].copy_from_slice(&local.port().to_be_bytes());
        m[8..12].copy_from_slice(&remote.ip().octets());
        m[12..14].copy_from_slice(&remote.port().to_be_bytes());
        m[14..18].copy_from_slice(&count.to_be_bytes());
        siphash24(&self.secret, &m) as u32
    }

    /// The cookie ISN for a SYN from `remote` to `local` with sequence `client_isn`
    /// offering `mss`, stamped with `minute_counter`; returns it with the MSS actually
    /// encoded (the largest table entry not above `mss`, at least 536).
    /// Linux: `cookie_v4_init_sequence` / `__cookie_v4_init_sequence`.
    pub fn encode(
        &self,
        minute_counter: u32,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        client_isn: u32,
        mss: u16,
    ) -> (u32, u16) {
        let idx = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0);
        let mss_used = MSS_TABLE.get(idx).copied().unwrap_or(MSS_TABLE[0]);
        let cookie = self
            .hash(local, remote, client_isn, 1)
            .wrapping_add(minute_counter << COOKIE_BITS)
            .wrapping_add(
                self.hash(local, remote, minute_counter, 2)
                    .wrapping_add(idx as u32)
                    & COOKIE_MASK,
            );
        (cookie, mss_used)
    }

    /// Checks the cookie of a third ACK: `cookie` = SEG.ACK - 1, `client_isn` =
    /// SEG.SEQ - 1, `local`/`remote` from the ACK. Returns the encoded MSS when the
    /// cookie was made for this tuple in `minute_counter_now` or the minute before.
    /// Linux: `__cookie_v4_check` / `check_tcp_syn_cookie`.
    pub fn decode(
        &self,
        minute_counter_now: u32,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        client_isn: u32,
        cookie: u32,
    ) -> Option<u16> {
        let c = cookie.wrapping_sub(self.hash(local, remote, client_isn, 1));
        // The top 8 bits hold the counter the cookie was made with (mod 256).
        let diff = minute_counter_now.wrapping_sub(c >> COOKIE_BITS) & (u32::MAX >> COOKIE_BITS);
        if diff >= MAX_AGE {
            return None;
        }
        let made = minute_counter_now.wrapping_sub(diff);
        let idx = c.wrapping_sub(self.hash(local, remote, made, 2)) & COOKIE_MASK;
        MSS_TABLE.get(idx as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn sa(a: [u8; 4], p: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(a), p)
    }

    fn codec() -> SynCookies {
        SynCookies::new(*b"0123456789abcdef")
    }

    #[test]
    fn roundtrip_carries_mss() {
        let c = codec();
        let l = sa([10, 0, 0, 1], 80);
        let r = sa([10, 0, 0, 2], 51000);
        for (offered, want) in [
            (1460, 1460),
            (9000, 1460),
            (1450, 1440),
            (1400, 1300),
            (1300, 1300),
            (600, 536),
            (200, 536),
        ] {
            let (cookie, used) = c.encode(7, l, r, 0xdead_beef, offered);
            assert_eq!(used, want);
            assert_eq!(c.decode(7, l, r, 0xdead_beef, cookie), Some(want));
            // Still valid the next minute, not the one after.
            assert_eq!(c.decode(8, l, r, 0xdead_beef, cookie), Some(want));
            assert_eq!(c.decode(9, l, r, 0xdead_beef, cookie), None);
        }
    }

    #[test]
    fn counter_wraps() {
        let c = codec();
        let l = sa([10, 0, 0, 1], 80);
        let r = sa([10, 0, 0, 2], 51000);
        let (cookie, _) = c.encode(u32::MAX, l, r, 5, 1460);
        assert_eq!(c.decode(0, l, r, 5, cookie), Some(1460));
        let (cookie, _) = c.encode(255, l, r, 5, 1460);
        assert_eq!(c.decode(256, l, r, 5, cookie), Some(1460));
    }

    #[test]
    fn rejects_wrong_tuple_isn_future_and_forgery() {
        let c = codec();
        let l = sa([10, 0, 0, 1], 80);
        let r = sa([10, 0, 0, 2], 51000);
        let (cookie, _) = c.encode(100, l, r, 1234, 1460);
        assert_eq!(
            c.decode(100, l, sa([10, 0, 0, 2], 51001), 1234, cookie),
            None
        );
        assert_eq!(
            c.decode(100, l, sa([10, 0, 0, 3], 51000), 1234, cookie),
            None
        );
        assert_eq!(c.decode(100, sa([10, 0, 0, 1], 81), r, 1234, cookie), None);
        assert_eq!(c.decode(100, l, r, 1235, cookie), None);
        assert_eq!(c.decode(99, l, r, 1234, cookie), None);
        assert_eq!(c.decode(100, l, r, 1234, cookie.wrapping_add(1 << 8)), None);
        // Another key rejects it.
        assert_eq!(
            SynCookies::new([7; 16]).decode(100, l, r, 1234, cookie),
            None
        );
        // Blind guesses almost never pass (2 bits of 24 are the MSS index).
        let mut rng = ustack_netdev::rng::SplitMix64::new(0x1234_5678);
        let mut passed = 0;
        for _ in 0..100_000 {
            let guess = rng.next_u64() as u32;
            if c.decode(100, l, r, 1234, guess).is_some() {
                passed += 1;
            }
        }
        assert!(passed < 5, "{passed} forged cookies accepted");
    }

    #[test]
    fn ts_options() {
        let ts = encode_ts_options(1_000_000, Some(7), true, false);
        assert!(ts <= 1_000_000 && 1_000_000 - ts < 64);
        assert_eq!(
            decode_ts_options(ts),
            Some(TsCookieOptions {
                wscale: Some(7),
                sack: true,
                ecn: false
            })
        );
        let ts = encode_ts_options(1_000_000, None, false, false);
        assert_eq!(
            decode_ts_options(ts),
            Some(TsCookieOptions {
                wscale: None,
                sack: false,
                ecn: false
            })
        );
        // Every combination survives, whatever the clock's low bits.
        for now in [0u32, 63, 64, 1_000_000, u32::MAX] {
            for ws in [None, Some(0), Some(14)] {
                for (sack, ecn) in [(false, false), (true, false), (false, true), (true, true)] {
                    let ts = encode_ts_options(now, ws, sack, ecn);
                    assert!(now.wrapping_sub(ts) < 64, "{now} {ts}");
                    assert_eq!(
                        decode_ts_options(ts),
                        Some(TsCookieOptions {
                            wscale: ws,
                            sack,
                            ecn
                        }),
                        "{now} {ws:?} {sack} {ecn}"
                    );
                }
            }
        }
        assert_eq!(decode_ts_options(14).and_then(|o| o.wscale), Some(14));
        assert_eq!(minute_counter(Duration::from_secs(125)), 2);
    }
}
