//! Keys and values of the generic buckets' in-memory maps, short ones held
//! inline.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Longest byte string held inline: every key the typed layer writes fits
/// (dedup keys are 13 bytes), and most of its values; longer ones go to
/// the heap. 22 keeps a `Bytes` as small as a `Vec<u8>`, so the B-tree's
/// nodes are no larger than with `Vec` keys and values (with 30, dedup
/// checks were slower: benches/README.md, "Figures behind design
/// choices").
const INLINE: usize = 22;

const _: () = assert!(std::mem::size_of::<Bytes>() == std::mem::size_of::<Vec<u8>>());

/// A bucket key or value, ordered, compared and hashed as its bytes.
///
/// The maps are B-trees searched by comparing keys within each node. A key
/// on the heap costs a pointer chase (usually a cache miss) per
/// comparison (figures: benches/README.md, "Figures behind design
/// choices"). Inline keys
/// sit in the node itself. So do inline values, which a checkpoint that
/// rewrites a bucket's segment then reads in node order instead of one
/// cache miss per entry.
#[derive(Clone)]
pub(crate) enum Bytes {
    /// Up to [`INLINE`] bytes, the first `len` of `bytes`.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// Longer ones.
    Heap(Box<[u8]>),
}

impl From<&[u8]> for Bytes {
    fn from(k: &[u8]) -> Bytes {
        if k.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..k.len()].copy_from_slice(k);
            Bytes::Inline {
                len: k.len() as u8,
                bytes,
            }
        } else {
            Bytes::Heap(k.into())
        }
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(k: Vec<u8>) -> Bytes {
        if k.len() <= INLINE {
            Bytes::from(k.as_slice())
        } else {
            Bytes::Heap(k.into_boxed_slice())
        }
    }
}

impl Deref for Bytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Inline { len, bytes } => &bytes[..*len as usize],
            Bytes::Heap(b) => b,
        }
    }
}

impl Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        **self == **other
    }
}

impl Eq for Bytes {}

impl PartialOrd for Bytes {
    fn partial_cmp(&self, other: &Bytes) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bytes {
    #[inline]
    fn cmp(&self, other: &Bytes) -> Ordering {
        (**self).cmp(&**other)
    }
}

impl Hash for Bytes {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (**self).hash(h)
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inline and heap byte strings order, compare and look up as their
    /// contents, on both sides of the inline limit.
    #[test]
    fn bytes_order_and_look_up_as_their_contents() {
        let raw: Vec<Vec<u8>> = [1, 21, 22, 23, 64]
            .iter()
            .flat_map(|&n| [vec![7u8; n], vec![200u8; n]])
            .chain([vec![], vec![7, 7, 8], [vec![7; 23], vec![0]].concat()])
            .collect();
        let mut map = std::collections::BTreeMap::new();
        for (i, k) in raw.iter().enumerate() {
            assert!(map.insert(Bytes::from(k.clone()), i).is_none());
        }
        let mut want = raw.clone();
        want.sort();
        let got: Vec<Vec<u8>> = map.keys().map(|k| k.to_vec()).collect();
        assert_eq!(got, want);
        for (i, k) in raw.iter().enumerate() {
            assert_eq!(map.get(k.as_slice()), Some(&i));
            assert_eq!(Bytes::from(k.as_slice()), Bytes::from(k.clone()));
        }
        assert!(matches!(Bytes::from(vec![1; 22]), Bytes::Inline { .. }));
        assert!(matches!(Bytes::from(vec![1; 23]), Bytes::Heap(_)));
    }
}
