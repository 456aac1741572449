//! TCP sequence numbers with wrapping comparison (RFC 9293 section 3.4, RFC 1982).

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A 32-bit TCP sequence number. Comparisons use the signed distance, so they are valid
/// for numbers less than 2^31 apart (Linux: `before()` / `after()`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// `self` comes strictly before `other` (Linux: `before`).
    #[inline]
    pub fn lt(self, other: SeqNum) -> bool {
        (self.0.wrapping_sub(other.0) as i32) < 0
    }
    /// `self` is before or equal to `other`.
    #[inline]
    pub fn le(self, other: SeqNum) -> bool {
        (self.0.wrapping_sub(other.0) as i32) <= 0
    }
    /// `self` comes strictly after `other` (Linux: `after`).
    #[inline]
    pub fn gt(self, other: SeqNum) -> bool {
        other.lt(self)
    }
    /// `self` is after or equal to `other`.
    #[inline]
    pub fn ge(self, other: SeqNum) -> bool {
        other.le(self)
    }
    /// The later of the two.
    #[inline]
    pub fn max(self, other: SeqNum) -> SeqNum {
        if self.ge(other) {
            self
        } else {
            other
        }
    }
    /// The earlier of the two.
    #[inline]
    pub fn min(self, other: SeqNum) -> SeqNum {
        if self.le(other) {
            self
        } else {
            other
        }
    }
    /// Unsigned distance from `base` forward to `self` (wrapping): the byte count in
    /// `[base, self)` when `self` is not before `base`.
    #[inline]
    pub fn since(self, base: SeqNum) -> u32 {
        self.0.wrapping_sub(base.0)
    }
    /// `lo <= self < hi` in sequence space.
    #[inline]
    pub fn in_range(self, lo: SeqNum, hi: SeqNum) -> bool {
        self.ge(lo) && self.lt(hi)
    }
    /// Ordering in sequence space (only meaningful for numbers < 2^31 apart).
    #[inline]
    pub fn seq_cmp(self, other: SeqNum) -> Ordering {
        (self.0.wrapping_sub(other.0) as i32).cmp(&0)
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn add(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs))
    }
}

impl AddAssign<u32> for SeqNum {
    #[inline]
    fn add_assign(&mut self, rhs: u32) {
        self.0 = self.0.wrapping_add(rhs);
    }
}

impl Sub<SeqNum> for SeqNum {
    type Output = i32;
    /// Signed distance `self - rhs`.
    #[inline]
    fn sub(self, rhs: SeqNum) -> i32 {
        self.0.wrapping_sub(rhs.0) as i32
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_compare() {
        let a = SeqNum(u32::MAX - 5);
        let b = a + 10;
        assert_eq!(b.0, 4);
        assert!(a.lt(b) && b.gt(a) && a.le(a) && a.ge(a));
        assert_eq!(b - a, 10);
        assert_eq!(a - b, -10);
        assert_eq!(b.since(a), 10);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
        assert!(SeqNum(3).in_range(a, b));
        assert!(!b.in_range(a, b));
    }
}
