//! The journal itself: open (lock, scan, recover), append, remove, read, rotate, compact and
//! retain. Blocking file I/O; it runs on the writer thread only.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::frame::{self, FrameError, FrameKind};
use super::options::{FsyncPolicy, JournalOptions};
use super::{JournalError, OpenReport, Quarantined, TornTail};
use crate::dead_letter::id::{DeadLetterId, unix_millis};
use crate::dead_letter::record::DeadLetterRecord;
use crate::dead_letter::stats::DeadLetterStats;

/// Where a live record is.
#[derive(Debug, Clone)]
struct Entry {
    segment: u64,
    offset: u64,
    len: usize,
    agent: Arc<str>,
    time_ms: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Segment {
    live: usize,
    newest_ms: u64,
}

#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    options: JournalOptions,
    segments: BTreeMap<u64, Segment>,
    active: Option<File>,
    active_seq: u64,
    active_len: u64,
    index: BTreeMap<DeadLetterId, Entry>,
    recent: VecDeque<SystemTime>,
    pub(crate) unsynced: bool,
    poisoned: Option<String>,
    _lock: Option<File>,
}

fn segment_name(seq: u64) -> String {
    format!("{seq:08}.dlq")
}

fn create_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.create(true).read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| JournalError::io(dir, "syncing directory", e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` durably and atomically (temp file, fsync, rename, fsync dir).
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    let tmp = path.with_extension("tmp");
    let mut file = create_options()
        .truncate(true)
        .open(&tmp)
        .map_err(|e| JournalError::io(&tmp, "creating", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| JournalError::io(&tmp, "writing", e))?;
    fs::rename(&tmp, path).map_err(|e| JournalError::io(path, "renaming into", e))?;
    sync_dir(dir)
}

/// The result of checking one segment's bytes.
struct Checked {
    torn: Option<TornTail>,
    quarantined: Vec<Quarantined>,
}

/// Finds damage in `bytes` (a whole segment), fixing it in memory: a torn tail of the last
/// segment is cut; a damaged frame elsewhere is an error, or (with `skip_corrupt`) cut out and
/// saved to a `.corrupt` file.
fn check_segment(
    dir: &Path,
    file: &Path,
    bytes: &mut Vec<u8>,
    is_last: bool,
    skip_corrupt: bool,
    persist: bool,
) -> Result<Checked, JournalError> {
    let mut checked = Checked {
        torn: None,
        quarantined: Vec::new(),
    };
    let mut at = 0;
    while at < bytes.len() {
        let reason = match frame::decode(&bytes[at..]) {
            Ok((kind, payload, len)) => match validate_payload(kind, payload) {
                Ok(()) => {
                    at += len;
                    continue;
                }
                Err(reason) => reason,
            },
            Err(FrameError::Incomplete) => "frame cut short".to_string(),
            Err(FrameError::Invalid(reason)) => reason.to_string(),
        };
        let next = frame::next_valid(bytes, at + 1);
        if is_last && next.is_none() {
            checked.torn = Some(TornTail {
                file: file.to_path_buf(),
                offset: at as u64,
                dropped_bytes: (bytes.len() - at) as u64,
            });
            bytes.truncate(at);
            break;
        }
        if !skip_corrupt {
            return Err(JournalError::Corrupt {
                file: file.to_path_buf(),
                offset: at as u64,
                reason,
            });
        }
        let end = next.unwrap_or(bytes.len());
        let quarantine = file.with_extension(format!("dlq.{at}.corrupt"));
        if persist {
            write_atomically(dir, &quarantine, &bytes[at..end])?;
        }
        checked.quarantined.push(Quarantined {
            file: file.to_path_buf(),
            offset: at as u64,
            len: (end - at) as u64,
            quarantine_file: quarantine,
            reason,
        });
        bytes.drain(at..end);
    }
    Ok(checked)
}

fn validate_payload(kind: FrameKind, payload: &[u8]) -> Result<(), String> {
    match kind {
        FrameKind::Record => DeadLetterRecord::decode(payload)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        FrameKind::Tombstone if payload.len() == 16 => Ok(()),
        FrameKind::Tombstone => Err("tombstone is not 16 bytes".into()),
    }
}

/// Creates (if allowed) and locks the directory; the returned file holds the lock (`None`
/// when `lock` is false: read-only opens).
fn lock_dir(dir: &Path, create: bool, lock: bool) -> Result<Option<File>, JournalError> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(JournalError::NotADirectory {
                dir: dir.to_path_buf(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Err(JournalError::Missing {
                    dir: dir.to_path_buf(),
                });
            }
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder
                .create(dir)
                .map_err(|e| JournalError::io(dir, "creating", e))?;
        }
        Err(e) => return Err(JournalError::io(dir, "reading", e)),
    }

    if !lock {
        return Ok(None);
    }
    let lock_path = dir.join("LOCK");
    let mut lock = create_options()
        .open(&lock_path)
        .map_err(|e| JournalError::io(&lock_path, "opening", e))?;
    // flock: released by the kernel when the holder dies, even by SIGKILL.
    match fs4::fs_std::FileExt::try_lock_exclusive(&lock) {
        Ok(true) => {}
        Ok(false) => {
            return Err(JournalError::Locked {
                dir: dir.to_path_buf(),
            });
        }
        Err(e) => return Err(JournalError::io(&lock_path, "locking", e)),
    }
    lock.set_len(0)
        .and_then(|()| lock.write_all(std::process::id().to_string().as_bytes()))
        .map_err(|e| JournalError::io(&lock_path, "writing", e))?;

    Ok(Some(lock))
}

/// The segment numbers in `dir`, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| JournalError::io(dir, "listing", e))? {
        let entry = entry.map_err(|e| JournalError::io(dir, "listing", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let seq = name
            .strip_suffix(".dlq")
            .filter(|stem| stem.len() == 8)
            .and_then(|stem| stem.parse::<u64>().ok());
        if let Some(seq) = seq {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Applies a checked segment's frames to the index.
fn load_frames(
    seq: u64,
    bytes: &[u8],
    segments: &mut BTreeMap<u64, Segment>,
    index: &mut BTreeMap<DeadLetterId, Entry>,
) {
    let mut at = 0;
    while at < bytes.len() {
        // check_segment left only valid frames.
        let Ok((kind, payload, len)) = frame::decode(&bytes[at..]) else {
            break;
        };
        match kind {
            FrameKind::Record => {
                if let Ok(record) = DeadLetterRecord::decode(payload) {
                    let entry = Entry {
                        segment: seq,
                        offset: at as u64,
                        len,
                        agent: record.agent.as_str().into(),
                        time_ms: unix_millis(record.time),
                    };
                    insert(segments, index, record.id, entry);
                }
            }
            FrameKind::Tombstone => {
                let mut raw = [0u8; 16];
                raw.copy_from_slice(payload);
                remove(
                    segments,
                    index,
                    DeadLetterId::from_u128(u128::from_le_bytes(raw)),
                );
            }
        }
        at += len;
    }
}

impl Store {
    pub(crate) fn open(options: JournalOptions) -> Result<(Store, OpenReport), JournalError> {
        let dir = options.dir.clone();
        let read_only = options.read_only;
        let lock = lock_dir(&dir, options.create && !read_only, !read_only)?;
        let seqs = list_segments(&dir)?;

        let mut report = OpenReport {
            dir: dir.clone(),
            ..OpenReport::default()
        };
        let mut segments = BTreeMap::new();
        let mut index: BTreeMap<DeadLetterId, Entry> = BTreeMap::new();
        for (position, &seq) in seqs.iter().enumerate() {
            let path = dir.join(segment_name(seq));
            let mut bytes = fs::read(&path).map_err(|e| JournalError::io(&path, "reading", e))?;
            let original_len = bytes.len();
            let is_last = position + 1 == seqs.len();
            let checked = check_segment(
                &dir,
                &path,
                &mut bytes,
                is_last,
                options.skip_corrupt,
                !read_only,
            )?;
            if read_only {
                // Report only: a read-only open changes nothing on disk.
            } else if !checked.quarantined.is_empty() {
                write_atomically(&dir, &path, &bytes)?;
            } else if bytes.len() != original_len {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| JournalError::io(&path, "opening", e))?;
                file.set_len(bytes.len() as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| JournalError::io(&path, "truncating the torn tail of", e))?;
            }
            if let Some(torn) = &checked.torn {
                tracing::warn!(file = %torn.file.display(), offset = torn.offset, dropped = torn.dropped_bytes,
                    "dead-letter journal: cut a torn tail (an append that was never confirmed)");
            }
            for q in &checked.quarantined {
                tracing::error!(file = %q.file.display(), offset = q.offset, len = q.len, quarantine = %q.quarantine_file.display(),
                    "dead-letter journal: quarantined a corrupt frame");
            }
            report.torn_tail = report.torn_tail.or(checked.torn);
            report.quarantined.extend(checked.quarantined);

            segments.insert(seq, Segment::default());
            load_frames(seq, &bytes, &mut segments, &mut index);
        }

        let active_seq = seqs.last().copied().unwrap_or(1);
        segments.entry(active_seq).or_default();
        let active_path = dir.join(segment_name(active_seq));
        let (active, active_len) = if read_only {
            (None, 0)
        } else {
            let active = create_options()
                .open(&active_path)
                .map_err(|e| JournalError::io(&active_path, "opening", e))?;
            let len = active
                .metadata()
                .map_err(|e| JournalError::io(&active_path, "reading", e))?
                .len();
            (Some(active), len)
        };
        if seqs.is_empty() && !read_only {
            sync_dir(&dir)?;
        }
        report.segments = segments.len();
        let mut store = Store {
            dir,
            options,
            segments,
            active,
            active_seq,
            active_len,
            index,
            recent: VecDeque::new(),
            unsynced: false,
            poisoned: None,
            _lock: lock,
        };
        store.compact_and_retain(SystemTime::now())?;
        report.records = store.index.len();
        Ok((store, report))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn fsync_policy(&self) -> FsyncPolicy {
        self.options.fsync
    }

    fn check_poisoned(&self) -> Result<(), JournalError> {
        match &self.poisoned {
            Some(reason) => Err(JournalError::Poisoned {
                dir: self.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Writes one frame to the active segment, rotating first if it would overflow. A failed
    /// write is cut back off so the next append does not follow garbage.
    fn write_frame(&mut self, bytes: &[u8]) -> Result<(u64, u64), JournalError> {
        self.check_poisoned()?;
        if self.active.is_none() {
            return Err(JournalError::ReadOnly {
                dir: self.dir.clone(),
            });
        }
        if self.active_len > 0
            && self.active_len + bytes.len() as u64 > self.options.max_segment_bytes
        {
            self.rotate()?;
        }
        let offset = self.active_len;
        let path = self.dir.join(segment_name(self.active_seq));
        let Some(active) = self.active.as_mut() else {
            return Err(JournalError::ReadOnly {
                dir: self.dir.clone(),
            });
        };
        if let Err(e) = active
            .seek(SeekFrom::Start(offset))
            .and_then(|_| active.write_all(bytes))
        {
            if active.set_len(offset).is_err() {
                self.poisoned = Some(format!("write failed and could not be undone: {e}"));
            }
            return Err(JournalError::io(path, "appending to", e));
        }
        self.active_len += bytes.len() as u64;
        self.unsynced = true;
        Ok((self.active_seq, offset))
    }

    fn rotate(&mut self) -> Result<(), JournalError> {
        if self.options.fsync != FsyncPolicy::Never {
            self.sync()?;
        }
        let seq = self.active_seq + 1;
        let path = self.dir.join(segment_name(seq));
        let file = create_options()
            .truncate(true)
            .open(&path)
            .map_err(|e| JournalError::io(&path, "creating", e))?;
        if self.options.fsync != FsyncPolicy::Never {
            sync_dir(&self.dir)?;
        }
        self.active = Some(file);
        self.active_seq = seq;
        self.active_len = 0;
        self.segments.insert(seq, Segment::default());
        Ok(())
    }

    /// fsyncs the active segment. A failed fsync poisons the store: Linux may have dropped the
    /// dirty pages, so retrying could falsely report durability.
    pub(crate) fn sync(&mut self) -> Result<(), JournalError> {
        self.check_poisoned()?;
        if !self.unsynced {
            return Ok(());
        }
        let Some(active) = self.active.as_ref() else {
            return Ok(());
        };
        if let Err(e) = active.sync_data() {
            self.poisoned = Some(format!("fsync failed: {e}"));
            return Err(JournalError::io(
                self.dir.join(segment_name(self.active_seq)),
                "fsyncing",
                e,
            ));
        }
        self.unsynced = false;
        Ok(())
    }

    pub(crate) fn append(&mut self, record: &DeadLetterRecord) -> Result<(), JournalError> {
        let mut bytes = Vec::new();
        frame::encode(FrameKind::Record, &record.encode(), &mut bytes);
        let (segment, offset) = self.write_frame(&bytes)?;
        let entry = Entry {
            segment,
            offset,
            len: bytes.len(),
            agent: record.agent.as_str().into(),
            time_ms: unix_millis(record.time),
        };
        insert(&mut self.segments, &mut self.index, record.id, entry);
        let now = SystemTime::now();
        self.recent.push_back(now);
        crate::dead_letter::memory::prune(&mut self.recent, now);
        Ok(())
    }

    pub(crate) fn update(&mut self, record: &DeadLetterRecord) -> Result<(), JournalError> {
        self.append(record)
    }

    pub(crate) fn remove(&mut self, id: DeadLetterId) -> Result<bool, JournalError> {
        self.check_poisoned()?;
        if !self.index.contains_key(&id) {
            return Ok(false);
        }
        let mut bytes = Vec::new();
        frame::encode(
            FrameKind::Tombstone,
            &id.as_u128().to_le_bytes(),
            &mut bytes,
        );
        self.write_frame(&bytes)?;
        remove(&mut self.segments, &mut self.index, id);
        Ok(true)
    }

    fn read(&self, entry: &Entry) -> Result<DeadLetterRecord, JournalError> {
        let path = self.dir.join(segment_name(entry.segment));
        let mut file = File::open(&path).map_err(|e| JournalError::io(&path, "opening", e))?;
        let mut bytes = vec![0; entry.len];
        file.seek(SeekFrom::Start(entry.offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| JournalError::io(&path, "reading", e))?;
        let corrupt = |reason: String| JournalError::Corrupt {
            file: path.clone(),
            offset: entry.offset,
            reason,
        };
        let (_, payload, _) = frame::decode(&bytes).map_err(|e| corrupt(format!("{e:?}")))?;
        DeadLetterRecord::decode(payload).map_err(|e| corrupt(e.to_string()))
    }

    pub(crate) fn get(&self, id: DeadLetterId) -> Result<Option<DeadLetterRecord>, JournalError> {
        self.check_poisoned()?;
        self.index
            .get(&id)
            .map(|entry| self.read(entry))
            .transpose()
    }

    pub(crate) fn list(&self, limit: usize) -> Result<Vec<DeadLetterRecord>, JournalError> {
        self.check_poisoned()?;
        self.index
            .values()
            .take(limit)
            .map(|entry| self.read(entry))
            .collect()
    }

    pub(crate) fn stats(&mut self) -> DeadLetterStats {
        let now = SystemTime::now();
        crate::dead_letter::memory::prune(&mut self.recent, now);
        let mut stats = DeadLetterStats {
            depth: self.index.len() as u64,
            oldest: self
                .index
                .values()
                .map(|e| e.time_ms)
                .min()
                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            appended_last_minute: self.recent.len() as u64,
            by_agent: BTreeMap::new(),
        };
        for entry in self.index.values() {
            *stats.by_agent.entry(entry.agent.to_string()).or_default() += 1;
        }
        stats
    }

    /// Deletes the oldest segments that hold no live record (only a prefix: a tombstone may
    /// refer to a record in an older segment, so a segment is deleted only after every older
    /// one), then applies retention.
    pub(crate) fn compact_and_retain(&mut self, now: SystemTime) -> Result<(), JournalError> {
        if self.active.is_none() {
            return Ok(()); // read-only
        }
        let mut deleted = false;
        while let Some((&seq, segment)) = self.segments.first_key_value() {
            if seq == self.active_seq {
                break;
            }
            let expired_by_count = self
                .options
                .max_segments
                .is_some_and(|max| self.segments.len() > max);
            let expired_by_age = self.options.max_age.is_some_and(|max| {
                let newest = UNIX_EPOCH + Duration::from_millis(segment.newest_ms);
                now.duration_since(newest).is_ok_and(|age| age > max)
            });
            if segment.live > 0 && !expired_by_count && !expired_by_age {
                break;
            }
            if segment.live > 0 {
                tracing::warn!(
                    segment = seq,
                    records = segment.live,
                    "dead-letter journal retention deleted a segment with records in it"
                );
                self.index.retain(|_, entry| entry.segment != seq);
            }
            let path = self.dir.join(segment_name(seq));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(JournalError::io(path, "deleting", e)),
            }
            self.segments.remove(&seq);
            deleted = true;
        }
        if deleted && self.options.fsync != FsyncPolicy::Never {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn insert(
    segments: &mut BTreeMap<u64, Segment>,
    index: &mut BTreeMap<DeadLetterId, Entry>,
    id: DeadLetterId,
    entry: Entry,
) {
    let seq = entry.segment;
    let time_ms = entry.time_ms;
    if let Some(segment) = index
        .insert(id, entry)
        .and_then(|old| segments.get_mut(&old.segment))
    {
        segment.live -= 1;
    }
    let segment = segments.entry(seq).or_default();
    segment.live += 1;
    segment.newest_ms = segment.newest_ms.max(time_ms);
}

fn remove(
    segments: &mut BTreeMap<u64, Segment>,
    index: &mut BTreeMap<DeadLetterId, Entry>,
    id: DeadLetterId,
) {
    if let Some(segment) = index
        .remove(&id)
        .and_then(|old| segments.get_mut(&old.segment))
    {
        segment.live -= 1;
    }
}
