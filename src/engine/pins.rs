//! Regions an online backup may still be reading (`Store::backup_to` in
//! src/backup.rs). While a backup copies one generation without a lock,
//! a checkpoint may free that generation's regions; the writer's
//! allocator asks [`Pins::hold`] before reusing any, so nothing a backup
//! reads is rewritten under it.

use std::sync::{Arc, Weak};

use crate::format::superblock::Extent;

/// What a pin is: one running backup's claim on the regions of the
/// generation it copies.
#[derive(Debug)]
pub(crate) struct Pin(());

/// The writer's record of running backups and of the regions freed while
/// they run. A region freed while any backup is running is held until
/// every backup that was running then has finished; a backup started
/// later copies a later generation, which does not name it.
#[derive(Debug, Default)]
pub(crate) struct Pins {
    running: Vec<Weak<Pin>>,
    held: Vec<(Extent, Vec<Weak<Pin>>)>,
}

impl Pins {
    /// A new pin, counted as running until it is dropped.
    pub(crate) fn pin(&mut self) -> Arc<Pin> {
        self.running.retain(|p| p.strong_count() > 0);
        let pin = Arc::new(Pin(()));
        self.running.push(Arc::downgrade(&pin));
        pin
    }

    /// A freed region: kept back while a backup is running (`None`), or
    /// handed back to be freed now.
    pub(crate) fn hold(&mut self, e: Extent) -> Option<Extent> {
        self.running.retain(|p| p.strong_count() > 0);
        if self.running.is_empty() || e.len == 0 {
            return Some(e);
        }
        self.held.push((e, self.running.clone()));
        None
    }

    /// The held regions no running backup can read any more.
    pub(crate) fn expired(&mut self) -> Vec<Extent> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let (done, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(_, pins)| pins.iter().all(|p| p.strong_count() == 0));
        self.held = held;
        done.into_iter().map(|(e, _)| e).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(offset: u64) -> Extent {
        Extent { offset, len: 4096 }
    }

    #[test]
    fn regions_freed_while_a_backup_runs_wait_for_it() {
        let mut p = Pins::default();
        assert_eq!(p.hold(ext(8192)), Some(ext(8192)));
        let a = p.pin();
        assert_eq!(p.hold(ext(12288)), None);
        let b = p.pin();
        assert_eq!(p.hold(ext(16384)), None);
        drop(a);
        // The second region was freed while b ran too.
        assert!(p.expired().contains(&ext(12288)));
        assert!(p.expired().is_empty());
        drop(b);
        assert_eq!(p.expired(), vec![ext(16384)]);
        assert_eq!(p.hold(ext(20480)), Some(ext(20480)));
    }
}
