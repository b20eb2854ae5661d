//! Listing what the typed API only reads by key: an account's
//! conversations, metadata and dedup keys, and a store's raw bucket
//! names. The `peerlog` tool's `dump` uses these; so can a bot that
//! wants to look at everything it keeps.
//!
//! Keys follow FORMAT.md, "Typed keys and values": one account's data
//! lies under `[account number: u32 BE][tag: u8][rest]` in its bucket;
//! raw bucket keys are `u8 name_len, name, user key`.

use std::ops::Bound;

use crate::types::Conversation;
use crate::{Account, Error, Result, Store};

// Bucket numbers and tags, fixed by the format (FORMAT.md, "Buckets" and
// "Typed keys and values").
const META: usize = 0;
const DEDUP: usize = 4;
const CONVERSATIONS: usize = 6;
const RAW: usize = 7;
const T_META: u8 = b'm';
const T_DEDUP_KEY: u8 = b'k';
const T_CONVERSATION: u8 = b'v';

fn corrupt(what: &str) -> Error {
    Error::Corrupt {
        offset: 0,
        what: what.to_string(),
    }
}

impl Account {
    fn tagged(&self, tag: u8) -> Vec<u8> {
        let mut p = self.number().to_be_bytes().to_vec();
        p.push(tag);
        p
    }

    /// Every `(key, value)` of `bucket` under this account's `tag`, the
    /// prefix cut off, in key order.
    fn under(&self, bucket: usize, tag: u8) -> Vec<(Vec<u8>, Vec<u8>)> {
        let p = self.tagged(tag);
        let skip = p.len();
        self.store().read(|st| {
            st.maps[bucket]
                .range::<[u8], _>((Bound::Included(p.as_slice()), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(&p))
                .map(|(k, v)| (k[skip..].to_vec(), v.to_vec()))
                .collect()
        })
    }

    /// Every conversation of this account, by chat id then user id.
    pub fn conversations(&self) -> Result<Vec<Conversation>> {
        self.under(CONVERSATIONS, T_CONVERSATION)
            .into_iter()
            .map(|(_, v)| {
                Conversation::decode(&v).map_err(|e| corrupt(&format!("a conversation: {e}")))
            })
            .collect()
    }

    /// Every metadata entry ([`crate::Storage::set_meta`]) of this account,
    /// in key order.
    pub fn meta_entries(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.under(META, T_META)
            .into_iter()
            .map(|(k, v)| {
                String::from_utf8(k)
                    .map(|k| (k, v))
                    .map_err(|_| corrupt("a metadata key that is not UTF-8"))
            })
            .collect()
    }

    /// How many dedup keys this account keeps.
    pub fn dedup_key_count(&self) -> u64 {
        self.under(DEDUP, T_DEDUP_KEY).len() as u64
    }
}

impl Store {
    /// Names of the raw buckets ([`Store::bucket`]) that hold at least one
    /// key, in byte order.
    pub fn bucket_names(&self) -> Result<Vec<String>> {
        self.read(|st| {
            let mut names: Vec<String> = Vec::new();
            let mut last: Option<Vec<u8>> = None;
            for k in st.maps[RAW].keys() {
                let n = *k
                    .first()
                    .ok_or_else(|| corrupt("an empty raw bucket key"))?
                    as usize;
                let name = k
                    .get(1..1 + n)
                    .ok_or_else(|| corrupt("a raw bucket key shorter than its name"))?;
                if last.as_deref() != Some(name) {
                    last = Some(name.to_vec());
                    names.push(
                        String::from_utf8(name.to_vec())
                            .map_err(|_| corrupt("a raw bucket name that is not UTF-8"))?,
                    );
                }
            }
            names.sort();
            names.dedup();
            Ok(names)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::types::Conversation;
    use crate::{Storage, Store};

    #[test]
    fn lists_one_accounts_entries_only() {
        let store = Store::memory();
        let a = store.account("a").unwrap();
        let b = store.account("b").unwrap();
        a.set_meta("x", b"1").unwrap();
        a.set_meta("y", b"2").unwrap();
        b.set_meta("z", b"3").unwrap();
        a.insert_dedup_key(b"u1").unwrap();
        let c = Conversation {
            chat_id: -1001234567890,
            user_id: 42,
            name: "order".into(),
            step: "2".into(),
            data: vec![1, 2],
            created_at: 1,
            updated_at: 2,
        };
        b.save_conversation(&c).unwrap();
        assert_eq!(
            a.meta_entries().unwrap(),
            vec![("x".into(), b"1".to_vec()), ("y".into(), b"2".to_vec())]
        );
        assert_eq!(a.dedup_key_count(), 1);
        assert_eq!(b.dedup_key_count(), 0);
        assert!(a.conversations().unwrap().is_empty());
        assert_eq!(b.conversations().unwrap(), vec![c]);
        store.bucket("zeta").unwrap().put(b"k", b"v").unwrap();
        store.bucket("alpha").unwrap().put(b"k", b"v").unwrap();
        assert_eq!(store.bucket_names().unwrap(), vec!["alpha", "zeta"]);
    }
}
