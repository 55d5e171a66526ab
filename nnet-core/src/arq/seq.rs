//! Wrapping arithmetic on sequence numbers and millisecond timestamps.
//!
//! Both `sn` and `ts` are `u32` counters that wrap (PROTOCOL.md section 1). Two values
//! are compared through their wrapping difference read as a signed number, exactly like
//! `_itimediff` in the reference `ikcp.c`, so comparisons stay right across the wrap as
//! long as the values are less than 2^31 apart.

/// `a - b` as a signed distance: positive when `a` is after `b`.
#[inline]
pub(crate) fn diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_across_the_wrap() {
        assert!(diff(u32::MAX - 1, 2) < 0);
        assert!(diff(2, u32::MAX - 1) > 0);
        assert_eq!(diff(3, u32::MAX), 4);
        assert_eq!(diff(u32::MAX, 3), -4);
        assert_eq!(diff(7, 7), 0);
    }
}
