//! Putting files under their final names safely: hidden temporary files locked while they are
//! written, renames that refuse to replace an existing name unless asked to, the rollback of a
//! failed command's published files and created folders, and the process-wide list of all of
//! these that a terminating signal's cleanup removes.
//!
//! The rules (README "Outputs"):
//! - An output is written as `.<name>.XXXXXX.stemforge-tmp` in its folder, and the writer holds an
//!   exclusive `flock` on it for as long as the file is open. The lock dies with the process, so a
//!   temporary file whose lock can be taken belongs to no live process: it was left by a render
//!   that was killed (SIGKILL, a power cut), and a later render of the same output removes it
//!   (`sweep_stale`).
//! - Without `--force` a finished file is renamed with `renameat2(RENAME_NOREPLACE)` (or
//!   link-then-unlink where the file system lacks it): a name that appeared while the render ran
//!   is never replaced.
//! - A `Publication` records what a command put under final names and the folders it created;
//!   unless the command completes (`Publication::keep`), dropping it removes them again.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// Everything of this process that is on disk only until its command completes.
struct Registry {
    /// Temporary files being written (unlinked on drop or renamed on publish).
    temps: Vec<PathBuf>,
    /// Files renamed into place by a command that has not completed, with their identity, so
    /// that a rollback removes only the file it renamed.
    published: Vec<(PathBuf, FileId)>,
    /// Folders created by a command that has not completed (removed when empty).
    dirs: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { temps: Vec::new(), published: Vec::new(), dirs: Vec::new() });

/// The registry, whatever a panicking thread left: the lists stay meaningful.
fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn forget(list: &mut Vec<PathBuf>, path: &Path) {
    if let Some(i) = list.iter().rposition(|p| p == path) {
        list.swap_remove(i);
    }
}

/// (device, inode) of an open file or of a path's own directory entry (a symlink is not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

#[cfg(unix)]
fn id_of_file(f: &File) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    f.metadata().ok().map(|m| FileId(m.dev(), m.ino()))
}

#[cfg(unix)]
fn id_of_path(p: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).ok().map(|m| FileId(m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn id_of_file(_f: &File) -> Option<FileId> {
    None
}

#[cfg(not(unix))]
fn id_of_path(_p: &Path) -> Option<FileId> {
    None
}

/// Remove `path` only while it is still the file `id` (another process may have replaced it since).
fn remove_if_ours(path: &Path, id: FileId) {
    if id_of_path(path) == Some(id) {
        let _ = std::fs::remove_file(path);
    }
}

/// Exclusive lock on the whole file, waiting for it when `wait` (a sweeper holds it only for the
/// moment it takes to unlink a stale file). Ok(false): held by another open file.
#[cfg(unix)]
fn lock(f: &File, wait: bool) -> std::io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    let op = if wait { FlockOperation::LockExclusive } else { FlockOperation::NonBlockingLockExclusive };
    match flock(f, op) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(unix))]
fn lock(_f: &File, _wait: bool) -> std::io::Result<bool> {
    Ok(true)
}

const TEMP_SUFFIX: &str = ".stemforge-tmp";
/// Random characters in a temporary name (tempfile's alphanumerics).
const TEMP_RAND: usize = 6;

fn name_and_folder(final_path: &Path) -> Result<(String, PathBuf)> {
    let name = final_path
        .file_name()
        .ok_or_else(|| Error::output(final_path, "not a file name"))?
        .to_string_lossy()
        .into_owned();
    let dir = match final_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((name, dir))
}

/// The hidden temporary file an output is written to, locked and listed for a signal's cleanup
/// while it exists. Dropping it deletes it.
pub struct OutputTemp {
    temp: Option<tempfile::NamedTempFile>,
    final_path: PathBuf,
}

impl OutputTemp {
    /// Create `.<name>.XXXXXX.stemforge-tmp` beside `final_path`. A missing or unwritable folder
    /// is an `Error::Output` naming `final_path`.
    pub fn create(final_path: &Path) -> Result<OutputTemp> {
        let (name, dir) = name_and_folder(final_path)?;
        if !dir.is_dir() {
            return Err(Error::output(final_path, format!("folder {} does not exist", dir.display())));
        }
        let err = |e: std::io::Error| {
            Error::output_from(final_path, format_args!("cannot create a file in folder {}", dir.display()), e)
        };
        // Created, locked and listed under the registry's lock, so a signal's cleanup sees either
        // no file or a listed one.
        let mut reg = registry();
        loop {
            let temp = tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .suffix(TEMP_SUFFIX)
                .rand_bytes(TEMP_RAND)
                .permissions(output_permissions())
                .tempfile_in(&dir)
                .map_err(err)?;
            // A file system without flock (some network or FUSE mounts) still gets its outputs:
            // their temporaries are unlocked, and a sweeper there cannot lock them either, so it
            // never takes them for stale.
            let _ = lock(temp.as_file(), true);
            // Between its creation and our lock, a render sweeping stale files may have taken the
            // lock and unlinked it: then the name is no longer ours, so keep our hands off it.
            if id_of_path(temp.path()).is_some() && id_of_path(temp.path()) == id_of_file(temp.as_file()) {
                reg.temps.push(temp.path().to_path_buf());
                return Ok(OutputTemp { temp: Some(temp), final_path: final_path.to_path_buf() });
            }
            let (_file, path) = temp.into_parts();
            let _ = path.keep();
        }
    }

    /// The open temporary file (already locked; a clone of it shares the lock).
    pub fn file(&self) -> &File {
        self.temp.as_ref().expect("temp file").as_file()
    }

    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        self.temp.as_ref().expect("temp file").path()
    }

    /// Where `publish` renames it.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// The folder the file goes to.
    pub fn folder(&self) -> PathBuf {
        name_and_folder(&self.final_path).map(|(_, d)| d).unwrap_or_else(|_| PathBuf::from("."))
    }
}

impl Drop for OutputTemp {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let mut reg = registry();
            let path = temp.path().to_path_buf();
            drop(temp); // unlinks before it leaves the list: a signal in between still removes it
            forget(&mut reg.temps, &path);
        }
    }
}

/// What a command put under final names and the folders it created, removed again when it is
/// dropped before `keep` (an error, a failed publish); a terminating signal removes the same
/// through `remove_everything`.
pub struct Publication {
    /// Whether a publish may replace an existing file (`--force`).
    replace: bool,
    published: Vec<(PathBuf, FileId)>,
    dirs: Vec<PathBuf>,
}

impl Publication {
    pub fn new(replace: bool) -> Self {
        Publication { replace, published: Vec::new(), dirs: Vec::new() }
    }

    /// Create `dir` and its missing parents, remembering each folder created, so that a command
    /// that fails (or is interrupted) leaves no empty folder behind.
    pub fn create_dir_all(&mut self, dir: &Path) -> Result<()> {
        let mut missing = Vec::new();
        let mut d = dir;
        while std::fs::symlink_metadata(d).is_err() {
            missing.push(d.to_path_buf());
            match d.parent() {
                Some(p) if !p.as_os_str().is_empty() => d = p,
                _ => break,
            }
        }
        let mut reg = registry();
        for m in missing.into_iter().rev() {
            match std::fs::create_dir(&m) {
                Ok(()) => {
                    reg.dirs.push(m.clone());
                    self.dirs.push(m);
                }
                // Another render made it meanwhile: not ours to remove.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && m.is_dir() => {}
                Err(e) => return Err(Error::output_from(&m, "cannot create folder", e)),
            }
        }
        if !dir.is_dir() {
            return Err(Error::output(dir, "cannot create folder: a file of that name is in the way"));
        }
        Ok(())
    }

    /// Rename a finished temporary file over its final name: refusing to replace an existing
    /// name unless this publication replaces (`--force`).
    pub fn publish(&mut self, mut out: OutputTemp) -> Result<()> {
        let final_path = out.final_path.clone();
        let temp = out.temp.take().expect("publish twice");
        let temp_path = temp.path().to_path_buf();
        let id = id_of_file(temp.as_file());
        let mut reg = registry();
        let renamed = if self.replace { temp.persist(&final_path) } else { temp.persist_noclobber(&final_path) };
        let result = match renamed {
            Ok(_file) => {
                if let Some(id) = id {
                    reg.published.push((final_path.clone(), id));
                    self.published.push((final_path.clone(), id));
                }
                Ok(())
            }
            Err(e) => {
                let why = if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    "appeared while this render ran (another render writing the same file?); it is not replaced \
                     without --force, and nothing of this render is left under a final name"
                        .to_string()
                } else {
                    format!("cannot rename the finished file into place: {}", e.error)
                };
                drop(e.file); // unlinks the temporary file
                Err(Error::output(&final_path, why))
            }
        };
        forget(&mut reg.temps, &temp_path);
        result
    }

    /// The command completed: what it published stays, and a later signal leaves it alone.
    pub fn keep(mut self) {
        self.forget_published();
        let mut reg = registry();
        for d in self.dirs.drain(..) {
            forget(&mut reg.dirs, &d);
        }
    }

    /// The command completed without publishing its outputs (a render that missed its spec):
    /// what it did publish (the report) stays, and the folders it created go again where they
    /// are empty (on drop, as after a failure).
    pub fn keep_published(mut self) {
        self.forget_published();
    }

    fn forget_published(&mut self) {
        let mut reg = registry();
        for (p, _) in self.published.drain(..) {
            if let Some(i) = reg.published.iter().rposition(|(q, _)| *q == p) {
                reg.published.swap_remove(i);
            }
        }
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        let mut reg = registry();
        for (p, id) in self.published.drain(..).rev() {
            remove_if_ours(&p, id);
            if let Some(i) = reg.published.iter().rposition(|(q, _)| *q == p) {
                reg.published.swap_remove(i);
            }
        }
        for d in self.dirs.drain(..).rev() {
            // Only an empty folder goes: something else may have been put there meanwhile.
            let _ = std::fs::remove_dir(&d);
            forget(&mut reg.dirs, &d);
        }
    }
}

/// For a terminating signal: remove every temporary file, every file published by a command
/// that has not completed and every folder such a command created (when empty). Returns how many
/// files went. The registry stays locked afterwards, so no thread creates or publishes anything
/// more before the process exits, which the caller must do next.
pub fn remove_everything() -> usize {
    let reg = registry();
    let mut removed = 0;
    for p in &reg.temps {
        removed += std::fs::remove_file(p).is_ok() as usize;
    }
    for (p, id) in reg.published.iter().rev() {
        if id_of_path(p) == Some(*id) {
            removed += std::fs::remove_file(p).is_ok() as usize;
        }
    }
    for d in reg.dirs.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
    std::mem::forget(reg);
    removed
}

/// Remove the stale temporary files of `final_path`: `.<name>.XXXXXX.stemforge-tmp` in its
/// folder, regular files whose lock no live process holds (the writer that made one died without
/// its cleanup: SIGKILL, a power cut). Each is unlinked while this process holds its lock, so a
/// writer that has just created it (and not yet locked it) sees that and makes another.
/// Returns the files removed; a folder that cannot be read has none.
pub fn sweep_stale(final_path: &Path) -> Vec<PathBuf> {
    let Ok((name, dir)) = name_and_folder(final_path) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let prefix = format!(".{name}.");
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let file_name = e.file_name();
        let Some(s) = file_name.to_str() else { continue };
        let Some(middle) = s.strip_prefix(&prefix).and_then(|r| r.strip_suffix(TEMP_SUFFIX)) else { continue };
        if middle.len() != TEMP_RAND || !middle.bytes().all(|b| b.is_ascii_alphanumeric()) {
            continue;
        }
        let path = e.path();
        if stale(&path) {
            removed.push(path);
        }
    }
    removed
}

/// Take the lock of a temporary file and unlink it when no other open file holds the lock.
#[cfg(unix)]
fn stale(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    // No symlink is followed and no FIFO blocks the open: only a plain file of ours is touched.
    let Ok(f) =
        std::fs::OpenOptions::new().read(true).custom_flags(open_flags::O_NOFOLLOW | open_flags::O_NONBLOCK).open(path)
    else {
        return false;
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    if !matches!(lock(&f, false), Ok(true)) {
        return false;
    }
    if id_of_path(path) != id_of_file(&f) {
        return false;
    }
    std::fs::remove_file(path).is_ok()
}

#[cfg(not(unix))]
fn stale(_path: &Path) -> bool {
    false
}

/// Open flags from rustix, a dependency on every unix (libc is one on Linux only).
#[cfg(unix)]
mod open_flags {
    pub const O_NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    pub const O_NONBLOCK: i32 = rustix::fs::OFlags::NONBLOCK.bits() as i32;
}

/// Permissions of a delivered file: rw for everyone, less the process umask (applied by open(2)),
/// as any file a tool writes. tempfile's own default (0600) would hide deliverables from the rest
/// of a team or a farm's next job. (stemforge targets Unix render hosts.)
pub fn output_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o666)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_temporary_is_not_stale_and_a_released_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.wav");
        let held = OutputTemp::create(&out).unwrap();
        assert!(sweep_stale(&out).is_empty(), "a live writer's file was swept");
        assert!(held.path().exists());
        // What a killed writer leaves: the file, without its lock.
        let left = held.path().to_path_buf();
        let copy = left.with_file_name(".m.wav.abcdef.stemforge-tmp");
        std::fs::copy(&left, &copy).unwrap();
        // Another output's temporary and a file of another pattern are not this output's.
        let other = dir.path().join(".n.wav.abcdef.stemforge-tmp");
        std::fs::write(&other, b"x").unwrap();
        let odd = dir.path().join(".m.wav.abc.stemforge-tmp");
        std::fs::write(&odd, b"x").unwrap();
        assert_eq!(sweep_stale(&out), vec![copy.clone()]);
        assert!(!copy.exists() && other.exists() && odd.exists() && left.exists());
        drop(held);
        assert!(!left.exists(), "a dropped temporary is deleted");
    }

    #[test]
    fn publish_without_replace_refuses_an_existing_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.wav");
        std::fs::write(&out, b"precious").unwrap();
        let temp = OutputTemp::create(&out).unwrap();
        let temp_path = temp.path().to_path_buf();
        let mut p = Publication::new(false);
        let e = p.publish(temp).unwrap_err();
        assert!(e.to_string().contains("m.wav"), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"precious");
        assert!(!temp_path.exists());
        // A publication dropped before `keep` takes back what it renamed, and its folders.
        let sub = dir.path().join("a/b");
        let mut p = Publication::new(false);
        p.create_dir_all(&sub).unwrap();
        p.publish(OutputTemp::create(&sub.join("x.wav")).unwrap()).unwrap();
        assert!(sub.join("x.wav").exists());
        drop(p);
        assert!(!dir.path().join("a").exists());
        let mut p = Publication::new(false);
        p.create_dir_all(&sub).unwrap();
        p.publish(OutputTemp::create(&sub.join("x.wav")).unwrap()).unwrap();
        p.keep();
        assert!(sub.join("x.wav").exists());
    }
}
