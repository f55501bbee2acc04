//! Key ranges as the protocol states them, and the order-preserving encoding of `(key, revision)` pairs.

use navarch_bus::store::StoreError;

/// The keys a request selects: one key, `[start, end)`, or every key from `start` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    start: Vec<u8>,
    end: End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Just `start`.
    Single,
    /// Up to this key, exclusive.
    Before(Vec<u8>),
    /// To the end of the key space.
    Unbounded,
}

impl KeyRange {
    /// The range of a request's `key` and `range_end` (empty: just `key`; `[0]`: every key from `key` on).
    ///
    /// Refuses a single empty key and an inverted range; `range_end == key` is an empty range, as in etcd.
    pub fn new(key: &[u8], range_end: &[u8]) -> Result<Self, StoreError> {
        let end = match range_end {
            [] if key.is_empty() => {
                return Err(StoreError::InvalidArgument("key is not provided".into()))
            }
            [] => End::Single,
            [0] => End::Unbounded,
            end if end < key => {
                return Err(StoreError::InvalidArgument(
                    "range_end sorts before key".into(),
                ))
            }
            end => End::Before(end.to_vec()),
        };
        Ok(Self {
            start: key.to_vec(),
            end,
        })
    }

    /// Just `key`.
    pub fn single(key: &[u8]) -> Self {
        Self {
            start: key.to_vec(),
            end: End::Single,
        }
    }

    /// The first key of the range.
    pub fn start(&self) -> &[u8] {
        &self.start
    }

    /// The single key this range selects, if it selects one.
    pub fn as_single(&self) -> Option<&[u8]> {
        matches!(self.end, End::Single).then_some(self.start.as_slice())
    }

    /// The first key after the range (`None`: the range runs to the end of the key space).
    pub fn end(&self) -> Option<Vec<u8>> {
        match &self.end {
            End::Single => {
                let mut next = self.start.clone();
                next.push(0);
                Some(next)
            }
            End::Before(end) => Some(end.clone()),
            End::Unbounded => None,
        }
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            End::Single => key == self.start,
            End::Before(end) => key >= self.start.as_slice() && key < end.as_slice(),
            End::Unbounded => key >= self.start.as_slice(),
        }
    }

    /// Whether the two ranges share a key.
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        let starts_before_end = |a: &KeyRange, b: &KeyRange| match a.end() {
            Some(end) => b.start.as_slice() < end.as_slice(),
            None => true,
        };
        starts_before_end(self, other) && starts_before_end(other, self)
    }
}

/// Encodes `key` so that encoded keys sort like the keys and none is a prefix of another: every `0x00` becomes
/// `0x00 0xff` and the key ends with `0x00 0x00` (FoundationDB's tuple layer). A revision can then follow it and
/// `(key, revision)` pairs sort by key, then revision.
pub fn encode_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2 + 8);
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// The encoded `(key, revision)` pair: [`encode_key`] then the revision in big-endian order.
pub fn encode_version(key: &[u8], revision: i64) -> Vec<u8> {
    let mut out = encode_key(key);
    out.extend_from_slice(&revision_bytes(revision));
    out
}

/// Splits an encoded `(key, revision)` pair; `None` when the bytes are not one.
pub fn decode_version(bytes: &[u8]) -> Option<(Vec<u8>, i64)> {
    let (encoded, revision) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    let revision = i64::from_be_bytes(revision.try_into().ok()?);
    let mut key = Vec::with_capacity(encoded.len());
    let mut bytes = encoded.iter();
    while let Some(&b) = bytes.next() {
        if b != 0 {
            key.push(b);
            continue;
        }
        match bytes.next() {
            Some(0xff) => key.push(0),
            Some(0) if bytes.len() == 0 => return Some((key, revision)),
            _ => return None,
        }
    }
    None
}

/// A revision as a key: big-endian so keys sort like revisions (revisions are never negative).
pub fn revision_bytes(revision: i64) -> [u8; 8] {
    revision.to_be_bytes()
}

/// The bounds of the encoded versions of every key in `range`.
pub fn version_bounds(range: &KeyRange) -> (Vec<u8>, Option<Vec<u8>>) {
    (
        encode_key(range.start()),
        range.end().map(|end| encode_key(&end)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_key_then_revision_order() {
        let keys: [&[u8]; 6] = [b"", b"\x00", b"\x00\x01", b"a", b"a\x00", b"a\x00b"];
        let mut encoded = Vec::new();
        for key in keys {
            for revision in [1, 2, 300] {
                encoded.push(encode_version(key, revision));
            }
        }
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(sorted, encoded);
        for key in keys {
            let bytes = encode_version(key, 77);
            assert_eq!(decode_version(&bytes), Some((key.to_vec(), 77)));
        }
        assert_eq!(decode_version(b"abc"), None);
        assert_eq!(
            decode_version(b"a\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01"),
            None
        );
    }

    #[test]
    fn version_bounds_select_exactly_the_range() {
        let range = KeyRange::new(b"b", b"d").unwrap();
        let (start, end) = version_bounds(&range);
        let end = end.unwrap();
        let inside = |key: &[u8]| {
            let v = encode_version(key, 5);
            v >= start && v < end
        };
        assert!(inside(b"b") && inside(b"b\x00") && inside(b"c\xff"));
        assert!(!inside(b"a\xff") && !inside(b"d") && !inside(b"d\x00"));
        let single = KeyRange::single(b"b");
        let (start, end) = version_bounds(&single);
        let end = end.unwrap();
        let v = encode_version(b"b", i64::MAX);
        assert!(v >= start && v < end);
        let v = encode_version(b"b\x00", 0);
        assert!(v >= end);
    }

    #[test]
    fn ranges_follow_the_protocol() {
        assert!(KeyRange::new(b"", b"").is_err());
        assert!(KeyRange::new(b"b", b"a").is_err());
        assert!(KeyRange::new(b"", &[0]).unwrap().contains(b"anything"));
        let empty = KeyRange::new(b"a", b"a").unwrap();
        assert!(!empty.contains(b"a"));
        let single = KeyRange::new(b"a", b"").unwrap();
        assert!(single.contains(b"a") && !single.contains(b"a\x00"));
        assert!(single.overlaps(&KeyRange::new(b"a", b"b").unwrap()));
        assert!(!single.overlaps(&KeyRange::new(b"a\x00", b"b").unwrap()));
        assert!(KeyRange::new(b"x", &[0])
            .unwrap()
            .overlaps(&KeyRange::single(b"y")));
        assert!(!KeyRange::single(b"a").overlaps(&KeyRange::single(b"b")));
    }
}
