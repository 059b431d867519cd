//! The layer table in `src/lib.rs` is the rule, and the imports follow it: a module uses
//! only modules of its own layer or of the layers above it in the table.

use std::collections::HashMap;
use std::path::Path;

/// Module → layer index, read from the table in `src/lib.rs`.
fn layers(lib: &str) -> HashMap<String, usize> {
    let mut layers = HashMap::new();
    let mut layer = 0;
    for row in lib.lines().filter_map(|l| l.strip_prefix("//! |")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let [name, module, ..] = cells.as_slice() else {
            continue;
        };
        let Some(module) = module.split('`').nth(1) else {
            continue;
        };
        if !name.is_empty() {
            layer += 1;
        }
        layers.insert(module.to_owned(), layer);
    }
    layers
}

/// The top-level modules a file's code (its tests left out) names as `crate::module`.
fn uses(code: &str) -> Vec<String> {
    let code = code.split("#[cfg(test)]").next().unwrap_or(code);
    let mut used = Vec::new();
    for line in code.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + "crate::".len()..];
            let module: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !module.is_empty() && rest[module.len()..].starts_with("::") {
                used.push(module);
            }
        }
    }
    used
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_import_runs_to_the_same_layer_or_one_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers = layers(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    assert!(
        layers.len() >= 15,
        "the table lists the modules: {layers:?}"
    );
    let mut paths = Vec::new();
    files(&src, &mut paths);
    let mut wrong = Vec::new();
    for path in paths {
        let relative = path.strip_prefix(&src).unwrap();
        let top = relative.iter().next().unwrap().to_string_lossy();
        let module = top.trim_end_matches(".rs");
        if module == "lib" || module == "bin" || relative.ends_with("tests.rs") {
            continue;
        }
        let own = *layers
            .get(module)
            .unwrap_or_else(|| panic!("{module} is not in the table of src/lib.rs"));
        for used in uses(&std::fs::read_to_string(&path).unwrap()) {
            let theirs = layers.get(&used).copied().unwrap_or(0);
            if theirs > own {
                wrong.push(format!("{} uses crate::{used}", relative.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run down the table: {wrong:#?}"
    );
}

#[test]
fn the_table_and_the_scan_read_what_they_should() {
    let lib = "//! | layer | module | what |\n//! |---|---|---|\n//! | low | [`a`] | x |\n//! | | `b` | y |\n//! | high | `c` (feature) | z |\n";
    let layers = layers(lib);
    assert_eq!(layers["a"], layers["b"]);
    assert!(layers["c"] > layers["a"]);
    let code = "use crate::a::X;\n// crate::c::Y in a comment\nfn f() { crate::b::g(); }\n#[cfg(test)]\nmod tests { use crate::c::Z; }\n";
    assert_eq!(uses(code), ["a", "b"]);
}
