//! The README's two commands (`cargo build --release`, `cargo test --release`) must share one
//! build of the dependencies: every crate that both builds compile must get the same features in
//! both, or cargo compiles it (and burn and wgpu above it) twice. Dev-dependencies are what turns
//! on extra features; `Cargo.toml` names such crates with the same features to unify them.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// crate "name version" -> features, for the host target, as `cargo tree` resolves them.
fn features(edges: &str) -> Option<BTreeMap<String, BTreeSet<String>>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--prefix",
            "none",
            "-e",
            edges,
            "-f",
            "{p} {f}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "SKIPPED: cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 2 || !parts[1].starts_with('v') {
            continue;
        }
        let feats = parts
            .get(2)
            .filter(|f| !f.starts_with('('))
            .map(|f| f.to_string())
            .unwrap_or_default();
        map.entry(format!("{} {}", parts[0], parts[1]))
            .or_default()
            .insert(feats);
    }
    Some(map)
}

#[test]
fn build_and_test_resolve_shared_crates_with_the_same_features() {
    let (Some(build), Some(test)) = (
        features("features,normal,build"),
        features("features,normal,build,dev"),
    ) else {
        return;
    };
    assert!(
        build.len() > 100,
        "cargo tree listed {} crates",
        build.len()
    );
    let differ: Vec<String> = build
        .iter()
        .filter_map(|(k, f)| {
            let g = test.get(k)?;
            (f != g).then(|| format!("{k}: build {f:?}, test {g:?}"))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "these crates get other features under `cargo test` (name them in Cargo.toml's \
         feature-unification block): {differ:#?}"
    );
}
