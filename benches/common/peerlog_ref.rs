//! peerlog under the same harness as the references: built from the same
//! data set, resolving through the public typed API (`Account`), checked
//! against the data set like every other engine.

use std::path::{Path, PathBuf};

use peerlog::{Account, Durability, Options, PeerId, PeerKind, Storage, Store};
use tempfile::TempDir;

use super::refs::{Resolved, ResolvedPeer, tempdir};
use super::{Dataset, KIND_CHANNEL, KIND_CHAT, KIND_USER, Peer};

/// File name of the store inside its directory.
const FILE: &str = "bench.peerlog";
/// The account every benchmark uses.
const ACCOUNT: &str = "bench";

/// An open peerlog store with its benchmark account.
pub struct PeerlogRef {
    /// The store.
    pub store: Store,
    /// The account holding the data set.
    pub account: Account,
    dir: Option<TempDir>,
}

/// Options for `durability`; everything else default.
pub fn options(durability: Durability) -> Options {
    Options {
        durability,
        ..Options::default()
    }
}

fn kind_code(id: PeerId) -> u8 {
    match id.kind() {
        PeerKind::User => KIND_USER,
        PeerKind::Chat => KIND_CHAT,
        PeerKind::Channel => KIND_CHANNEL,
    }
}

/// The data set's peer as a peerlog `Peer`.
pub fn to_peer(p: &Peer) -> peerlog::Peer {
    let mut q = peerlog::Peer::new(PeerId::from_bot_api(p.id).expect("data set ids are valid"));
    q.access_hash = Some(p.hash);
    q.username = p.username.clone();
    q.phone = p.phone.clone();
    q
}

impl PeerlogRef {
    /// Opens the store file in directory `path`.
    pub fn open(path: &Path, durability: Durability) -> Self {
        let store = Store::open_with(path.join(FILE), options(durability)).expect("peerlog open");
        let account = store.account(ACCOUNT).expect("peerlog account");
        PeerlogRef {
            store,
            account,
            dir: None,
        }
    }

    /// The store file.
    pub fn file(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// id -> (access hash, kind), through `Storage::access_hash`.
    #[inline]
    pub fn get(&self, id: i64) -> Option<Resolved> {
        let pid = PeerId::from_bot_api(id)?;
        let hash = self.account.access_hash(pid).expect("peerlog lookup")?;
        Some((hash, kind_code(pid)))
    }

    /// username -> (id, hash, kind), through `Storage::resolve_username`.
    pub fn get_username(&self, username: &str) -> Option<ResolvedPeer> {
        let (pid, hash) = self
            .account
            .resolve_username(username)
            .expect("peerlog lookup")?;
        Some((pid.bot_api(), hash?, kind_code(pid)))
    }

    /// phone -> (id, hash, kind), through the engine's phone index.
    pub fn get_phone(&self, phone: &str) -> Option<ResolvedPeer> {
        let (id, hash) = self
            .store
            .resolve_phone(self.account.number(), phone)
            .expect("peerlog lookup")?;
        let pid = PeerId::from_bot_api(id)?;
        Some((id, hash?, kind_code(pid)))
    }

    /// Saves a batch in one commit (`Storage::save_peers`).
    pub fn save(&self, peers: &[Peer]) {
        let batch: Vec<peerlog::Peer> = peers.iter().map(to_peer).collect();
        self.account.save_peers(&batch).expect("peerlog save");
    }

    /// Closes the store and hands back its directory.
    pub fn close(mut self) -> TempDir {
        let dir = self.dir.take().expect("built by build_peerlog");
        drop(self);
        dir
    }
}

/// Loads the data set (without fsync), compacts, and reopens with
/// `durability`.
pub fn build_peerlog(ds: &Dataset, durability: Durability) -> PeerlogRef {
    let dir = tempdir();
    {
        let r = PeerlogRef::open(dir.path(), Durability::None);
        for chunk in ds.peers.chunks(1000) {
            r.save(chunk);
        }
        r.store.compact().expect("peerlog compact");
    }
    let mut r = PeerlogRef::open(dir.path(), durability);
    r.dir = Some(dir);
    r
}
