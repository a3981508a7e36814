//! The import rules of the `laterbase` crate, read from its sources: no
//! import cycle of any length between files, and the crate's top-level
//! modules in layers, each importing only from the layers below it (which
//! also rules out a cycle between them). `ARCHITECTURE.md` draws the layers.
//!
//! A file imports another when it names a path into it: in a `use`, in
//! code, in a type, or inside a macro's arguments (`crate::limits::X` in a
//! `format!`). A path goes to the file of the longest module it names, so a
//! `mod.rs` that re-exports a child (`pub use child::X`) imports that child,
//! and a child that imports through its parent's re-exports closes a cycle.
//! Declaring a module (`mod child;`) is not an import. Test code
//! (`#[cfg(test)]`) sits above everything and is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// The crate's top-level modules, lowest first. A module may import from
/// modules of a lower layer only (and from itself); nothing imports the
/// crate root, which only re-exports.
const LAYERS: &[&[&str]] = &[
    &["limits", "codec"],
    &["event"],
    &["clock"],
    &["error"],
    &["storage"],
    &["views", "sync"],
    &["config", "testing"],
    &["actors"],
    &["replication"],
    &["http"],
    &["server"],
    &["cli"],
];

/// What the sync protocol core (`sync`) may import besides itself: it runs
/// without a runtime, a disk or a socket.
const CORE_IMPORTS: &[&str] = &["limits", "codec", "event", "error", "clock", "storage"];

/// A module path within the crate: `[]` is the root, `["sync", "wire"]` is
/// `crate::sync::wire`.
type ModulePath = Vec<String>;

struct Source {
    file: PathBuf,
    module: ModulePath,
    syntax: syn::File,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("reads the source directory") {
            let path = entry.expect("reads an entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).expect("under src");
            let mut module: ModulePath = relative
                .with_extension("")
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            match module.last().map(String::as_str) {
                // The binary is a crate of its own.
                Some("main") if module.len() == 1 => continue,
                Some("lib") if module.len() == 1 => module.clear(),
                Some("mod") => {
                    module.pop();
                }
                _ => {}
            }
            let text = std::fs::read_to_string(&path).expect("reads a source file");
            let syntax = syn::parse_file(&text)
                .unwrap_or_else(|error| panic!("{} does not parse: {error}", path.display()));
            sources.push(Source {
                file: relative.to_owned(),
                module,
                syntax,
            });
        }
    }
    // Files of test code (`#[cfg(test)] mod tests;`) are left out too.
    let test_only: Vec<ModulePath> = sources
        .iter()
        .flat_map(|source| {
            source.syntax.items.iter().filter_map(|item| match item {
                syn::Item::Mod(item) if item.content.is_none() && is_test_only(&item.attrs) => {
                    let mut module = source.module.clone();
                    module.push(item.ident.to_string());
                    Some(module)
                }
                _ => None,
            })
        })
        .collect();
    sources.retain(|source| !test_only.iter().any(|test| source.module.starts_with(test)));
    sources.sort_by(|a, b| a.file.cmp(&b.file));
    sources
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Meta>()
                .is_ok_and(|meta| meta.path().is_ident("test"))
    })
}

/// Collects the module paths one file names, resolved against the modules
/// of the crate.
struct Names<'a> {
    /// The module the code being read is in (a file's module, or an inline
    /// module within it).
    module: ModulePath,
    modules: &'a BTreeSet<ModulePath>,
    named: BTreeSet<ModulePath>,
}

impl Names<'_> {
    /// Resolves a path as written in the current module: `crate::`,
    /// `laterbase::` (the crate names itself so), `super::`, `self::`, or
    /// a child module of the current one. Other paths name other crates or
    /// local items.
    fn name(&mut self, segments: &[String]) {
        let Some(first) = segments.first() else {
            return;
        };
        let mut absolute = match first.as_str() {
            "crate" | "laterbase" => Vec::new(),
            "self" => self.module.clone(),
            "super" => {
                let mut parent = self.module.clone();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    parent.pop();
                    rest = &rest[1..];
                }
                parent.extend(rest.iter().cloned());
                self.named.insert(parent);
                return;
            }
            _ => {
                // `child::item`; a lone `name` is a local (a variable may
                // share a module's name).
                let mut child = self.module.clone();
                child.push(first.clone());
                if segments.len() < 2 || !self.modules.contains(&child) {
                    return;
                }
                self.module.clone()
            }
        };
        let skip = usize::from(matches!(first.as_str(), "crate" | "laterbase" | "self"));
        absolute.extend(segments[skip..].iter().cloned());
        self.named.insert(absolute);
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                if name.ident != "self" {
                    prefix.push(name.ident.to_string());
                }
                self.name(&prefix.clone());
                if name.ident != "self" {
                    prefix.pop();
                }
            }
            syn::UseTree::Rename(rename) => {
                prefix.push(rename.ident.to_string());
                self.name(&prefix.clone());
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.name(&prefix.clone()),
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    /// Paths inside a macro's arguments, which syn leaves as tokens: each
    /// run `crate :: a :: b` or `super :: a`.
    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(group) => self.tokens(group.stream()),
                TokenTree::Ident(ident) if ident == "crate" || ident == "super" => {
                    let mut segments = vec![ident.to_string()];
                    let mut j = i + 1;
                    while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) =
                        (tokens.get(j), tokens.get(j + 1))
                    {
                        let Some(TokenTree::Ident(next)) = tokens.get(j + 2) else {
                            break;
                        };
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(next.to_string());
                        j += 3;
                    }
                    self.name(&segments);
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Names<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(item) => &item.attrs,
            syn::Item::Fn(item) => &item.attrs,
            syn::Item::Impl(item) => &item.attrs,
            syn::Item::Use(item) => &item.attrs,
            syn::Item::Struct(item) => &item.attrs,
            syn::Item::Enum(item) => &item.attrs,
            syn::Item::Const(item) => &item.attrs,
            syn::Item::Static(item) => &item.attrs,
            syn::Item::Trait(item) => &item.attrs,
            syn::Item::Type(item) => &item.attrs,
            syn::Item::Macro(item) => &item.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_test_only(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        // `mod child;` declares; an inline module's code is read in it.
        if item.content.is_some() {
            self.module.push(item.ident.to_string());
            syn::visit::visit_item_mod(self, item);
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect();
        self.name(&segments);
        syn::visit::visit_path(self, path);
    }

    /// `pub(crate)` and `pub(super)` say who may see an item, not what the
    /// file imports.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_impl_item_fn(self, item);
        }
    }
}

/// Each file and the files it imports, by path relative to `src`.
fn imports(sources: &[Source]) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let modules: BTreeSet<ModulePath> = sources.iter().map(|s| s.module.clone()).collect();
    let files: BTreeMap<&ModulePath, &PathBuf> =
        sources.iter().map(|s| (&s.module, &s.file)).collect();
    let mut graph = BTreeMap::new();
    for source in sources {
        let mut names = Names {
            module: source.module.clone(),
            modules: &modules,
            named: BTreeSet::new(),
        };
        names.visit_file(&source.syntax);
        let mut imported = BTreeSet::new();
        for mut path in names.named {
            // The file of the longest module the path names.
            while !files.contains_key(&path) {
                path.pop();
            }
            let file = files[&path];
            if *file != source.file {
                imported.insert(file.clone());
            }
        }
        graph.insert(source.file.clone(), imported);
    }
    graph
}

/// The groups of files in `graph` that import each other through some
/// chain (its strongly connected components of more than one file), each
/// in order; none when `graph` has no cycle. Tarjan's algorithm.
fn cycles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        found: Vec<Vec<PathBuf>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a PathBuf) {
            let index = self.index.len();
            self.index.insert(node, index);
            self.low.insert(node, index);
            self.stack.push(node);
            for next in self.graph.get(node).into_iter().flatten() {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let start = self
                    .stack
                    .iter()
                    .position(|n| *n == node)
                    .expect("on the stack");
                let group: Vec<PathBuf> = self.stack.drain(start..).cloned().collect();
                if group.len() > 1 {
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node) {
            walk.visit(node);
        }
    }
    for group in &mut walk.found {
        group.sort();
    }
    walk.found
}

fn top_level(file: &Path) -> String {
    let first = file
        .components()
        .next()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    match first.strip_suffix(".rs") {
        Some("lib") => String::new(),
        Some(name) => name.to_owned(),
        None => first,
    }
}

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("the top-level module `{module}` has no layer in LAYERS"))
}

#[test]
fn no_two_files_import_each_other_through_any_chain() {
    let graph = imports(&sources());
    assert!(graph.len() > 40, "the sources were found: {graph:?}");
    let groups: Vec<String> = cycles(&graph)
        .iter()
        .map(|group| {
            let files: Vec<String> = group.iter().map(|f| f.display().to_string()).collect();
            let imports: Vec<String> = group
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|to| group.contains(to))
                        .map(move |to| format!("  {} -> {}", from.display(), to.display()))
                })
                .collect();
            format!("{}\n{}", files.join(", "), imports.join("\n"))
        })
        .collect();
    assert!(
        groups.is_empty(),
        "files that import each other through a chain:\n{}",
        groups.join("\n")
    );
}

#[test]
fn each_top_level_module_imports_only_from_layers_below_it() {
    let graph = imports(&sources());
    let mut wrong = Vec::new();
    for (file, imported) in &graph {
        let from = top_level(file);
        for to in imported.iter().map(|f| top_level(f)) {
            if to == from {
                continue;
            }
            if to.is_empty() {
                wrong.push(format!(
                    "{} imports the crate root; name the module instead",
                    file.display()
                ));
            } else if !from.is_empty() && layer(&to) >= layer(&from) {
                wrong.push(format!(
                    "{} (`{from}`) imports `{to}`, which is not below it",
                    file.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_sync_core_imports_nothing_above_the_storage_traits() {
    let graph = imports(&sources());
    let mut wrong = Vec::new();
    for (file, imported) in graph.iter().filter(|(file, _)| top_level(file) == "sync") {
        for to in imported {
            let module = top_level(to);
            let allowed = module == "sync"
                || CORE_IMPORTS.contains(&module.as_str())
                    // The storage traits, not an engine.
                    && !(module == "storage" && to != Path::new("storage/mod.rs"));
            if !allowed {
                wrong.push(format!("{} imports {}", file.display(), to.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_rules_see_a_cycle_and_a_wrong_layer() {
    // Two files that import each other, read by the same rules.
    let parse = |text: &str| syn::parse_file(text).expect("parses");
    let sources = vec![
        Source {
            file: PathBuf::from("sync/a.rs"),
            module: vec!["sync".into(), "a".into()],
            syntax: parse("use super::b::X; fn f() { let _ = crate::actors::Y; }"),
        },
        Source {
            file: PathBuf::from("sync/b.rs"),
            module: vec!["sync".into(), "b".into()],
            syntax: parse("fn g() { tracing::info!(x = %super::a::Z); }"),
        },
        Source {
            file: PathBuf::from("actors.rs"),
            module: vec!["actors".into()],
            syntax: parse("#[cfg(test)] mod tests { use crate::sync::a::X; }"),
        },
    ];
    let graph = imports(&sources);
    assert_eq!(
        graph[Path::new("sync/a.rs")],
        BTreeSet::from([PathBuf::from("sync/b.rs"), PathBuf::from("actors.rs")])
    );
    assert_eq!(
        graph[Path::new("actors.rs")],
        BTreeSet::new(),
        "test code is left out"
    );
    assert_eq!(
        cycles(&graph),
        vec![vec![PathBuf::from("sync/a.rs"), PathBuf::from("sync/b.rs")]]
    );
}
