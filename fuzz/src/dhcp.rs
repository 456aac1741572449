//! The DHCP client's reply parser (`ustack::dhcp::wire`) on arbitrary bytes.

use ustack::dhcp::wire::{Reply, BOOTREPLY, FIXED_LEN, MAGIC_COOKIE};

/// The first byte picks a mode: odd, the rest follows a valid fixed part and magic
/// cookie (so that most inputs reach the options, and the second byte lands in the
/// `sname`/`file` fields used by option overload); even, the rest is the whole message.
pub fn dhcp_parse(data: &[u8]) {
    let msg = message(data);
    let Ok(r) = Reply::parse(&msg) else {
        return;
    };
    assert!(msg.len() >= FIXED_LEN + MAGIC_COOKIE.len());
    assert!(r.msg_type.is_some(), "accepted without a message type");
    // Addresses come four bytes each out of at most three option fields.
    assert!(4 * (r.routers.len() + r.dns.len()) <= msg.len());
    // Classless routes: at least five bytes each, prefixes of at most 32 bits with no
    // destination bits past them.
    if let Some(routes) = &r.classless_routes {
        assert!(!routes.is_empty());
        assert!(5 * routes.len() <= msg.len());
        for (dst, len, _) in routes {
            assert!(*len <= 32, "/{len}");
            let host_bits = u32::MAX.checked_shr(u32::from(*len)).unwrap_or(0);
            assert_eq!(u32::from(*dst) & host_bits, 0, "{dst}/{len}");
        }
    }
    if let Some(d) = &r.domain {
        assert!(
            !d.is_empty() && d.bytes().all(|c| c.is_ascii_graphic()),
            "{d:?}"
        );
    }
    assert_eq!(Reply::parse(&msg), Ok(r), "parsing is not deterministic");
}

/// The message `data` stands for (see [`dhcp_parse`]).
fn message(data: &[u8]) -> Vec<u8> {
    let (mode, rest) = crate::mode_byte(data);
    if mode & 1 == 0 {
        return rest.to_vec();
    }
    let mut m = vec![0u8; FIXED_LEN];
    m[0] = BOOTREPLY;
    m[1] = 1;
    m[2] = 6;
    // The overload fields (sname at 44, file at 108) start with the input's first bytes
    // when the mode says so.
    let (head, opts) = rest.split_at(rest.len().min(usize::from(mode >> 1) % 32));
    let at = if mode & 2 == 0 { 44 } else { 108 };
    m[at..at + head.len()].copy_from_slice(head);
    m.extend_from_slice(&MAGIC_COOKIE);
    m.extend_from_slice(opts);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use ustack::dhcp::wire::MsgType;

    /// The seeds are accepted replies: an ACK with its options, an OFFER through option
    /// overload.
    #[test]
    fn seeds_are_accepted_replies() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/dhcp_parse");
        let ack = std::fs::read(dir.join("seed-ack")).unwrap();
        let r = Reply::parse(&message(&ack)).unwrap();
        assert_eq!(r.msg_type, Some(MsgType::Ack));
        assert_eq!((r.lease_secs, r.mtu), (Some(3600), Some(1500)));
        assert_eq!(r.domain.as_deref(), Some("lan"));
        let routes = r.classless_routes.clone().unwrap();
        assert_eq!(routes.len(), 2);
        assert_eq!((routes[0].1, routes[1].1), (24, 0));
        let over = std::fs::read(dir.join("seed-overload")).unwrap();
        let r = Reply::parse(&message(&over)).unwrap();
        assert_eq!(r.msg_type, Some(MsgType::Offer));
        dhcp_parse(&ack);
        dhcp_parse(&over);
    }
}
