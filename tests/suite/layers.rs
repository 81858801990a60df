//! The module layers of `src/README.md` hold: every `crate::<module>` path in a module's files
//! names a module of a lower layer (or the module itself), so dependencies point one way and
//! no import cycle can exist. Every module of `lib.rs` has a layer.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `module → layer` from the "Layers" table of src/README.md.
fn layers() -> BTreeMap<String, usize> {
    let readme = std::fs::read_to_string(src().join("README.md")).unwrap();
    let section = readme.split("## Layers").nth(1).expect("src/README.md has a Layers section");
    let mut layers = BTreeMap::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [_, layer, modules, _] = cells.as_slice() {
            if let Ok(layer) = layer.parse::<usize>() {
                for m in modules.split(',') {
                    layers.insert(m.trim().trim_matches('`').to_owned(), layer);
                }
            }
        }
    }
    assert!(!layers.is_empty(), "no layer table found");
    layers
}

/// The code of a line without its `//` comment (outside string literals).
fn code(line: &str) -> &str {
    let mut in_string = false;
    let bytes = line.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn identifier_at(text: &str) -> String {
    text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

/// The top-level modules a source text names through `crate::`, including `use crate::{a, b}`.
fn dependencies(text: &str) -> Vec<String> {
    let code: String = text.lines().map(code).collect::<Vec<_>>().join("\n");
    let mut deps = vec![];
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let inner: String = group
                .chars()
                .take_while(|c| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth > 0
                })
                .collect();
            // Top-level items of the group: split on commas outside nested braces.
            let mut level = 0;
            let mut start = 0;
            let chars: Vec<char> = inner.chars().collect();
            for (k, c) in chars.iter().enumerate() {
                match c {
                    '{' => level += 1,
                    '}' => level -= 1,
                    ',' if level == 0 => {
                        deps.push(identifier_at(chars[start..k].iter().collect::<String>().trim()));
                        start = k + 1;
                    }
                    _ => {}
                }
            }
            deps.push(identifier_at(chars[start..].iter().collect::<String>().trim()));
        } else {
            deps.push(identifier_at(rest));
        }
    }
    deps.retain(|d| !d.is_empty() && d.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    deps
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module of each top-level module file, by its path under `src/`.
fn module_of(relative: &Path) -> String {
    relative.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()
}

/// `#[macro_export]` macros live at the crate root (`crate::outln!`): each belongs to the module
/// that defines it.
fn macro_modules(files: &[PathBuf]) -> std::collections::HashMap<String, String> {
    let mut owners = std::collections::HashMap::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, _) in text.match_indices("macro_rules! ") {
            let name = identifier_at(&text[i + "macro_rules! ".len()..]);
            owners.insert(name, module_of(file.strip_prefix(src()).unwrap()));
        }
    }
    owners
}

#[test]
fn every_module_uses_only_lower_layers() {
    let layers = layers();
    let mut files = vec![];
    rust_files(&src(), &mut files);
    let macros = macro_modules(&files);
    let mut violations = vec![];
    for file in files {
        let relative = file.strip_prefix(src()).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_owned();
        // The binaries' roots: `main` uses the library; `bin/huelab-kernel.rs` cannot (it would
        // load libtorch) and compiles the kernel files it shares, which name no `crate::`.
        if module == "lib" || module == "main" || module == "bin" {
            continue;
        }
        let layer = *layers.get(&module).unwrap_or_else(|| panic!("module '{module}' ({}) has no row in the Layers table of src/README.md", relative.display()));
        for dep in dependencies(&std::fs::read_to_string(&file).unwrap()) {
            let dep = macros.get(&dep).cloned().unwrap_or(dep);
            if dep == module {
                continue;
            }
            let dep_layer = *layers.get(&dep).unwrap_or_else(|| panic!("{} names crate::{dep}, which has no layer", relative.display()));
            if dep_layer >= layer {
                violations.push(format!("src/{}: uses crate::{dep} (layer {dep_layer}) from {module} (layer {layer})", relative.display()));
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(violations.is_empty(), "dependencies that do not point down:\n{}", violations.join("\n"));
}

#[test]
fn every_module_of_the_library_has_a_layer() {
    let layers = layers();
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let modules: Vec<String> = lib.lines().filter_map(|l| l.trim().strip_prefix("pub mod ").map(|m| m.trim_end_matches(';').to_owned())).collect();
    assert!(modules.len() > 10);
    for m in &modules {
        assert!(layers.contains_key(m), "lib.rs declares '{m}', which has no layer in src/README.md");
    }
    for m in layers.keys() {
        assert!(modules.contains(m), "src/README.md gives a layer to '{m}', which lib.rs does not declare");
    }
}

#[test]
fn the_dependency_reader_sees_grouped_and_nested_uses() {
    let deps = dependencies("use crate::{error::{Error, Result}, files::write_csv};\nlet x = crate::data::digits(); // crate::script::x\n");
    assert_eq!(deps, ["error", "files", "data"]);
}
