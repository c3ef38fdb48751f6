//! The one-way floors of `docs/design.md` §1: a module may import only from lower floors (its
//! own module's files among themselves excepted; `error.rs`, the error aggregate, is exempt).
//! Reads every source file's `crate::` paths outside comments.

use std::collections::BTreeMap;
use std::path::Path;

/// Floor of each top-level module (docs/design.md §1).
const FLOORS: &[(&str, u32)] = &[
    ("tasks", 0),
    ("report", 0),
    ("limits", 0),
    ("snn", 1),
    ("chip", 2),
    ("config", 3),
    ("engine", 4),
    ("backend", 5),
    ("teacher", 6),
    ("bench", 6),
    ("learn", 7),
    ("baselines", 8),
    ("study", 9),
    ("export", 10),
    ("nir", 10),
    ("stages", 11),
    ("sweep", 12),
];

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn imports_only_go_down_the_floors() {
    let floors: BTreeMap<&str, u32> = FLOORS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut bad = Vec::new();
    let mut seen = 0;
    for path in &all {
        let rel = path.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if ["lib", "main", "error"].contains(&module.as_str()) {
            continue;
        }
        let Some(&own) = floors.get(module.as_str()) else {
            panic!(
                "src/{} is not on a floor: add its module to FLOORS and docs/design.md §1",
                rel.display()
            );
        };
        let text = std::fs::read_to_string(path).unwrap();
        for (ln, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let target: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if target == module || target == "Error" || target == "error" {
                    continue;
                }
                if target.is_empty() {
                    bad.push(format!(
                        "src/{}:{}: write `crate::module::...` (groups are not checked)",
                        rel.display(),
                        ln + 1
                    ));
                    continue;
                }
                seen += 1;
                match floors.get(target.as_str()) {
                    Some(&f) if f < own => {}
                    _ => bad.push(format!(
                        "src/{}:{}: {module} (floor {own}) imports {target} ({:?})",
                        rel.display(),
                        ln + 1,
                        floors.get(target.as_str())
                    )),
                }
            }
        }
    }
    assert!(seen > 100, "found only {seen} cross-module paths");
    assert!(
        bad.is_empty(),
        "imports that run up or sideways:\n{}",
        bad.join("\n")
    );
}
