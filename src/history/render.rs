//! How a diff reads: the text `appliance diff` prints, and its JSON (`docs/history.md`).

use serde_json::{Value, json};

use super::diff::{Aspect, FileChange, LockDiff, PackageChange};
use crate::lock::{FileEntry, file_json};
use crate::repo::StoredLock;

/// A time in seconds since the Unix epoch as RFC 3339 in UTC; `None` before 1970 or
/// past 9999.
pub(super) fn time(created: i64) -> Option<String> {
    u64::try_from(created)
        .ok()
        .and_then(crate::materialise::rfc3339)
}

/// A size change as `nix store diff-closures` prints one: `+1.2 MiB`, `-512 B`.
pub fn size_change(bytes: i128) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let sign = if bytes < 0 { '-' } else { '+' };
    let bytes = bytes.unsigned_abs();
    if bytes < 1024 {
        return format!("{sign}{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{sign}{value:.1} {}", UNITS[unit])
}

/// The text of `diff` from lock `from` to lock `to`: the package sections as
/// `rpm-ostree db diff` prints them, each package's size change, the other fields that
/// changed, and the paths (with `files`, every one; else how many).
pub fn diff_text(from: &StoredLock, to: &StoredLock, diff: &LockDiff<'_>, files: bool) -> String {
    let mut text = format!(
        "from {}\nto   {}\n",
        from.lock.address(from.revision),
        to.lock.address(to.revision)
    );
    if diff.is_empty() {
        return text + "identical\n";
    }
    if diff.packages_unchanged() {
        text += "Packages unchanged\n";
    }
    for (name, changes) in diff.sections() {
        if changes.is_empty() {
            continue;
        }
        let mut title = name.to_string();
        title[..1].make_ascii_uppercase();
        text += &format!("{title}:\n");
        for change in changes {
            text += &format!("  {}\n", package_line(change));
        }
    }
    if !diff.settings.is_empty() {
        let names: Vec<&str> = diff.settings.iter().map(|s| s.as_str()).collect();
        text += &format!("Also changed: {}\n", names.join(", "));
    }
    let counts: Vec<String> = (diff.path_counts().iter())
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    let counts = counts.join(", ");
    if !files {
        let hint = if diff.files.is_empty() {
            ""
        } else {
            " (--files lists them)"
        };
        return text + &format!("Paths: {counts}{hint}\n");
    }
    text += &format!("Paths: {counts}\n");
    for change in &diff.files {
        text += &format!("  {}\n", path_line(change));
    }
    text
}

/// `name old -> new  +1.2 MiB`, or `name version  size` for one added or removed.
fn package_line(change: &PackageChange<'_>) -> String {
    let versions: Vec<&str> = [change.old, change.new].into_iter().flatten().collect();
    format!(
        "{} {}  {}",
        change.label(),
        versions.join(" -> "),
        size_change(change.size_change())
    )
}

/// `+ PATH  ENTRY`, `- PATH  ENTRY`, or `~ PATH  what changed, old -> new`.
fn path_line(change: &FileChange<'_>) -> String {
    let detail = match (change.old, change.new) {
        (Some(old), Some(new)) => (change.aspects.iter())
            .map(|&aspect| {
                let (a, b) = (shown(aspect, old), shown(aspect, new));
                format!("{} {a} -> {b}", aspect.as_str())
            })
            .collect::<Vec<_>>()
            .join(", "),
        (Some(entry), None) | (None, Some(entry)) => {
            let aspects = [Aspect::Kind, Aspect::Mode, Aspect::Owner];
            let mut words: Vec<String> = aspects.iter().map(|&a| shown(a, entry)).collect();
            match entry.kind {
                crate::lock::FileKind::File => words.push(shown(Aspect::Content, entry)),
                _ if entry.target.is_some() => {
                    words.push(format!("-> {}", shown(Aspect::Link, entry)));
                }
                _ => {}
            }
            words.join(" ")
        }
        (None, None) => String::new(),
    };
    let mark = match change.state() {
        "new" => '+',
        "gone" => '-',
        _ => '~',
    };
    format!("{mark} {}  {detail}", change.path)
}

/// How one aspect of an entry reads.
fn shown(aspect: Aspect, f: &FileEntry) -> String {
    let or_none = |value: &Option<String>| value.clone().unwrap_or_else(|| "none".into());
    let name = |name: &str, id: u32| {
        if name.is_empty() {
            id.to_string()
        } else {
            name.to_string()
        }
    };
    match aspect {
        Aspect::Kind => f.kind.to_string(),
        Aspect::Content => {
            let digest = f.digest.as_deref().unwrap_or_default();
            format!("{} B {}", f.size, digest.get(..8).unwrap_or(digest))
        }
        Aspect::Mode => format!("{:04o}", f.mode),
        Aspect::Owner => format!("{}:{}", name(&f.user, f.uid), name(&f.group, f.gid)),
        Aspect::Link => or_none(&f.target),
        Aspect::Device => f
            .device
            .map_or("none".into(), |(major, minor)| format!("{major},{minor}")),
        Aspect::Capabilities => (if f.caps.is_some() { "set" } else { "none" }).into(),
        Aspect::Package => or_none(&f.package),
        Aspect::Conffile => (if f.conffile { "yes" } else { "no" }).into(),
        Aspect::Origin => or_none(&f.origin),
        Aspect::Mtime => f.mtime.map_or("none".into(), |t| t.to_string()),
        Aspect::Documentation => (f.documentation).map_or("none", |d| d.as_str()).into(),
    }
}

/// The JSON of `diff` from lock `from` to lock `to`; `paths` only with `files`.
pub fn diff_json(from: &StoredLock, to: &StoredLock, diff: &LockDiff<'_>, files: bool) -> Value {
    let end = |s: &StoredLock| {
        json!({
            "address": s.lock.address(s.revision), "lock_id": s.lock_id,
            "created": s.created, "time": time(s.created),
        })
    };
    let mut value = json!({
        "from": end(from),
        "to": end(to),
        "backend": diff.backend,
        "summary": diff.to_string(),
        "settings": diff.settings.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    });
    value["files"] = (diff.path_counts().iter())
        .map(|(state, n)| (state.to_string(), json!(n)))
        .collect();
    for (name, changes) in diff.sections() {
        value[name] = changes.iter().map(package_json).collect();
    }
    if files {
        value["paths"] = diff.files.iter().map(path_json).collect();
    }
    value
}

fn package_json(change: &PackageChange<'_>) -> Value {
    // Within i64 unless a size was tampered with past 8 EiB.
    let size_change = i64::try_from(change.size_change()).unwrap_or(i64::MAX);
    json!({
        "name": change.name, "arch": change.arch, "old": change.old, "new": change.new,
        "old_size": change.old_size, "new_size": change.new_size, "size_change": size_change,
    })
}

fn path_json(change: &FileChange<'_>) -> Value {
    let entry = |f: Option<&FileEntry>| f.map(file_json);
    json!({
        "path": change.path,
        "change": change.state(),
        "aspects": change.aspects.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "old": entry(change.old),
        "new": entry(change.new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_nix() {
        assert_eq!(size_change(0), "+0 B");
        assert_eq!(size_change(-1023), "-1023 B");
        assert_eq!(size_change(1024), "+1.0 KiB");
        assert_eq!(size_change(1_258_291), "+1.2 MiB");
        assert_eq!(size_change(-3 << 30), "-3.0 GiB");
        assert_eq!(size_change(5 << 50), "+5120.0 TiB");
    }
}
