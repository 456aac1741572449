//! Socket ids and the socket slab (Linux: the `struct sock` objects of the stack).

/// Identifies a socket in a [`crate::TcpLayer`]. A slot index plus a generation, so an id
/// kept after its socket was freed never reaches a newer socket in the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SockId {
    idx: u32,
    gen: u32,
}

impl SockId {
    /// The id packed into 64 bits (generation high, index low); stable for the id's life.
    pub fn to_u64(self) -> u64 {
        ((self.gen as u64) << 32) | self.idx as u64
    }

    /// The inverse of [`SockId::to_u64`].
    pub fn from_u64(v: u64) -> SockId {
        SockId {
            idx: v as u32,
            gen: (v >> 32) as u32,
        }
    }

    /// The slot index (for diagnostics).
    pub fn index(self) -> u32 {
        self.idx
    }
}

struct Slot<T> {
    gen: u32,
    val: Option<T>,
}

/// A generational slab: O(1) insert, lookup and removal.
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn insert(&mut self, val: T) -> SockId {
        self.len += 1;
        if let Some(idx) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(idx as usize) {
                slot.gen = slot.gen.wrapping_add(1);
                slot.val = Some(val);
                return SockId { idx, gen: slot.gen };
            }
        }
        let idx = self.slots.len() as u32;
        self.slots.push(Slot {
            gen: 1,
            val: Some(val),
        });
        SockId { idx, gen: 1 }
    }

    pub(crate) fn get(&self, id: SockId) -> Option<&T> {
        let s = self.slots.get(id.idx as usize)?;
        if s.gen == id.gen {
            s.val.as_ref()
        } else {
            None
        }
    }

    pub(crate) fn get_mut(&mut self, id: SockId) -> Option<&mut T> {
        let s = self.slots.get_mut(id.idx as usize)?;
        if s.gen == id.gen {
            s.val.as_mut()
        } else {
            None
        }
    }

    pub(crate) fn remove(&mut self, id: SockId) -> Option<T> {
        let s = self.slots.get_mut(id.idx as usize)?;
        if s.gen != id.gen {
            return None;
        }
        let v = s.val.take()?;
        self.free.push(id.idx);
        self.len -= 1;
        Some(v)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every stored value, read-only (a full scan: for diagnostics).
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|s| s.val.as_ref())
    }

    /// Every stored value (a full scan: for rare events only).
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().filter_map(|s| s.val.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_ids_miss() {
        let mut s = Slab::new();
        let a = s.insert(1);
        assert_eq!(s.remove(a), Some(1));
        let b = s.insert(2);
        assert_eq!(a.index(), b.index());
        assert!(s.get(a).is_none());
        assert_eq!(s.get(b), Some(&2));
        assert_eq!(SockId::from_u64(b.to_u64()), b);
        assert_eq!(s.len(), 1);
    }
}
