//! The crate's layers point one way (the `host` crate's Layout section):
//! no two top-level modules of `host/src` name each other through
//! `crate::` paths, directly or through others, and only the HTTP edge
//! (`api`) and startup (`server`) name axum or `crate::api`. Read from the
//! source before each file's tests, doc links included: a doc link is a
//! dependency a reader follows too.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level module → (module it names → first file naming it).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src` belongs to.
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .expect("a file under src")
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The file's text before its first `#[cfg(test)]`.
fn code_of(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

fn identifier(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first segment of every `crate::` path in `code`, `crate::{a, b::c}`
/// giving `a` and `b`.
fn named_modules(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = code[at + "crate::".len()..].trim_start();
        let Some(group) = rest.strip_prefix('{') else {
            names.push(identifier(rest).to_owned());
            continue;
        };
        let mut depth = 0usize;
        let mut start = 0usize;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    names.push(identifier(group[start..i].trim()).to_owned());
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    names.push(identifier(group[start..i].trim()).to_owned());
                    start = i + 1;
                }
                _ => {}
            }
        }
    }
    names
}

fn graph() -> (Graph, Vec<(String, String)>) {
    let root = source_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|file| module_of(file.strip_prefix(&root).expect("under src")))
        .filter(|module| module != "lib" && module != "main")
        .collect();
    let mut graph = Graph::new();
    let mut code_by_file = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&root).expect("under src");
        let module = module_of(relative);
        let code = code_of(file);
        for named in named_modules(&code) {
            if named != module && modules.contains(&named) {
                graph
                    .entry(module.clone())
                    .or_default()
                    .entry(named)
                    .or_insert_with(|| relative.display().to_string());
            }
        }
        code_by_file.push((relative.display().to_string(), code));
    }
    (graph, code_by_file)
}

/// A cycle through `from`, as the modules in order, if there is one.
fn cycle_through(graph: &Graph, from: &str) -> Option<Vec<String>> {
    let mut path = vec![from.to_owned()];
    let mut seen = BTreeSet::new();
    fn walk(
        graph: &Graph,
        target: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let here = path.last().expect("a start").clone();
        for next in graph.get(&here).into_iter().flat_map(|edges| edges.keys()) {
            if next == target {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, target, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(graph, from, &mut path, &mut seen).then_some(path)
}

#[test]
fn no_two_top_level_modules_name_each_other() {
    let (graph, _) = graph();
    assert!(
        graph.contains_key("api") && graph["api"].contains_key("gate"),
        "the scan found no imports at all; is it reading host/src? {graph:?}"
    );
    for module in graph.keys() {
        if let Some(cycle) = cycle_through(&graph, module) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|pair| {
                    format!(
                        "{} → {} (in {})",
                        pair[0], pair[1], graph[&pair[0]][&pair[1]]
                    )
                })
                .collect();
            panic!("an import circle: {}", steps.join(", "));
        }
    }
}

#[test]
fn only_the_http_edge_and_startup_name_axum_or_the_api() {
    let (_, files) = graph();
    let offenders: Vec<&str> = files
        .iter()
        .filter(|(file, _)| !file.starts_with("api") && file != "server.rs" && file != "lib.rs")
        .filter(|(_, code)| code.contains("axum") || code.contains("crate::api"))
        .map(|(file, _)| file.as_str())
        .collect();
    assert!(
        offenders.is_empty(),
        "{offenders:?} name axum or crate::api"
    );
}

#[test]
fn the_scan_reads_grouped_and_nested_paths() {
    let names = named_modules("use crate::{a::{b, c}, d};\nlet x = crate::e::f();");
    assert_eq!(names, ["a", "d", "e"]);
}
