//! A set of `u64` as sorted, disjoint, non-adjacent inclusive ranges: acks and
//! deliveries of a queue arrive mostly in order, so a queue's whole ack state is a
//! handful of ranges however many messages it took.

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    pub fn new() -> Self {
        RangeSet::default()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges, in order: `(first, last)`, both included.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    pub fn max(&self) -> Option<u64> {
        self.ranges.last().map(|r| r.1)
    }

    /// The index of the first range that ends at or after `v`.
    fn find(&self, v: u64) -> usize {
        self.ranges.partition_point(|r| r.1 < v)
    }

    pub fn contains(&self, v: u64) -> bool {
        self.ranges.get(self.find(v)).is_some_and(|r| r.0 <= v)
    }

    pub fn insert(&mut self, v: u64) {
        // In-order inserts extend the last range: check that first.
        if let Some(last) = self.ranges.last_mut() {
            if last.1.checked_add(1) == Some(v) {
                last.1 = v;
                return;
            }
            if v > last.1 {
                self.ranges.push((v, v));
                return;
            }
        }
        let i = self.find(v);
        if self.ranges.get(i).is_some_and(|r| r.0 <= v) {
            return;
        }
        let joins_prev = i > 0 && self.ranges[i - 1].1 + 1 == v;
        let joins_next = self.ranges.get(i).is_some_and(|r| r.0 == v + 1);
        match (joins_prev, joins_next) {
            (true, true) => {
                self.ranges[i - 1].1 = self.ranges[i].1;
                self.ranges.remove(i);
            }
            (true, false) => self.ranges[i - 1].1 = v,
            (false, true) => self.ranges[i].0 = v,
            (false, false) => self.ranges.insert(i, (v, v)),
        }
    }

    /// Forgets every value below `floor`.
    pub fn remove_below(&mut self, floor: u64) {
        let i = self.find(floor);
        self.ranges.drain(..i);
        if let Some(first) = self.ranges.first_mut() {
            first.0 = first.0.max(floor);
        }
    }

    /// Builds a set from ranges as [`RangeSet::ranges`] gave them; `None` if they are
    /// not sorted, disjoint and non-adjacent (a corrupt record).
    pub fn from_ranges(ranges: Vec<(u64, u64)>) -> Option<Self> {
        let ordered = ranges.iter().all(|r| r.0 <= r.1)
            && ranges.windows(2).all(|w| w[0].1.checked_add(1).is_some_and(|end| end < w[1].0));
        ordered.then_some(RangeSet { ranges })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_merge_in_any_order() {
        let mut s = RangeSet::new();
        for v in [5, 1, 3, 2, 9, 4, 10, 7] {
            s.insert(v);
        }
        assert_eq!(s.ranges(), &[(1, 5), (7, 7), (9, 10)]);
        s.insert(8);
        assert_eq!(s.ranges(), &[(1, 5), (7, 10)]);
        s.insert(3);
        assert_eq!(s.ranges(), &[(1, 5), (7, 10)]);
        assert!(s.contains(1) && s.contains(8) && !s.contains(6) && !s.contains(11) && !s.contains(0));
    }

    #[test]
    fn remove_below_cuts_ranges() {
        let mut s = RangeSet::from_ranges(vec![(1, 5), (7, 10), (20, 20)]).unwrap();
        s.remove_below(8);
        assert_eq!(s.ranges(), &[(8, 10), (20, 20)]);
        s.remove_below(21);
        assert!(s.is_empty());
    }

    #[test]
    fn from_ranges_refuses_overlap_and_adjacency() {
        assert!(RangeSet::from_ranges(vec![(1, 5), (5, 9)]).is_none());
        assert!(RangeSet::from_ranges(vec![(1, 5), (6, 9)]).is_none());
        assert!(RangeSet::from_ranges(vec![(3, 2)]).is_none());
        assert!(RangeSet::from_ranges(vec![(1, u64::MAX), (3, 4)]).is_none());
        assert!(RangeSet::from_ranges(vec![(1, 5), (7, 9)]).is_some());
    }
}
