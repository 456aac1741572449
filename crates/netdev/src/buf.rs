//! Packet buffer with headroom (Linux: `struct sk_buff`, `skb_push`, `skb_pull`, `skb_put`).
//!
//! Transport layers write their payload once into a buffer that leaves room in front of it;
//! each lower layer then prepends its header with [`PacketBuf::push`] without moving the
//! payload. On receive, each layer strips its header with [`PacketBuf::pull`].

/// Headroom reserved by [`PacketBuf::with_payload_capacity`]: the largest IPv4 header (60)
/// plus the largest TCP header (60), rounded up.
pub const DEFAULT_HEADROOM: usize = 128;

/// An owned packet: `buf[head..tail]` is the data, `buf[..head]` is free headroom.
#[derive(Clone, Default)]
pub struct PacketBuf {
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    /// The transport checksum needs no verification (see [`PacketBuf::csum_unnecessary`]).
    csum_unnecessary: bool,
    /// Transmit: TCP segment size of a super-segment (see [`PacketBuf::gso_size`]).
    gso_size: u16,
    /// Transmit: the TCP checksum is left for the device (see [`PacketBuf::csum_partial`]).
    csum_partial: bool,
}

/// Two buffers are equal when their data are (headroom and tailroom hold stale bytes).
impl PartialEq for PacketBuf {
    fn eq(&self, other: &Self) -> bool {
        self.data() == other.data()
    }
}

impl Eq for PacketBuf {}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("len", &self.len())
            .field("headroom", &self.head)
            .finish()
    }
}

impl PacketBuf {
    /// An empty buffer with `headroom` bytes free in front and room for `capacity` bytes of data.
    ///
    /// The storage comes from a small per-thread pool of recycled packet buffers when one
    /// is free (dropped packets return theirs), so the steady state of a bulk transfer
    /// neither allocates nor zeroes per packet (Linux: the skb slab caches).
    pub fn with_headroom(headroom: usize, capacity: usize) -> Self {
        let need = headroom + capacity;
        // Small packets (ACKs, short messages) get pool-sized storage too, so that they
        // recycle through the pool instead of costing an allocation each.
        let buf = pool::take(need).unwrap_or_else(|| vec![0; pool::alloc_size(need)]);
        PacketBuf {
            buf,
            head: headroom,
            tail: headroom,
            csum_unnecessary: false,
            gso_size: 0,
            csum_partial: false,
        }
    }

    /// An empty buffer with [`DEFAULT_HEADROOM`] in front and room for `capacity` bytes.
    pub fn with_payload_capacity(capacity: usize) -> Self {
        Self::with_headroom(DEFAULT_HEADROOM, capacity)
    }

    /// A buffer holding a copy of `data`, with no headroom.
    pub fn from_slice(data: &[u8]) -> Self {
        PacketBuf::from_vec(data.to_vec())
    }

    /// A buffer taking ownership of `data`, with no headroom.
    pub fn from_vec(data: Vec<u8>) -> Self {
        let tail = data.len();
        PacketBuf {
            buf: data,
            head: 0,
            tail,
            csum_unnecessary: false,
            gso_size: 0,
            csum_partial: false,
        }
    }

    /// The packet bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.tail]
    }

    /// The packet bytes, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.tail]
    }

    /// Number of data bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.tail - self.head
    }

    /// Bytes of storage the packet holds, headroom and tailroom included (Linux
    /// `skb->truesize` without the metadata): what a queue that keeps the packet should
    /// charge for it.
    #[inline]
    pub fn truesize(&self) -> usize {
        self.buf.capacity()
    }

    /// True when the buffer holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.tail == self.head
    }

    /// True when the device vouches for the transport (TCP/UDP) checksum, so the
    /// transport must not verify it (Linux: `skb->ip_summed` is `CHECKSUM_UNNECESSARY`, or
    /// `CHECKSUM_PARTIAL` for a packet the local kernel built and has not checksummed yet,
    /// whose checksum field holds only the pseudo-header sum). Only a device sets it, for
    /// packets that come from the local kernel (a TUN with offloads); every new buffer,
    /// including one recycled from the pool, starts with it cleared. The IPv4 header
    /// checksum is always verified.
    #[inline]
    pub fn csum_unnecessary(&self) -> bool {
        self.csum_unnecessary
    }

    /// Sets or clears the flag read by [`PacketBuf::csum_unnecessary`].
    #[inline]
    pub fn set_csum_unnecessary(&mut self, v: bool) {
        self.csum_unnecessary = v;
    }

    /// Transmit side: when non-zero, this is a TCP super-segment (Linux: a GSO skb,
    /// `skb_shinfo(skb)->gso_size`) to be cut into segments of `gso_size` payload bytes by
    /// a device that accepts them ([`crate::NetDevice::tso_max`]); always set together
    /// with [`PacketBuf::csum_partial`]. Zero on every new buffer.
    #[inline]
    pub fn gso_size(&self) -> u16 {
        self.gso_size
    }

    /// Sets the value read by [`PacketBuf::gso_size`].
    #[inline]
    pub fn set_gso_size(&mut self, v: u16) {
        self.gso_size = v;
    }

    /// Transmit side: the TCP checksum field of this IPv4 packet holds only the folded
    /// pseudo-header sum and the device completes it (Linux: `CHECKSUM_PARTIAL` with
    /// `csum_start` at the TCP header and `csum_offset` 16). Only set for devices that
    /// offload checksums ([`crate::NetDevice::tso_max`] non-zero). False on every new
    /// buffer.
    #[inline]
    pub fn csum_partial(&self) -> bool {
        self.csum_partial
    }

    /// Sets or clears the flag read by [`PacketBuf::csum_partial`].
    #[inline]
    pub fn set_csum_partial(&mut self, v: bool) {
        self.csum_partial = v;
    }

    /// Free bytes in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Free bytes after the data that [`PacketBuf::put`] can use without reallocating.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.tail
    }

    /// Prepends `n` bytes and returns them for the caller to fill (Linux: `skb_push`).
    /// Reallocates (copying once) only if the headroom is too small.
    pub fn push(&mut self, n: usize) -> &mut [u8] {
        if n > self.head {
            let extra = n - self.head + super::buf::DEFAULT_HEADROOM;
            let mut nb = vec![0u8; extra + self.buf.len()];
            nb[extra + self.head..extra + self.tail]
                .copy_from_slice(&self.buf[self.head..self.tail]);
            self.buf = nb;
            self.head += extra;
            self.tail += extra;
        }
        self.head -= n;
        // Headroom may hold stale bytes of a recycled buffer: hand out zeroed space (a
        // header is a few dozen bytes).
        let h = &mut self.buf[self.head..self.head + n];
        h.fill(0);
        h
    }

    /// Removes `n` bytes from the front and returns them (Linux: `skb_pull`).
    /// Returns `None`, changing nothing, if the buffer holds fewer than `n` bytes.
    pub fn pull(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.len() {
            return None;
        }
        let old = self.head;
        self.head += n;
        Some(&self.buf[old..self.head])
    }

    /// Appends `n` zeroed bytes and returns them for the caller to fill (Linux: `skb_put`).
    pub fn put(&mut self, n: usize) -> &mut [u8] {
        let need = self.tail + n;
        if need > self.buf.len() {
            self.buf.resize(need, 0);
        }
        let old = self.tail;
        self.tail = need;
        let s = &mut self.buf[old..need];
        s.fill(0);
        s
    }

    /// Appends `n` bytes that the caller must overwrite completely, and returns them.
    /// Unlike [`PacketBuf::put`] they are not zeroed first (they hold stale bytes of a
    /// recycled buffer), which saves a pass over the payload when it is copied in at once.
    pub fn put_for_overwrite(&mut self, n: usize) -> &mut [u8] {
        let need = self.tail + n;
        if need > self.buf.len() {
            self.buf.resize(need, 0);
        }
        let old = self.tail;
        self.tail = need;
        &mut self.buf[old..need]
    }

    /// Appends a copy of `data`.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.put_for_overwrite(data.len()).copy_from_slice(data);
    }

    /// Cuts the data to `len` bytes (Linux: `skb_trim`); no effect if already shorter.
    pub fn trim(&mut self, len: usize) {
        if len < self.len() {
            self.tail = self.head + len;
        }
    }

    /// The data as an owned vector (copies only if there is headroom to drop).
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.head == 0 {
            let mut v = std::mem::take(&mut self.buf);
            v.truncate(self.tail);
            v
        } else {
            self.data().to_vec()
        }
    }
}

impl Drop for PacketBuf {
    fn drop(&mut self) {
        if self.buf.capacity() >= pool::MIN_BUF {
            pool::give(std::mem::take(&mut self.buf));
        }
    }
}

/// A per-thread free list of packet storage (Linux: `skbuff_head_cache` / page frag
/// caches). Bounded in count and bytes; buffers keep their (initialized) contents.
///
/// Storage comes in size classes (512 bytes to 32 KiB in powers of two, then 72 KiB for
/// the largest IP packets): a new buffer is allocated at its class's size, and a request
/// takes a buffer only from its own class, where every buffer fits it. A packet thus
/// holds less than twice the storage it needs (a 40-byte ACK never takes a 64 KiB read
/// buffer), which keeps per-byte accounting of queued packets (UDP receive queues)
/// honest, and taking a buffer is one pop.
mod pool {
    use std::cell::RefCell;

    /// Capacity of each class's buffers.
    const SIZES: [usize; 8] = [
        512,
        1 << 10,
        2 << 10,
        4 << 10,
        8 << 10,
        16 << 10,
        32 << 10,
        MAX_BUF,
    ];
    /// Smaller vectors are not worth keeping.
    pub(super) const MIN_BUF: usize = SIZES[0];
    /// Larger vectors (jumbo frames, oversized pushes) are freed, not kept.
    const MAX_BUF: usize = 72 * 1024;
    /// At most this many buffers per thread...
    const MAX_COUNT: usize = 1024;
    /// ...holding at most this many bytes.
    const MAX_BYTES: usize = 8 << 20;

    struct Pool {
        free: [Vec<Vec<u8>>; SIZES.len()],
        count: usize,
        bytes: usize,
    }

    thread_local! {
        static POOL: RefCell<Pool> = const {
            RefCell::new(Pool {
                free: [const { Vec::new() }; SIZES.len()],
                count: 0,
                bytes: 0,
            })
        };
    }

    /// The capacity to allocate for `need` bytes: its class's size (`need` itself above
    /// the largest class).
    pub(super) fn alloc_size(need: usize) -> usize {
        SIZES.iter().copied().find(|&s| s >= need).unwrap_or(need)
    }

    /// A recycled buffer whose length is at least `need`, from `need`'s class.
    pub(super) fn take(need: usize) -> Option<Vec<u8>> {
        let k = SIZES.iter().position(|&s| s >= need)?;
        POOL.try_with(|p| {
            let mut p = p.try_borrow_mut().ok()?;
            let v = p.free[k].pop()?;
            p.count -= 1;
            p.bytes -= v.capacity();
            Some(v)
        })
        .ok()
        .flatten()
    }

    /// Returns `v` to this thread's pool (or frees it when the pool is full). It joins
    /// the largest class whose size it covers.
    pub(super) fn give(mut v: Vec<u8>) {
        let cap = v.capacity();
        if cap > MAX_BUF {
            return;
        }
        let Some(k) = SIZES.iter().rposition(|&s| s <= cap) else {
            return;
        };
        let _ = POOL.try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                if p.count < MAX_COUNT && p.bytes + cap <= MAX_BYTES {
                    // Expose the whole allocation for the next user (zeroing only what
                    // was never initialized; a kept buffer's length never shrinks).
                    let len = v.len();
                    if len < cap {
                        v.resize(cap, 0);
                    }
                    p.count += 1;
                    p.bytes += cap;
                    p.free[k].push(v);
                }
            }
        });
    }
}

impl AsRef<[u8]> for PacketBuf {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_prepends_without_moving_payload() {
        let mut b = PacketBuf::with_headroom(40, 10);
        b.extend_from_slice(b"payload");
        let before = b.data().as_ptr();
        b.push(20).copy_from_slice(&[1; 20]);
        assert_eq!(b.len(), 27);
        assert_eq!(&b.data()[20..], b"payload");
        // The payload stayed where it was: the header went into the headroom.
        assert_eq!(unsafe_free_ptr_diff(before, b.data().as_ptr()), 20);
        assert_eq!(b.headroom(), 20);
    }

    fn unsafe_free_ptr_diff(a: *const u8, b: *const u8) -> usize {
        (a as usize) - (b as usize)
    }

    #[test]
    fn push_beyond_headroom_reallocates_and_keeps_data() {
        let mut b = PacketBuf::from_slice(b"xyz");
        b.push(2).copy_from_slice(b"ab");
        assert_eq!(b.data(), b"abxyz");
        assert!(b.headroom() >= DEFAULT_HEADROOM);
    }

    #[test]
    fn csum_flag_survives_pull_and_is_clear_on_new_buffers() {
        let mut b = PacketBuf::with_headroom(0, 1500);
        assert!(!b.csum_unnecessary());
        b.extend_from_slice(&[0u8; 1000]);
        b.set_csum_unnecessary(true);
        b.pull(20);
        assert!(b.csum_unnecessary());
        assert!(b.clone().csum_unnecessary());
        drop(b);
        // The storage just went back to this thread's pool; the next buffer reuses it
        // without the flag.
        let c = PacketBuf::with_headroom(0, 1500);
        assert!(!c.csum_unnecessary());
        assert!(!PacketBuf::from_slice(b"x").csum_unnecessary());
        assert!(!PacketBuf::default().csum_unnecessary());
    }

    #[test]
    fn small_packets_recycle_their_storage() {
        // An ACK-sized packet: storage from the pool, returned to it when dropped.
        let mut a = PacketBuf::with_headroom(DEFAULT_HEADROOM, 40);
        a.extend_from_slice(&[7u8; 40]);
        let storage = a.data().as_ptr() as usize - DEFAULT_HEADROOM;
        drop(a);
        // Were the storage freed, this heap allocation of the same size would likely
        // take it.
        #[allow(clippy::useless_vec)]
        let other = vec![1u8; DEFAULT_HEADROOM + 40];
        let b = PacketBuf::with_headroom(DEFAULT_HEADROOM, 52);
        assert_ne!(other.as_ptr() as usize, storage);
        assert_eq!(b.data().as_ptr() as usize - DEFAULT_HEADROOM, storage);
        assert_eq!(b.headroom(), DEFAULT_HEADROOM);
        assert!(b.is_empty());
    }

    #[test]
    fn recycled_storage_is_never_much_larger_than_needed() {
        // Fill the pool with every size of buffer, the largest read buffers included.
        let sizes = [
            40, 300, 700, 1_500, 1_600, 3_000, 9_000, 20_000, 40_000, 65_545,
        ];
        let held: Vec<PacketBuf> = sizes
            .iter()
            .flat_map(|&n| (0..3).map(move |_| PacketBuf::with_headroom(0, n)))
            .collect();
        drop(held);
        for &need in &sizes {
            let p = PacketBuf::with_headroom(DEFAULT_HEADROOM, need);
            let want = DEFAULT_HEADROOM + need;
            assert!(p.truesize() >= want);
            assert!(
                p.truesize() < 2 * want.max(512),
                "{need}: holds {} bytes",
                p.truesize()
            );
        }
        // A 40-byte ACK after a 64 KiB packet was dropped does not take its storage.
        drop(PacketBuf::with_headroom(0, 65_535));
        assert!(PacketBuf::with_headroom(DEFAULT_HEADROOM, 40).truesize() <= 512);
    }

    #[test]
    fn pull_and_trim() {
        let mut b = PacketBuf::from_slice(b"hello world");
        assert_eq!(b.pull(6), Some(&b"hello "[..]));
        assert_eq!(b.data(), b"world");
        assert_eq!(b.pull(6), None);
        assert_eq!(b.data(), b"world");
        b.trim(3);
        assert_eq!(b.data(), b"wor");
        b.trim(10);
        assert_eq!(b.data(), b"wor");
        assert_eq!(b.into_vec(), b"wor".to_vec());
    }
}
