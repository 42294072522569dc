//! A byte-for-byte picture of a directory tree: every file's SHA-256, mode
//! and owner, every symbolic link's target, every directory's mode. Two
//! pictures compare equal exactly when nothing in the tree changed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One entry of a [`Tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file.
    File {
        /// Hex SHA-256 of its bytes.
        sha256: String,
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// A symbolic link and its exact target.
    Link(PathBuf),
    /// A directory and its permission bits.
    Dir(u32),
}

/// Paths relative to the root → what is there.
pub type Tree = BTreeMap<PathBuf, Node>;

/// Pictures `root` (a directory or a single file), skipping paths that
/// start with any of `exclude`. A missing root gives an empty tree.
///
/// # Panics
/// When an entry cannot be read.
pub fn picture(root: &Path, exclude: &[&Path]) -> Tree {
    let mut out = Tree::new();
    walk(root, root, exclude, &mut out);
    out
}

fn walk(root: &Path, path: &Path, exclude: &[&Path], out: &mut Tree) {
    if exclude.iter().any(|e| path.starts_with(e)) {
        return;
    }
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let rel = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target =
            fs::read_link(path).unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()));
        out.insert(rel, Node::Link(target));
    } else if ft.is_dir() {
        out.insert(rel, Node::Dir(meta.mode() & 0o7777));
        let mut names: Vec<PathBuf> = fs::read_dir(path)
            .unwrap_or_else(|e| panic!("list {}: {e}", path.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for p in names {
            walk(root, &p, exclude, out);
        }
    } else {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        out.insert(
            rel,
            Node::File {
                sha256: hex::encode(Sha256::digest(&bytes)),
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
            },
        );
    }
}

/// The differences between two pictures, one line each (empty when equal).
pub fn diff(before: &Tree, after: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (p, b) in before {
        match after.get(p) {
            None => out.push(format!("gone: {} (was {b:?})", p.display())),
            Some(a) if a != b => out.push(format!("changed: {}: {b:?} -> {a:?}", p.display())),
            _ => {}
        }
    }
    for (p, a) in after {
        if !before.contains_key(p) {
            out.push(format!("new: {} ({a:?})", p.display()));
        }
    }
    out
}

/// Asserts two pictures are equal, listing the differences otherwise.
///
/// # Panics
/// When they differ.
pub fn assert_same(what: &str, before: &Tree, after: &Tree) {
    let d = diff(before, after);
    assert!(
        d.is_empty(),
        "{what} differs from before:\n{}",
        d.join("\n")
    );
}
