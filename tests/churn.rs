//! Space freed by compaction is reused: steady churn keeps the file bounded.

mod common;
use peerlog::{Durability, Options, Store};

#[test]
fn churn_keeps_the_file_small() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("churn.peerlog");
    let opts = Options {
        durability: Durability::None,
        ..Options::default()
    };
    let store = Store::open_with(&path, opts).unwrap();
    let keep = store.bucket("keep").unwrap();
    for i in 0..200u32 {
        keep.put(&i.to_be_bytes(), &[1u8; 512]).unwrap();
    }
    let live = keep.len() as u64 * (512 + 4 + 8);
    let q = store.bucket("queue").unwrap();
    let value = [7u8; 512];
    let mut max_len = 0;
    for i in 0..200_000u32 {
        q.put(&i.to_be_bytes(), &value).unwrap();
        assert!(q.delete(&i.to_be_bytes()).unwrap());
        if i % 10_000 == 0 {
            max_len = max_len.max(std::fs::metadata(&path).unwrap().len());
        }
    }
    let len = std::fs::metadata(&path).unwrap().len();
    max_len = max_len.max(len);
    let stats = store.stats();
    assert!(stats.checkpoints > 50, "{stats:#?}");
    assert!(
        max_len < (4 << 20) + live,
        "file grew to {max_len} bytes: {stats:#?}"
    );
    assert!(q.is_empty() && keep.len() == 200);
    let r = store.verify().unwrap();
    assert!(r.is_ok(), "{r}");
    eprintln!(
        "churn: final {len} bytes, max {max_len}, {} checkpoints",
        stats.checkpoints
    );
}
