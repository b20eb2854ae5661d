//! Raw buckets: named byte-key, byte-value maps for anything the typed API
//! does not cover, and [`Batch`] to change several of them atomically.

use crate::engine::store::Store;
use crate::error::{Error, Result};
use crate::format::bucket::{MAX_KEY_LEN, RAW, check_put};
use crate::format::commit::Op;
use crate::peers::merge::Change;
use std::ops::Bound;

impl Store {
    /// A named raw bucket: the escape hatch for anything the typed API does
    /// not cover. Names are 1..=255 bytes.
    pub fn bucket(&self, name: &str) -> Result<Bucket> {
        Bucket::new(self.clone(), name)
    }

    /// A batch of puts and deletes across raw buckets, committed atomically.
    pub fn batch(&self) -> Batch {
        Batch::new(self.clone())
    }

    /// Runs `f` on a batch and commits it atomically if `f` succeeds.
    pub fn write<R>(&self, f: impl FnOnce(&mut Batch) -> Result<R>) -> Result<R> {
        let mut b = self.batch();
        let r = f(&mut b)?;
        b.commit()?;
        Ok(r)
    }
}

/// A named raw bucket. Cheap to clone; see [`Store::bucket`].
///
/// ```
/// let store = peerlog::Store::memory();
/// let b = store.bucket("settings")?;
/// b.put(b"lang", b"en")?;
/// assert_eq!(b.get(b"lang")?.as_deref(), Some(&b"en"[..]));
/// # Ok::<(), peerlog::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Store,
    prefix: Vec<u8>,
}

fn prefix_of(name: &str) -> Result<Vec<u8>> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::Invalid(format!(
            "bucket names are 1..=255 bytes, got {}",
            name.len()
        )));
    }
    let mut p = Vec::with_capacity(1 + name.len());
    p.push(name.len() as u8);
    p.extend_from_slice(name.as_bytes());
    Ok(p)
}

fn user_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::TooLarge {
            what: "key",
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

impl Bucket {
    pub(crate) fn new(store: Store, name: &str) -> Result<Bucket> {
        Ok(Bucket {
            store,
            prefix: prefix_of(name)?,
        })
    }

    fn full(&self, key: &[u8]) -> Result<Vec<u8>> {
        user_key(key)?;
        let mut k = self.prefix.clone();
        k.extend_from_slice(key);
        Ok(k)
    }

    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let k = self.full(key)?;
        Ok(self
            .store
            .read(|st| st.maps[RAW as usize].get(k.as_slice()).map(|v| v.to_vec())))
    }

    /// Sets `key` to `value` (one commit).
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let key = self.full(key)?;
        check_put(&key, value)?;
        let op = Op::Put {
            bucket: RAW,
            key,
            value: value.to_vec(),
        };
        self.store
            .transact(false, |_| Ok((vec![Change::Op(op)], ())))
    }

    /// Removes `key`; true if it was there.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        let key = self.full(key)?;
        self.store.transact(false, |st| {
            if st.maps[RAW as usize].contains_key(key.as_slice()) {
                Ok((vec![Change::Op(Op::Delete { bucket: RAW, key })], true))
            } else {
                Ok((vec![], false))
            }
        })
    }

    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let p = self.full(prefix)?;
        let skip = self.prefix.len();
        Ok(self.store.read(|st| {
            st.maps[RAW as usize]
                .range::<[u8], _>((Bound::Included(p.as_slice()), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(&p))
                .map(|(k, v)| (k[skip..].to_vec(), v.to_vec()))
                .collect()
        }))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.store.read(|st| {
            st.maps[RAW as usize]
                .range::<[u8], _>((Bound::Included(self.prefix.as_slice()), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(&self.prefix))
                .count()
        })
    }

    /// True when the bucket holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Puts and deletes across raw buckets, committed atomically by
/// [`Batch::commit`]: after any crash, all of them are there or none is.
///
/// ```
/// let store = peerlog::Store::memory();
/// let mut b = store.batch();
/// b.put("a", b"k", b"1")?;
/// b.put("b", b"k", b"2")?;
/// b.commit()?;
/// assert_eq!(store.bucket("b")?.get(b"k")?, Some(b"2".to_vec()));
/// # Ok::<(), peerlog::Error>(())
/// ```
#[derive(Debug)]
pub struct Batch {
    store: Store,
    ops: Vec<Change>,
    sync: bool,
}

impl Batch {
    pub(crate) fn new(store: Store) -> Batch {
        Batch {
            store,
            ops: Vec::new(),
            sync: false,
        }
    }

    /// Queues a put into bucket `bucket`.
    pub fn put(&mut self, bucket: &str, key: &[u8], value: &[u8]) -> Result<&mut Self> {
        user_key(key)?;
        let mut k = prefix_of(bucket)?;
        k.extend_from_slice(key);
        check_put(&k, value)?;
        self.ops.push(Change::Op(Op::Put {
            bucket: RAW,
            key: k,
            value: value.to_vec(),
        }));
        Ok(self)
    }

    /// Queues a delete from bucket `bucket`.
    pub fn delete(&mut self, bucket: &str, key: &[u8]) -> Result<&mut Self> {
        user_key(key)?;
        let mut k = prefix_of(bucket)?;
        k.extend_from_slice(key);
        self.ops.push(Change::Op(Op::Delete {
            bucket: RAW,
            key: k,
        }));
        Ok(self)
    }

    /// Makes the commit durable before it returns, whatever the store's
    /// durability mode.
    pub fn durable(&mut self) -> &mut Self {
        self.sync = true;
        self
    }

    /// Number of queued changes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Commits every queued change as one atomic commit.
    pub fn commit(self) -> Result<()> {
        let Batch { store, ops, sync } = self;
        store.transact(sync, |_| Ok((ops, ())))
    }
}
