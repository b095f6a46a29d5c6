//! The house rules of `src/` that the compiler does not check (issue 9): no module imports a module
//! that imports it back, and no top-level room depends on another that depends on it in turn.
//! Read from the source text: every `crate::a::b` path (in `use` lines and inline) and every
//! `super::x` names a module; test modules (`#[cfg(test)] mod tests`) are left out.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path ("pipeline::render", "" for lib.rs) of every source file, with its text.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    parts.pop();
                }
                let text = std::fs::read_to_string(&p).unwrap();
                // Unit tests may reach anywhere.
                let text = match text.find("#[cfg(test)]\nmod tests") {
                    Some(at) => text[..at].to_string(),
                    None => text,
                };
                out.insert(parts.join("::"), text);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

/// The longest module of `mods` that `path` (a::b::c) starts with.
fn resolve(mods: &BTreeMap<String, String>, path: &[&str]) -> Option<String> {
    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| mods.contains_key(m))
}

/// Which modules each module names.
fn edges(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in mods {
        let parent: Vec<&str> = m.split("::").filter(|s| !s.is_empty()).collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        let mut targets = Vec::new();
        for (prefix, base) in [("crate::", Vec::new()), ("super::", parent.to_vec())] {
            for (at, _) in text.match_indices(prefix) {
                if text[..at].ends_with(|c: char| ident(c) || c == ':') {
                    continue;
                }
                let rest = &text[at + prefix.len()..];
                let end = rest.find(|c: char| !(ident(c) || c == ':')).unwrap_or(rest.len());
                let mut path: Vec<&str> = base.clone();
                path.extend(rest[..end].split("::").filter(|s| !s.is_empty()));
                // `crate::a::{b, c}`: each of the group.
                if rest[end..].starts_with('{') {
                    let group = &rest[end + 1..rest[end..].find('}').map_or(rest.len(), |i| end + i)];
                    for item in group.split(',').map(|s| s.trim().split("::").next().unwrap_or("").trim()) {
                        let mut p = path.clone();
                        p.push(item);
                        targets.push(resolve(mods, &p));
                    }
                } else {
                    targets.push(resolve(mods, &path));
                }
            }
        }
        let set = out.entry(m.clone()).or_default();
        for t in targets.into_iter().flatten() {
            if t != *m && !t.is_empty() {
                set.insert(t);
            }
        }
    }
    out
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap_or(m)
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let mods = modules();
    assert!(mods.len() > 50 && mods.contains_key("pipeline::render"), "read {} modules", mods.len());
    let e = edges(&mods);
    // The reader sees the edges it must: render drives the pipeline, the engines implement engine.
    assert!(e["pipeline::render"].contains("pipeline::passes") && e["cpu::engine"].contains("engine"), "{e:?}");
    let mut pairs = Vec::new();
    for (a, targets) in &e {
        for b in targets {
            // A parent naming its child (`mod x; use x::...`) and the child naming the parent's items is
            // one room; only unrelated modules count.
            let nested = a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"));
            if a < b && !nested && e.get(b).is_some_and(|t| t.contains(a)) {
                pairs.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(pairs.is_empty(), "modules that import each other: {pairs:?}");
}

#[test]
fn the_rooms_have_no_cycle() {
    let e = edges(&modules());
    let mut rooms: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (a, targets) in &e {
        for b in targets {
            if top(a) != top(b) {
                rooms.entry(top(a)).or_default().insert(top(b));
            }
        }
    }
    // A room reaches itself again only through a cycle.
    for &start in rooms.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        while let Some((room, path)) = stack.pop() {
            for &next in rooms.get(room).into_iter().flatten() {
                assert!(next != start, "rooms in a cycle: {} -> {start}", path.join(" -> "));
                if seen.insert(next) {
                    let mut p = path.clone();
                    p.push(next);
                    stack.push((next, p));
                }
            }
        }
    }
}
