//! Where a command's writes land, compared with what it reads: no output may replace an input, or
//! another output, whatever the flags (`--force` replaces old outputs, never inputs).
//!
//! A write lands in its folder with symlinks followed (an `--out-dir` that is a link to the stems'
//! folder writes into the stems' folder), under its own name *not* followed: the final rename
//! replaces a symlink at that name, not the file it points to, so an output path that is a link to
//! an input leaves the input intact and is allowed. An input is matched both by the name the
//! session gives it (its folder resolved) and by the file it resolves to, and an existing output
//! that is the same file (device and inode) as an input is refused too: a hard link, or a name
//! spelt differently on a case-insensitive volume.
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::{Filter, OutputKind};
use crate::session::Session;

/// A path a command reads or writes, and what it is to the user ("outputs[0]", "--report",
/// "stems[1] (drums)").
#[derive(Debug, Clone)]
pub struct Role {
    pub path: PathBuf,
    pub what: String,
}

impl Role {
    pub fn new(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Role { path: path.into(), what: what.into() }
    }
}

/// Every input file of a session: the session file itself, each stem (muted ones too: they are
/// the user's files all the same), the reference mix, the FIR files.
pub fn session_inputs(session: &Session) -> Vec<Role> {
    let mut inputs = vec![Role::new(&session.file, "the session file")];
    for (i, s) in session.stems.iter().enumerate() {
        inputs.push(Role::new(&s.path, format!("stems[{i}] ({})", s.name)));
        if let Filter::File(f) = &s.filter {
            inputs.push(Role::new(f, format!("stems[{i}].fir ({})", s.name)));
        }
    }
    if let Some(m) = &session.reference_mix {
        inputs.push(Role::new(m, "reference_mix"));
    }
    if let Filter::File(f) = &session.bus_filter {
        inputs.push(Role::new(f, "bus.fir"));
    }
    inputs
}

/// Every path a render of `session` writes under `out_dir`: each master file, each stem output's
/// folder and its files (unmuted stems: the ones rendered).
pub fn render_writes(session: &Session, out_dir: &Path) -> Vec<Role> {
    let mut writes = Vec::new();
    // Each file, or with `split_channels` each of its channels' files.
    let files = |o: &crate::session::Output, rel: PathBuf, who: String| -> Vec<Role> {
        session
            .split_paths(o, &rel)
            .into_iter()
            .map(|(f, c)| {
                let who = c.map_or(who.clone(), |c| format!("{who} (channel {})", session.layout.channel_labels()[c]));
                Role::new(out_dir.join(f), who)
            })
            .collect()
    };
    let stems: Vec<&crate::session::Stem> = session.unmuted_stems().map(|(_, s)| s).collect();
    let mut add = |o: &crate::session::Output, at: String, stems: &[&crate::session::Stem]| match o.kind {
        OutputKind::Master => writes.extend(files(o, o.path.clone(), at)),
        OutputKind::Stems => {
            if !o.path.to_string_lossy().contains("{stem}") {
                writes.push(Role::new(out_dir.join(&o.path), format!("{at} (its folder)")));
            }
            for s in stems {
                writes.extend(files(o, session.stem_output_path(o, s), format!("{at} (stem {:?})", s.name)));
            }
        }
    };
    for (i, o) in session.outputs.iter().enumerate() {
        add(o, format!("outputs[{i}]"), &stems);
    }
    for (j, v) in session.variants.iter().enumerate() {
        let kept: Vec<&crate::session::Stem> = session.variant_stems(v).map(|(_, s)| s).collect();
        for (k, o) in v.outputs.iter().enumerate() {
            add(o, format!("variants[{j}].outputs[{k}]"), &kept);
        }
    }
    writes
}

/// Where a write to `p` lands: its folder with every symlink resolved (the part that does not
/// exist yet appended as written, `.` and `..` applied), its own name as given.
fn landing(p: &Path) -> Option<PathBuf> {
    let abs = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().ok()?.join(p) };
    let name = match abs.components().next_back()? {
        Component::Normal(n) => n.to_os_string(),
        _ => return None,
    };
    let folder = abs.parent()?;
    Some(resolve_folder(folder).join(name))
}

/// `dir` with its deepest existing ancestor canonicalised and the rest applied lexically.
fn resolve_folder(dir: &Path) -> PathBuf {
    let mut rest: Vec<OsString> = Vec::new();
    let mut d = dir.to_path_buf();
    let base = loop {
        if let Ok(c) = d.canonicalize() {
            break c;
        }
        match (d.file_name(), d.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n.to_os_string());
                d = parent.to_path_buf();
            }
            // `..` or `.` at the end of a missing path: step up lexically.
            (None, Some(parent)) if d.ends_with("..") => {
                rest.push("..".into());
                d = parent.to_path_buf();
            }
            _ => break d,
        }
    };
    let mut out = base;
    for c in rest.into_iter().rev() {
        if c == ".." {
            out.pop();
        } else if c != "." {
            out.push(c);
        }
    }
    out
}

/// (device, inode) of what `p` names, following symlinks or not.
#[cfg(unix)]
fn file_id(p: &Path, follow: bool) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = if follow { std::fs::metadata(p) } else { std::fs::symlink_metadata(p) }.ok()?;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_p: &Path, _follow: bool) -> Option<(u64, u64)> {
    None
}

/// Refuse (`Error::Output`, exit 2) any write that lands on an input or on another write, naming
/// both. Run before anything is read or written, whatever `--force` says.
pub fn check_writes(writes: &[Role], inputs: &[Role]) -> Result<()> {
    struct Landed<'a> {
        role: &'a Role,
        at: PathBuf,
        /// The file already at that name, when it is not a symlink (a rename replaces a link).
        id: Option<(u64, u64)>,
    }
    let mut landed = Vec::with_capacity(writes.len());
    for w in writes {
        let at = landing(&w.path).ok_or_else(|| Error::output(&w.path, format!("{}: does not name a file", w.what)))?;
        let link = std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink());
        let id = if link { None } else { file_id(&at, false) };
        landed.push(Landed { role: w, at, id });
    }
    for input in inputs {
        // The name the session uses and the file it resolves to.
        let mut names: Vec<PathBuf> = landing(&input.path).into_iter().collect();
        if let Ok(c) = input.path.canonicalize() {
            names.push(c);
        }
        let id = file_id(&input.path, true);
        for l in &landed {
            if names.contains(&l.at) || (l.id.is_some() && l.id == id) {
                return Err(Error::output(
                    &l.role.path,
                    format!(
                        "{} would overwrite {} ({}), an input; inputs are never modified, even with --force",
                        l.role.what,
                        input.path.display(),
                        input.what
                    ),
                ));
            }
        }
    }
    for (i, a) in landed.iter().enumerate() {
        for b in &landed[..i] {
            if a.at == b.at || (a.id.is_some() && a.id == b.id) {
                return Err(Error::output(
                    &a.role.path,
                    format!(
                        "{} and {} ({}) would write the same file",
                        a.role.what,
                        b.role.what,
                        b.role.path.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether two existing folders are on one file system (unknown counts as yes: the conservative
/// answer for a free-space check).
pub fn same_file_system(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev(),
            _ => true,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tail_is_applied_lexically() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        assert_eq!(resolve_folder(&dir.path().join("a/b/../c/.")), base.join("a/c"));
        assert_eq!(landing(&dir.path().join("x/../m.wav")).unwrap(), base.join("m.wav"));
    }

    /// The spill's free-space check counts only outputs on its own file system (issue 10 item 11).
    #[cfg(target_os = "linux")]
    #[test]
    fn file_systems_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(same_file_system(dir.path(), &dir.path().join("sub")));
        assert!(!same_file_system(dir.path(), Path::new("/proc")), "procfs is its own file system");
        assert!(same_file_system(dir.path(), &dir.path().join("missing")), "unknown counts as the same");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_at_the_output_name_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.wav");
        std::fs::write(&input, b"input").unwrap();
        let link = dir.path().join("out.wav");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        let inputs = [Role::new(&input, "stems[0] (a)")];
        check_writes(&[Role::new(&link, "outputs[0]")], &inputs).expect("a link at the output name is fine");
        let e = check_writes(&[Role::new(dir.path().join("./in.wav"), "outputs[0]")], &inputs).unwrap_err();
        assert!(e.to_string().contains("in.wav") && e.to_string().contains("stems[0]"), "{e}");
        // A folder link: the write lands in the folder it points to.
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::fs::write(dir.path().join("real/s.wav"), b"s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("alias")).unwrap();
        let inputs = [Role::new(dir.path().join("real/s.wav"), "stems[0] (s)")];
        assert!(check_writes(&[Role::new(dir.path().join("alias/s.wav"), "outputs[0]")], &inputs).is_err());
        // A hard link to an input is the input's file.
        std::fs::hard_link(dir.path().join("real/s.wav"), dir.path().join("hard.wav")).unwrap();
        assert!(check_writes(&[Role::new(dir.path().join("hard.wav"), "outputs[0]")], &inputs).is_err());
    }
}
