//! Helpers shared by the integration tests.

use laterbase::{ChangesPage, Database, Event, EventId};

/// A current-thread runtime for tests that drive async code from proptest.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Reads the whole changes feed in pages of `page`, checking that pages
/// chain (each starts after the `lc` the previous returned).
pub async fn read_feed(db: &Database, page: usize) -> Vec<Event> {
    let mut events = Vec::new();
    let mut lc = 0;
    loop {
        let ChangesPage {
            events: chunk,
            lc: next,
            more,
        } = db.changes(lc, page).await.expect("changes");
        assert!(chunk.len() <= page, "a page holds at most `limit` events");
        if let Some(last) = chunk.last() {
            assert_eq!(last.lc, next, "the page's lc is its last event's");
        } else {
            assert_eq!(next, lc, "an empty page keeps the lc asked from");
        }
        events.extend(chunk);
        lc = next;
        if !more {
            return events;
        }
    }
}

/// Reads every event by id range, in pages of `page`.
pub async fn read_range(db: &Database, page: usize) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut after: Option<EventId> = None;
    loop {
        let chunk = db.range(after, None, page).await.expect("range");
        assert!(chunk.events.len() <= page);
        after = chunk.events.last().map(|event| event.id).or(after);
        events.extend(chunk.events);
        if !chunk.more {
            return events;
        }
    }
}

/// Asserts that logical clocks run 1, 2, 3... with no gap or repeat.
pub fn assert_contiguous(events: &[Event]) {
    for (expected, event) in (1..).zip(events) {
        assert_eq!(event.lc, expected, "lc runs without gaps from 1");
    }
}

/// A small disk of its own to fill for real: a tmpfs mounted over a new
/// temporary directory, unmounted when dropped.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a disk of `bytes`; `None`, with the reason printed, where this
    /// machine does not let a test mount one (not Linux, not root, a
    /// container without the right to): the test then skips itself.
    pub fn mount(bytes: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("tempdir");
        let size = format!("size={bytes}");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(SmallDisk { dir }),
            Ok(output) => {
                eprintln!(
                    "skipped: this machine lets no test mount a small disk ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(error) => {
                eprintln!("skipped: `mount` cannot run here: {error}");
                None
            }
        }
    }

    /// Where the disk is mounted.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Gives the disk `bytes` in all, as an operator who frees room does.
    pub fn grow(&self, bytes: u64) {
        let options = format!("remount,size={bytes}");
        let status = std::process::Command::new("mount")
            .args(["-o", &options])
            .arg(self.dir.path())
            .status()
            .expect("mount -o remount");
        assert!(status.success(), "remounting the small disk: {status}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        match std::process::Command::new("umount")
            .arg(self.dir.path())
            .status()
        {
            Ok(status) if status.success() => {}
            other => eprintln!("unmounting {}: {other:?}", self.dir.path().display()),
        }
    }
}

/// `bytes` of JSON (a string of hex digits) that no compression shrinks
/// much, from `seed`: what fills a disk as fast as it is written.
pub fn incompressible_json(seed: u64, bytes: usize) -> String {
    use rand::{Rng, SeedableRng};
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut random = rand::rngs::StdRng::seed_from_u64(seed);
    let mut noise = vec![0_u8; bytes.div_ceil(2)];
    random.fill_bytes(&mut noise);
    let mut text = String::with_capacity(bytes + 2);
    text.push('"');
    for byte in noise {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    text.truncate(bytes + 1);
    text.push('"');
    text
}
