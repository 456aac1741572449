//! The byte queues of a connection: the send buffer (data written by the application and
//! not yet acknowledged) and the receive buffer (in-order data not yet read).
//!
//! A ring over storage that is always initialised, so the free space after the last byte
//! can be handed out as plain `&mut [u8]` and written in place. That is what lets the
//! receive path copy a payload into the queue and checksum it in one pass (Linux:
//! `skb_copy_and_csum_datagram`), instead of copying first and summing what was copied.

use ustack_ipv4::checksum;

/// Smallest storage a ring allocates (most messages of a chatty connection fit).
const MIN_CAP: usize = 64;

/// A growable FIFO of bytes: appended at the back, consumed from the front.
#[derive(Clone, Debug, Default)]
pub(crate) struct ByteRing {
    /// The storage; its length is the ring's capacity. Every byte is initialised.
    buf: Vec<u8>,
    /// Index in `buf` of the first queued byte.
    head: usize,
    /// Bytes queued.
    len: usize,
}

impl ByteRing {
    /// An empty ring that owns no storage.
    pub(crate) const fn new() -> Self {
        ByteRing {
            buf: Vec::new(),
            head: 0,
            len: 0,
        }
    }

    /// Bytes queued.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of storage owned.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Drops every queued byte; the storage stays.
    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// The queued bytes, oldest first, as at most two slices.
    #[inline]
    pub(crate) fn as_slices(&self) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        let end = self.head + self.len;
        if end <= cap {
            (self.buf.get(self.head..end).unwrap_or_default(), &[])
        } else {
            let (front, back) = self.buf.split_at(self.head);
            (back, front.get(..end - cap).unwrap_or_default())
        }
    }

    /// Removes the first `n` bytes (all of them if fewer are queued).
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.len -= n;
        self.head = if self.len == 0 {
            0
        } else {
            (self.head + n) % self.buf.len()
        };
    }

    /// Keeps only the first `n` bytes (no effect if `n >= len`).
    pub(crate) fn truncate(&mut self, n: usize) {
        if n < self.len {
            self.len = n;
            if n == 0 {
                self.head = 0;
            }
        }
    }

    /// Appends `data`.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        let (a, b) = self.grow_tail(data.len());
        let (da, db) = data.split_at(a.len());
        a.copy_from_slice(da);
        b.copy_from_slice(db);
    }

    /// Offers `f` the free space after the queued data in place, up to `n` bytes and as
    /// one contiguous part (it ends early where the storage wraps), and queues what `f`
    /// says it wrote (capped at what it was given). `f` is called once. The space holds
    /// whatever the storage held before. Nothing is queued if `f` panics.
    pub(crate) fn extend_with(&mut self, n: usize, f: &mut dyn FnMut(&mut [u8]) -> usize) -> usize {
        if n == 0 {
            return 0;
        }
        if self.len + n > self.buf.len() {
            self.reserve_exact_grow(self.len + n);
        }
        let cap = self.buf.len();
        let start = (self.head + self.len) % cap;
        let end = (start + n).min(cap);
        let Some(space) = self.buf.get_mut(start..end) else {
            return 0;
        };
        let wrote = f(space).min(end - start);
        self.len += wrote;
        wrote
    }

    /// Shows `f` the oldest queued bytes in place, as one contiguous part (all of them
    /// unless they wrap around the end of the storage), and returns how many `f` consumed
    /// (capped at what it was shown). `f` is called once, and not at all when the ring is
    /// empty. The caller removes the bytes.
    pub(crate) fn read_with(&self, f: &mut dyn FnMut(&[u8]) -> usize) -> usize {
        let (a, _) = self.as_slices();
        if a.is_empty() {
            return 0;
        }
        f(a).min(a.len())
    }

    /// Appends `data` and returns its unfolded one's-complement sum
    /// (`checksum::sum(data, 0)`), computed while copying: each byte is read once.
    pub(crate) fn extend_sum(&mut self, data: &[u8]) -> u64 {
        let (a, b) = self.grow_tail(data.len());
        let (da, db) = data.split_at(a.len());
        let acc = checksum::copy_sum(da, a, 0);
        if db.is_empty() {
            return acc;
        }
        let part = checksum::copy_sum(db, b, 0);
        // The second piece starts `a.len()` bytes into the data: at an odd offset its
        // 16-bit words pair the other way round.
        if da.len() % 2 == 0 {
            acc + part
        } else {
            checksum::add_at_odd_offset(acc, part)
        }
    }

    /// Makes room for `n` more bytes, queues them (with whatever the storage held) and
    /// returns where they are, to be overwritten by the caller.
    fn grow_tail(&mut self, n: usize) -> (&mut [u8], &mut [u8]) {
        if self.len + n > self.buf.len() {
            self.reserve_exact_grow(self.len + n);
        }
        let cap = self.buf.len();
        let start = (self.head + self.len) % cap.max(1);
        self.len += n;
        let (front, back) = self.buf.split_at_mut(start);
        if start + n <= cap {
            (back.get_mut(..n).unwrap_or_default(), &mut [])
        } else {
            (back, front.get_mut(..start + n - cap).unwrap_or_default())
        }
    }

    /// Grows the storage to at least `need` bytes (doubling, like `Vec`). The contents
    /// are made contiguous at the start first, so the storage can be reallocated in
    /// place where the allocator allows and only the new part is zeroed.
    fn reserve_exact_grow(&mut self, need: usize) {
        let cap = need.max(self.buf.len() * 2).max(MIN_CAP);
        if self.head + self.len <= self.buf.len() {
            self.buf.copy_within(self.head..self.head + self.len, 0);
        } else {
            self.buf.rotate_left(self.head);
        }
        self.head = 0;
        self.buf.resize(cap, 0);
    }

    /// A ring of `cap` bytes of storage holding `data`, stored so that it wraps around
    /// the end of the storage `front` bytes in (`front < cap`, `data.len() <= cap`).
    #[cfg(test)]
    pub(crate) fn wrapped(cap: usize, front: usize, data: &[u8]) -> ByteRing {
        let mut r = ByteRing::new();
        r.extend(&vec![0u8; cap]);
        r.consume(cap);
        r.extend(&vec![0u8; cap - front]);
        r.consume(cap - front - 1);
        r.extend(data);
        r.consume(1);
        assert_eq!(r.capacity(), cap);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(r: &ByteRing) -> Vec<u8> {
        let (a, b) = r.as_slices();
        [a, b].concat()
    }

    /// The ring against a `VecDeque` model through appends, consumes and truncates that
    /// wrap around the storage and grow it, with the fused checksum checked against a
    /// plain sum of each appended piece.
    #[test]
    fn behaves_like_a_deque_and_sums_what_it_copies() {
        let mut r = ByteRing::new();
        let mut model = std::collections::VecDeque::new();
        let mut rng = ustack_netdev::rng::SplitMix64::new(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.next_u64();
        for step in 0..20_000 {
            let op = next() % 8;
            let n = (next() % 1600) as usize;
            match op {
                0..=3 => {
                    let data: Vec<u8> = (0..n).map(|_| next() as u8).collect();
                    if op % 2 == 0 {
                        let s = r.extend_sum(&data);
                        assert_eq!(
                            checksum::fold(s),
                            checksum::fold(checksum::sum(&data, 0)),
                            "step {step}: sum of {n} bytes"
                        );
                    } else {
                        r.extend(&data);
                    }
                    model.extend(data);
                }
                4..=6 => {
                    r.consume(n);
                    model.drain(..n.min(model.len()));
                }
                _ => {
                    let keep = model.len().saturating_sub(n % 64);
                    r.truncate(keep);
                    model.truncate(keep);
                }
            }
            assert_eq!(r.len(), model.len(), "step {step}");
            assert_eq!(r.is_empty(), model.is_empty());
            assert!(r.capacity() >= r.len());
            if step % 97 == 0 {
                assert_eq!(contents(&r), model.iter().copied().collect::<Vec<_>>());
            }
        }
        assert_eq!(contents(&r), model.iter().copied().collect::<Vec<_>>());
    }

    /// An append that wraps after an odd number of bytes: the second piece's sum is
    /// byte-swapped before it is added.
    #[test]
    fn append_wrapping_at_odd_offset_sums_correctly() {
        for back in [1usize, 3, 7, 33, 2, 10] {
            for len in [MIN_CAP - 1, 39, 40] {
                let data: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
                // One byte queued, followed by `back` free bytes at the end of the storage.
                let mut r = ByteRing::wrapped(MIN_CAP, back + 1, &[9u8]);
                let s = r.extend_sum(&data);
                let (a, b) = r.as_slices();
                assert_eq!(a.len(), 1 + back, "back {back} len {len}");
                assert_eq!(b.len(), len - back);
                assert_eq!(r.capacity(), MIN_CAP);
                assert_eq!(
                    checksum::fold(s),
                    checksum::fold(checksum::sum(&data, 0)),
                    "back {back} len {len}"
                );
                let mut want = vec![9u8];
                want.extend_from_slice(&data);
                assert_eq!(contents(&r), want);
            }
        }
    }

    /// Writing and reading in place agree with the copying forms, across the wrap of the
    /// storage, for closures that take all, part or none of what they are offered.
    #[test]
    fn in_place_writes_and_reads_match_copies() {
        let mut r = ByteRing::wrapped(MIN_CAP, 10, &[1, 2, 3]);
        let mut next = 4u8;
        let mut fill = |space: &mut [u8]| {
            for b in space.iter_mut() {
                *b = next;
                next += 1;
            }
            space.len()
        };
        // 40 bytes asked: 7 fit before the end of the storage, so 7 are offered.
        assert_eq!(r.extend_with(40, &mut fill), 7);
        // Then the space after the wrap.
        assert_eq!(r.extend_with(33, &mut fill), 33);
        assert_eq!(contents(&r), (1..=43).collect::<Vec<u8>>());
        // A closure that writes less queues only that; claims beyond the space are capped.
        assert_eq!(
            r.extend_with(5, &mut |s: &mut [u8]| {
                s[0] = 44;
                1
            }),
            1
        );
        assert_eq!(
            r.extend_with(2, &mut |s: &mut [u8]| {
                s.fill(45);
                99
            }),
            2
        );
        assert_eq!(
            r.extend_with(0, &mut |_s: &mut [u8]| panic!("not called")),
            0
        );
        assert_eq!(r.len(), 46);
        // Reading shows the first contiguous part: 10 bytes before the end of the storage.
        let mut seen = Vec::new();
        let mut take_all = |d: &[u8]| {
            seen.extend_from_slice(d);
            d.len()
        };
        assert_eq!(r.read_with(&mut take_all), 10);
        r.consume(10);
        assert_eq!(r.read_with(&mut take_all), 36);
        r.consume(36);
        let mut want: Vec<u8> = (1..=44).collect();
        want.extend([45, 45]);
        assert_eq!(seen, want);
        r.extend(b"abcdef");
        assert_eq!(r.read_with(&mut |d: &[u8]| d.len().min(3) + 100), 6);
        assert_eq!(r.read_with(&mut |d: &[u8]| d.len().min(3)), 3);
        r.consume(6);
        assert_eq!(r.read_with(&mut |_d: &[u8]| panic!("not called")), 0);
        // A closure that panics queues nothing.
        let len = r.len();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            r.extend_with(8, &mut |_s: &mut [u8]| panic!("application bug"))
        }));
        assert!(caught.is_err());
        assert_eq!(r.len(), len);
    }

    #[test]
    fn empty_ring_owns_nothing_and_clear_keeps_storage() {
        let mut r = ByteRing::new();
        assert_eq!(r.capacity(), 0);
        assert_eq!(r.as_slices(), (&[][..], &[][..]));
        r.consume(10);
        r.truncate(0);
        assert!(r.is_empty());
        r.extend(b"hello");
        assert_eq!(r.capacity(), MIN_CAP);
        r.clear();
        assert!(r.is_empty());
        assert_eq!(r.capacity(), MIN_CAP);
        r.extend(b"");
        assert!(r.is_empty());
    }
}
