//! No import circle between modules, in any crate of the workspace (issue 16: "a CI step fails
//! on a module cycle").
//!
//! Every library and binary target that `cargo metadata` lists is read with `syn`, following
//! its `mod` declarations (test-only modules and items, `#[cfg(test)]`, are left out: tests may
//! reach anywhere). A reference from module `a::x` to `b::y` (a `use` or any path in code:
//! `crate::...`, `super::...`, `self::...`, or a child module's name) is an edge between the
//! siblings `a` and `b` under their common parent; a module using its own ancestors or
//! descendants makes no edge. Any strongly connected group of two or more siblings is a
//! circle, reported with one reference per edge so it can be found.
//!
//! Paths inside macro invocations are token soup to `syn` and are not seen; the compiler-level
//! guarantee between crates is Cargo's own (it refuses a dependency cycle).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use syn::visit::Visit;

type ModPath = Vec<String>;

/// A module of one crate: its path from the crate root and the paths its code refers to,
/// each with where it was seen.
#[derive(Default)]
struct Module {
    file: PathBuf,
    refs: Vec<(Vec<String>, String)>,
    children: BTreeSet<String>,
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && {
            let tokens = a
                .meta
                .require_list()
                .map(|l| l.tokens.to_string())
                .unwrap_or_default();
            tokens == "test" || tokens.starts_with("all (test")
        }
    })
}

/// The file a `#[path = "..."]` attribute names, relative to the declaring file's directory.
fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

struct Crate {
    modules: BTreeMap<ModPath, Module>,
}

impl Crate {
    fn read(root: &Path) -> Crate {
        let mut c = Crate {
            modules: BTreeMap::new(),
        };
        let file = syn::parse_file(&std::fs::read_to_string(root).expect("read crate root"))
            .unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        let dir = root.parent().expect("root in a directory").to_path_buf();
        c.add(Vec::new(), root, &dir, &file.items);
        c
    }

    /// Adds the module at `path` whose items are `items` (from `file`); nested `mod x;`
    /// declarations are looked up in `dir`.
    fn add(&mut self, path: ModPath, file: &Path, dir: &Path, items: &[syn::Item]) {
        let mut collector = Refs::default();
        for item in items {
            match item {
                syn::Item::Mod(m) if is_test_only(&m.attrs) => {}
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    let mut child = path.clone();
                    child.push(name.clone());
                    self.modules
                        .entry(path.clone())
                        .or_default()
                        .children
                        .insert(name.clone());
                    match &m.content {
                        Some((_, inner)) => self.add(child, file, &dir.join(&name), inner),
                        None if path_attr(&m.attrs).is_some() => {
                            let child_file = file
                                .parent()
                                .expect("file in a directory")
                                .join(path_attr(&m.attrs).expect("checked"));
                            let text = std::fs::read_to_string(&child_file)
                                .unwrap_or_else(|e| panic!("{}: {e}", child_file.display()));
                            let parsed = syn::parse_file(&text)
                                .unwrap_or_else(|e| panic!("{}: {e}", child_file.display()));
                            let child_dir = child_file.with_extension("");
                            self.add(child, &child_file, &child_dir, &parsed.items);
                        }
                        None => {
                            let flat = dir.join(format!("{name}.rs"));
                            let (child_file, child_dir) = if flat.exists() {
                                (flat, dir.join(&name))
                            } else {
                                (dir.join(&name).join("mod.rs"), dir.join(&name))
                            };
                            let text = std::fs::read_to_string(&child_file)
                                .unwrap_or_else(|e| panic!("{}: {e}", child_file.display()));
                            let parsed = syn::parse_file(&text)
                                .unwrap_or_else(|e| panic!("{}: {e}", child_file.display()));
                            self.add(child, &child_file, &child_dir, &parsed.items);
                        }
                    }
                }
                item if is_test_only(item_attrs(item)) => {}
                item => collector.visit_item(item),
            }
        }
        let module = self.modules.entry(path).or_default();
        module.file = file.to_path_buf();
        module.refs.extend(
            collector
                .paths
                .into_iter()
                .map(|p| (p.clone(), p.join("::"))),
        );
    }

    /// The module a path written in module `from` refers to (the longest known prefix), if it
    /// is a module of this crate.
    fn resolve(&self, from: &ModPath, written: &[String]) -> Option<ModPath> {
        let (mut base, rest): (ModPath, &[String]) = match written.first().map(String::as_str) {
            Some("crate") => (Vec::new(), &written[1..]),
            Some("self") => (from.clone(), &written[1..]),
            Some("super") => {
                let mut base = from.clone();
                let mut rest = written;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                (base, rest)
            }
            Some(first) if self.modules.get(from)?.children.contains(first) => {
                (from.clone(), written)
            }
            _ => return None,
        };
        let mut best = base.clone();
        for segment in rest {
            base.push(segment.clone());
            if self.modules.contains_key(&base) {
                best = base.clone();
            } else {
                break;
            }
        }
        Some(best)
    }

    /// Sibling edges: for each parent, `child -> child` with one example reference each.
    fn edges(&self) -> BTreeMap<ModPath, BTreeMap<(String, String), String>> {
        let mut edges: BTreeMap<ModPath, BTreeMap<(String, String), String>> = BTreeMap::new();
        for (from, module) in &self.modules {
            for (written, shown) in &module.refs {
                let Some(to) = self.resolve(from, written) else {
                    continue;
                };
                let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                if common == from.len() || common == to.len() {
                    continue; // an ancestor or a descendant
                }
                edges
                    .entry(from[..common].to_vec())
                    .or_default()
                    .entry((from[common].clone(), to[common].clone()))
                    .or_insert_with(|| {
                        format!(
                            "{} ({}) uses {shown}",
                            from.join("::"),
                            module.file.display()
                        )
                    });
            }
        }
        edges
    }
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Every path in a module's own items (not its child modules').
#[derive(Default)]
struct Refs {
    paths: Vec<Vec<String>>,
}

impl Refs {
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.push_use(prefix, &n.ident),
            syn::UseTree::Rename(r) => self.push_use(prefix, &r.ident),
            syn::UseTree::Glob(_) => self.paths.push(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn push_use(&mut self, prefix: &[String], ident: &syn::Ident) {
        let mut p = prefix.to_vec();
        if ident != "self" {
            p.push(ident.to_string());
        }
        self.paths.push(p);
    }
}

impl<'ast> Visit<'ast> for Refs {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {
        // Nested modules are read as modules of their own.
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.paths
            .push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }
}

/// Strongly connected groups of two or more nodes (Tarjan's algorithm).
fn circles(nodes: &BTreeSet<String>, edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeSet<(String, String)>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on_stack: BTreeSet<String>,
        found: Vec<Vec<String>>,
    }
    fn connect(s: &mut State, v: &str) {
        let i = s.index.len();
        s.index.insert(v.to_string(), i);
        s.low.insert(v.to_string(), i);
        s.stack.push(v.to_string());
        s.on_stack.insert(v.to_string());
        let next: Vec<String> = s
            .edges
            .iter()
            .filter(|(a, _)| a == v)
            .map(|(_, b)| b.clone())
            .collect();
        for w in next {
            if !s.index.contains_key(&w) {
                connect(s, &w);
                let low = s.low[v].min(s.low[&w]);
                s.low.insert(v.to_string(), low);
            } else if s.on_stack.contains(&w) {
                let low = s.low[v].min(s.index[&w]);
                s.low.insert(v.to_string(), low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(&w);
                let done = w == v;
                group.push(w);
                if done {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.found.push(group);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for n in nodes {
        if !s.index.contains_key(n) {
            connect(&mut s, n);
        }
    }
    s.found
}

/// The circles of one crate, each described with the references that close it.
fn crate_circles(root: &Path) -> Vec<String> {
    let krate = Crate::read(root);
    let mut found = Vec::new();
    for (parent, edges) in krate.edges() {
        let nodes: BTreeSet<String> = edges
            .keys()
            .flat_map(|(a, b)| [a.clone(), b.clone()])
            .collect();
        let pairs: BTreeSet<(String, String)> = edges.keys().cloned().collect();
        for group in circles(&nodes, &pairs) {
            let within: Vec<&String> = edges
                .iter()
                .filter(|((a, b), _)| group.contains(a) && group.contains(b))
                .map(|(_, example)| example)
                .collect();
            found.push(format!(
                "{} in {}::{{{}}}:\n    {}",
                root.display(),
                if parent.is_empty() {
                    "crate".to_string()
                } else {
                    parent.join("::")
                },
                group.join(", "),
                within
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n    ")
            ));
        }
    }
    found
}

/// The source roots of every library and binary target in the workspace.
fn workspace_roots() -> Vec<PathBuf> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let mut roots = Vec::new();
    for package in meta["packages"].as_array().expect("packages") {
        for target in package["targets"].as_array().expect("targets") {
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .expect("kinds")
                .iter()
                .filter_map(|k| k.as_str())
                .collect();
            if kinds.iter().any(|k| ["lib", "bin", "rlib"].contains(k)) {
                roots.push(PathBuf::from(
                    target["src_path"].as_str().expect("src_path"),
                ));
            }
        }
    }
    roots.sort();
    roots
}

#[test]
fn no_module_of_any_crate_is_part_of_an_import_circle() {
    let roots = workspace_roots();
    assert!(
        roots.iter().any(|r| r.ends_with("node/src/lib.rs")),
        "the node library is among {roots:?}"
    );
    let found: Vec<String> = roots.iter().flat_map(|r| crate_circles(r)).collect();
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

/// The check itself finds a circle and ignores what is not one.
#[test]
fn a_circle_between_siblings_is_found_and_a_parent_child_use_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod a; pub mod b; pub mod c; pub fn top() {}\n\
         #[cfg(test)] mod tests { use crate::c::Z; }",
    );
    write(
        "a.rs",
        "use crate::b::Y; pub struct X; pub fn f() { crate::top(); }",
    );
    write("b/mod.rs", "pub mod inner; pub struct Y;");
    write(
        "b/inner.rs",
        "pub fn g() -> super::super::a::X { super::Y; crate::a::X }",
    );
    write(
        "c.rs",
        "pub struct Z; #[cfg(test)] fn t() { crate::a::f() }",
    );
    let found = crate_circles(&dir.path().join("lib.rs"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("crate::{a, b}"), "{}", found[0]);
    assert!(found[0].contains("b::inner"), "{}", found[0]);

    // Breaking the back edge leaves no circle; c's test-only use of a counts for nothing.
    write("b/inner.rs", "pub fn g() { super::Y; }");
    assert_eq!(
        crate_circles(&dir.path().join("lib.rs")),
        Vec::<String>::new()
    );
}
