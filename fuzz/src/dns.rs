//! The DNS stub resolver's response parser (`ustack::dns::wire`) on arbitrary bytes.

use ustack::dns::wire::{build_query, parse_response, read_name, HEADER_LEN};

/// The name and id every input is parsed as the answer to.
const NAME: &str = "a.test";
const ID: u16 = 9;

/// The first byte picks a mode: odd, the rest follows our own query's header and question
/// (with QR set and the answer count from the second byte), so that most inputs get past
/// the "is this ours" checks into the answer records; even, the rest is the whole
/// message. Also reads a name at an offset picked by the third byte.
pub fn dns_parse(data: &[u8]) {
    let msg = message(data);
    let rest = data.get(1..).unwrap_or_default();
    if let Ok(r) = parse_response(&msg, ID, NAME) {
        let an = usize::from(u16::from_be_bytes([msg[6], msg[7]]));
        assert!(
            r.addrs.len() <= an,
            "{} addresses from {an} answer records",
            r.addrs.len()
        );
        assert!(msg.len() >= HEADER_LEN);
        // A negative lifetime only without addresses, and within RFC 2181's TTL range.
        if let Some(t) = r.negative_ttl {
            assert!(r.addrs.is_empty(), "negative TTL {t} with addresses");
            assert!(t <= i32::MAX as u32, "negative TTL {t}");
        }
    }
    let at = usize::from(rest.get(2).copied().unwrap_or(0)) % (msg.len() + 1);
    if let Ok((name, end)) = read_name(&msg, at) {
        assert!(end <= msg.len() && name.len() <= 4 * 255);
    }
}

/// The message `data` stands for (see [`dns_parse`]).
fn message(data: &[u8]) -> Vec<u8> {
    let (mode, rest) = crate::mode_byte(data);
    if mode & 1 == 0 {
        return rest.to_vec();
    }
    let mut q = Vec::new();
    let Ok(()) = build_query(ID, NAME, &mut q) else {
        panic!("the query for {NAME} cannot be built");
    };
    q[2] |= 0x80; // QR
    q[7] = rest.first().copied().unwrap_or(0); // ANCOUNT (low byte)
    q.extend_from_slice(rest.get(1..).unwrap_or_default());
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds reach the answer records: the odd-mode seed is a CNAME then an A record.
    #[test]
    fn seeds_are_accepted_answers() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/dns_parse");
        let seed = std::fs::read(dir.join("seed-cname-a")).unwrap();
        let r = parse_response(&message(&seed), ID, NAME).unwrap();
        assert_eq!(r.addrs, [std::net::Ipv4Addr::new(10, 0, 0, 1)]);
        let whole = std::fs::read(dir.join("seed-whole")).unwrap();
        let r = parse_response(&message(&whole), ID, NAME).unwrap();
        assert_eq!(r.addrs, [std::net::Ipv4Addr::new(192, 0, 2, 1)]);
        dns_parse(&seed);
        dns_parse(&whole);
    }
}
