//! The floor plan of `src/` (docs/ARCHITECTURE.md), checked on every test run: the top
//! level of `src/` stays small, no two files import each other (directly or round a longer
//! loop), and no function outside tests is longer than a screen.
//!
//! The sources are parsed with `syn`; a file's imports are its `use` items and every path
//! in its code (macro arguments included) that starts with `crate`, `super`, `self`, a
//! child module or a name it imported, each followed through re-exports to the file that
//! defines the item. Test code (`#[cfg(test)]` modules and files, `#[test]` functions)
//! is left out of both the imports and the function lengths.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::visit::Visit;

/// Entries (files and folders) directly in `src/`, `lib.rs` and `main.rs` included.
const MAX_TOP_LEVEL: usize = 12;
/// Lines from a function's `fn` to its closing brace.
const MAX_FN_LINES: usize = 80;
/// Functions still longer, by `module::function`, each with why it waits.
const LONG_FUNCTIONS_WAITING: &[(&str, &str)] = &[];
/// Files that still import each other, as pairs (by path under src/), each with why: a
/// loop is let through while it holds one of these pairs (none now: keep it that way).
const CYCLES_WAITING: &[(&str, &str)] = &[];

#[test]
fn top_level_of_src_stays_small() {
    let entries: Vec<String> = std::fs::read_dir(src_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        entries.len() <= MAX_TOP_LEVEL,
        "src/ has {} entries at the top level, at most {MAX_TOP_LEVEL} allowed: {entries:?}",
        entries.len()
    );
}

#[test]
fn no_function_outside_tests_is_longer_than_80_lines() {
    let plan = FloorPlan::read();
    let mut over: Vec<String> = Vec::new();
    let mut waiting_seen = BTreeSet::new();
    for f in &plan.functions {
        if f.lines <= MAX_FN_LINES {
            continue;
        }
        if LONG_FUNCTIONS_WAITING.iter().any(|(n, _)| *n == f.name) {
            waiting_seen.insert(f.name.clone());
            continue;
        }
        over.push(format!("{} ({} lines, {})", f.name, f.lines, f.at));
    }
    assert!(
        over.is_empty(),
        "functions over {MAX_FN_LINES} lines outside tests (split them where their parts have \
         names of their own):\n  {}",
        over.join("\n  ")
    );
    let stale: Vec<&str> = LONG_FUNCTIONS_WAITING
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !waiting_seen.contains(*n))
        .collect();
    assert!(
        stale.is_empty(),
        "LONG_FUNCTIONS_WAITING names functions that are no longer over {MAX_FN_LINES} lines \
         (or no longer exist): remove them: {stale:?}"
    );
}

/// The top-level folders of src/ from the command line down (docs/ARCHITECTURE.md):
/// a file may use its own folder and the folders of a lower layer, never a higher one;
/// two folders on one layer do not use each other. `ksqldb` stands above `release` and
/// `msk`: the exporter jar is verified like a release, the properties need the brokers
/// and this host's address.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["service"],
    &["ksqldb"],
    &["release", "msk"],
    &["config"],
    &["host"],
    &["exit", "progress"],
];

#[test]
fn every_import_points_down_the_layers() {
    let plan = FloorPlan::read();
    let layer = |rel: &str| {
        let top = rel.split('/').next().unwrap_or(rel).trim_end_matches(".rs");
        LAYERS
            .iter()
            .position(|l| l.contains(&top))
            .map(|i| (i, top.to_string()))
    };
    let mut up = Vec::new();
    for ((a, b), via) in &plan.edges {
        let (a, b) = (&plan.files[*a].rel, &plan.files[*b].rel);
        if let (Some((la, ta)), Some((lb, tb))) = (layer(a), layer(b)) {
            if ta != tb && la >= lb {
                up.push(format!("{a} -> {b} (e.g. {via}): {ta} may not use {tb}"));
            }
        }
    }
    assert!(
        up.is_empty(),
        "imports against the layers (docs/ARCHITECTURE.md):\n  {}",
        up.join("\n  ")
    );
}

#[test]
fn no_import_cycle_between_files() {
    let plan = FloorPlan::read();
    let unexpected: Vec<String> = plan
        .cycles()
        .iter()
        .filter(|cycle| {
            !CYCLES_WAITING.iter().any(|(pair, _)| {
                pair.split(" <-> ")
                    .all(|file| cycle.iter().any(|c| c == file))
            })
        })
        .map(|cycle| plan.explain(cycle))
        .collect();
    assert!(
        unexpected.is_empty(),
        "files that import each other (make the dependency point one way, \
         docs/ARCHITECTURE.md):\n{}",
        unexpected.join("\n")
    );
}

/// The figures of the note, printed: `cargo test --test it floorplan::figures --
/// --nocapture --ignored`.
#[test]
#[ignore = "prints figures; run by hand"]
fn figures() {
    let plan = FloorPlan::read();
    let top = std::fs::read_dir(src_dir()).unwrap().count();
    println!("entries at the top level of src/: {top}");
    let cycles = plan.cycles();
    println!("import cycles between files: {}", cycles.len());
    for c in &cycles {
        println!("{}", plan.explain(c));
    }
    let mut long: Vec<&Function> = plan
        .functions
        .iter()
        .filter(|f| f.lines > MAX_FN_LINES)
        .collect();
    long.sort_by_key(|f| std::cmp::Reverse(f.lines));
    println!(
        "functions over {MAX_FN_LINES} lines outside tests: {}",
        long.len()
    );
    for f in long {
        println!("  {:4} {} ({})", f.lines, f.name, f.at);
    }
    let mut sizes: Vec<(usize, String)> = plan
        .files
        .iter()
        .map(|f| (f.lines, f.rel.clone()))
        .collect();
    sizes.sort();
    sizes.reverse();
    println!("largest files (all code, tests included):");
    for (lines, rel) in sizes.iter().take(5) {
        println!("  {lines:5} src/{rel}");
    }
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

struct Function {
    name: String,
    at: String,
    lines: usize,
}

struct SourceFile {
    /// Path under src/.
    rel: String,
    lines: usize,
    test: bool,
}

/// A module: the file it lives in and the names in its scope.
#[derive(Default)]
struct Module {
    file: usize,
    /// Names brought in by `use` (with `as` applied) → absolute path.
    uses: BTreeMap<String, Vec<String>>,
    /// Items defined here (child modules included).
    items: BTreeSet<String>,
}

struct FloorPlan {
    files: Vec<SourceFile>,
    modules: BTreeMap<Vec<String>, Module>,
    functions: Vec<Function>,
    /// (from file, to file) → one path that makes the edge, for the message.
    edges: BTreeMap<(usize, usize), String>,
}

impl FloorPlan {
    fn read() -> FloorPlan {
        let mut plan = FloorPlan {
            files: Vec::new(),
            modules: BTreeMap::new(),
            functions: Vec::new(),
            edges: BTreeMap::new(),
        };
        // Pass 1: the module tree, with each module's scope.
        let mut parsed = Vec::new();
        plan.load_file(
            Path::new("lib.rs"),
            vec!["crate".into()],
            false,
            &mut parsed,
        );
        // The binary is its own crate: only its function lengths count.
        let main = parse(&src_dir().join("main.rs"));
        let main_file = plan.add_file("main.rs", &main, false);
        let mut lengths = Lengths {
            file: "main.rs".into(),
            module: vec!["main".into()],
            out: &mut plan.functions,
        };
        lengths.visit_file(&main.0);
        let _ = main_file;
        // Pass 2: what each file refers to.
        for (file, module, items) in &parsed {
            if plan.files[*file].test {
                continue;
            }
            let mut refs = Vec::new();
            collect_refs(items, &mut refs);
            for path in refs {
                if let Some(target) = plan.resolve_in(module, &path) {
                    if target != *file && !plan.files[target].test {
                        plan.edges
                            .entry((*file, target))
                            .or_insert_with(|| path.join("::"));
                    }
                }
            }
        }
        plan
    }

    fn add_file(&mut self, rel: &str, (_, text): &(syn::File, String), test: bool) -> usize {
        self.files.push(SourceFile {
            rel: rel.into(),
            lines: text.lines().count(),
            test,
        });
        self.files.len() - 1
    }

    /// Reads `rel` (under src/) as module `path`, and the modules it declares.
    fn load_file(
        &mut self,
        rel: &Path,
        path: Vec<String>,
        test: bool,
        parsed: &mut Vec<(usize, Vec<String>, Vec<syn::Item>)>,
    ) {
        let file_and_text = parse(&src_dir().join(rel));
        let file = self.add_file(&rel.to_string_lossy(), &file_and_text, test);
        if !test {
            let mut lengths = Lengths {
                file: rel.to_string_lossy().into_owned(),
                module: path[1..].to_vec(),
                out: &mut self.functions,
            };
            for item in &file_and_text.0.items {
                lengths.visit_item(item);
            }
        }
        // Where this file's `mod x;` children live.
        let dir = match rel.file_name().and_then(|n| n.to_str()) {
            Some("lib.rs") | Some("mod.rs") => rel.parent().unwrap().to_path_buf(),
            _ => rel.with_extension(""),
        };
        self.load_items(file, &dir, path, &file_and_text.0.items, test, parsed);
    }

    fn load_items(
        &mut self,
        file: usize,
        dir: &Path,
        path: Vec<String>,
        items: &[syn::Item],
        test: bool,
        parsed: &mut Vec<(usize, Vec<String>, Vec<syn::Item>)>,
    ) {
        let mut module = Module {
            file,
            ..Module::default()
        };
        for item in items {
            if is_test(item_attrs(item)) {
                continue;
            }
            match item {
                syn::Item::Use(u) => add_use(&u.tree, Vec::new(), &mut module.uses),
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    module.items.insert(name.clone());
                    let mut child = path.clone();
                    child.push(name.clone());
                    match &m.content {
                        Some((_, inner)) => {
                            self.load_items(file, &dir.join(&name), child, inner, test, parsed)
                        }
                        None => {
                            let flat = dir.join(format!("{name}.rs"));
                            let rel = if src_dir().join(&flat).exists() {
                                flat
                            } else {
                                dir.join(&name).join("mod.rs")
                            };
                            self.load_file(&rel, child, test, parsed);
                        }
                    }
                }
                other => {
                    if let Some(name) = item_name(other) {
                        module.items.insert(name);
                    }
                }
            }
        }
        parsed.push((file, path.clone(), items.to_vec()));
        self.modules.insert(path, module);
    }

    /// The file that defines what `path` (as written in module `module`) names, if it is
    /// in this crate.
    fn resolve_in(&self, module: &[String], path: &[String]) -> Option<usize> {
        let absolute = self.absolute(module, path, 0)?;
        self.resolve(&absolute, 0)
    }

    /// `path` as written in `module`, made absolute (`crate::…`); `None` for other crates.
    fn absolute(&self, module: &[String], path: &[String], depth: usize) -> Option<Vec<String>> {
        let first = path.first()?;
        if depth > 16 {
            return None;
        }
        let mut base: Vec<String> = match first.as_str() {
            "crate" => return Some(path.to_vec()),
            "self" => module.to_vec(),
            "super" => {
                let mut base = module.to_vec();
                let mut rest = path;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                return Some(base);
            }
            _ => {
                let scope = self.modules.get(module)?;
                // A child module or an item here wins over an import of the same name
                // (`pub use load::load;`: the first `load` is the module).
                if scope.items.contains(first) {
                    let mut base = module.to_vec();
                    base.push(first.clone());
                    base.extend(path.iter().skip(1).cloned());
                    return Some(base);
                }
                if let Some(target) = scope.uses.get(first) {
                    // A `use` of the name itself (`use x;` of a crate) ends here.
                    if target.len() == 1 && target[0] == *first {
                        return None;
                    }
                    let mut out = self.absolute(module, target, depth + 1)?;
                    out.extend(path[1..].iter().cloned());
                    return Some(out);
                }
                return None;
            }
        };
        base.extend(path.iter().skip(1).cloned());
        Some(base)
    }

    /// The file that defines the item at the absolute `path`, following re-exports.
    fn resolve(&self, path: &[String], depth: usize) -> Option<usize> {
        if depth > 16 {
            return None;
        }
        // The longest prefix that is a module.
        let mut k = path.len();
        while k > 0 && !self.modules.contains_key(&path[..k]) {
            k -= 1;
        }
        if k == 0 {
            return None;
        }
        let module = &self.modules[&path[..k]];
        let Some(name) = path.get(k) else {
            return Some(module.file);
        };
        if let Some(target) = module.uses.get(name) {
            let target = self.absolute(&path[..k], target, 0)?;
            let mut next = target;
            next.extend(path[k + 1..].iter().cloned());
            if next != path {
                return self.resolve(&next, depth + 1).or(Some(module.file));
            }
        }
        Some(module.file)
    }

    /// Sets of files that import each other (strongly connected, more than one file).
    fn cycles(&self) -> Vec<Vec<String>> {
        let n = self.files.len();
        let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b) in self.edges.keys() {
            next[a].push(b);
        }
        let mut out: Vec<Vec<String>> = tarjan(&next)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut names: Vec<String> = c.iter().map(|&i| self.files[i].rel.clone()).collect();
                names.sort();
                names
            })
            .collect();
        out.sort();
        out
    }

    /// The edges inside one cycle, each with a path that makes it.
    fn explain(&self, cycle: &[String]) -> String {
        let mut lines = vec![format!("  {}", cycle.join(" <-> "))];
        for ((a, b), via) in &self.edges {
            let (a, b) = (&self.files[*a].rel, &self.files[*b].rel);
            if cycle.contains(a) && cycle.contains(b) {
                lines.push(format!("    {a} -> {b} (e.g. {via})"));
            }
        }
        lines.join("\n")
    }
}

fn parse(path: &Path) -> (syn::File, String) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (file, text)
}

fn add_use(tree: &syn::UseTree, prefix: Vec<String>, out: &mut BTreeMap<String, Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            let mut prefix = prefix;
            prefix.push(p.ident.to_string());
            add_use(&p.tree, prefix, out);
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            let mut full = prefix.clone();
            if name == "self" {
                let Some(last) = prefix.last() else { return };
                out.insert(last.clone(), full);
            } else {
                full.push(name.clone());
                out.insert(name, full);
            }
        }
        syn::UseTree::Rename(r) => {
            let mut full = prefix.clone();
            if r.ident != "self" {
                full.push(r.ident.to_string());
            }
            out.insert(r.rename.to_string(), full);
        }
        // A glob names the module it reads from; `*` cannot clash with an identifier.
        syn::UseTree::Glob(_) => {
            let key = format!("*{}", out.len());
            out.insert(key, prefix);
        }
        syn::UseTree::Group(g) => {
            for t in &g.items {
                add_use(t, prefix.clone(), out);
            }
        }
    }
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

fn item_name(item: &syn::Item) -> Option<String> {
    let ident = match item {
        syn::Item::Const(i) => &i.ident,
        syn::Item::Enum(i) => &i.ident,
        syn::Item::Fn(i) => &i.sig.ident,
        syn::Item::Static(i) => &i.ident,
        syn::Item::Struct(i) => &i.ident,
        syn::Item::Trait(i) => &i.ident,
        syn::Item::Type(i) => &i.ident,
        syn::Item::Union(i) => &i.ident,
        syn::Item::Macro(i) => i.ident.as_ref()?,
        _ => return None,
    };
    Some(ident.to_string())
}

/// `#[test]`, `#[tokio::test]`, `#[cfg(test)]` (not `cfg(not(test))`).
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let path = a.path();
        if path.segments.last().is_some_and(|s| s.ident == "test") {
            return true;
        }
        if path.is_ident("cfg") {
            if let syn::Meta::List(list) = &a.meta {
                let text = list.tokens.to_string();
                return text == "test" || text.starts_with("all (test");
            }
        }
        false
    })
}

/// Every path in `items` (outside test code) that may name something in this crate:
/// more than one segment, or in a `use`.
fn collect_refs(items: &[syn::Item], out: &mut Vec<Vec<String>>) {
    struct Refs<'a> {
        out: &'a mut Vec<Vec<String>>,
    }
    impl<'ast> Visit<'ast> for Refs<'_> {
        fn visit_item(&mut self, item: &'ast syn::Item) {
            if is_test(item_attrs(item)) {
                return;
            }
            // Inline modules are their own scope: their paths are resolved there.
            if let syn::Item::Mod(_) = item {
                return;
            }
            if let syn::Item::Use(u) = item {
                let mut uses = BTreeMap::new();
                add_use(&u.tree, Vec::new(), &mut uses);
                self.out.extend(uses.into_values());
                return;
            }
            syn::visit::visit_item(self, item);
        }
        fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
            if !is_test(&f.attrs) {
                syn::visit::visit_impl_item_fn(self, f);
            }
        }
        fn visit_path(&mut self, path: &'ast syn::Path) {
            if path.leading_colon.is_none() && path.segments.len() > 1 {
                self.out
                    .push(path.segments.iter().map(|s| s.ident.to_string()).collect());
            }
            syn::visit::visit_path(self, path);
        }
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            macro_paths(mac.tokens.clone(), self.out);
            syn::visit::visit_macro(self, mac);
        }
    }
    let mut refs = Refs { out };
    for item in items {
        refs.visit_item(item);
    }
}

/// Paths `a::b::c` in a macro's tokens (format arguments, `matches!`, …).
fn macro_paths(tokens: TokenStream, out: &mut Vec<Vec<String>>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        if let TokenTree::Group(g) = &tokens[i] {
            macro_paths(g.stream(), out);
            i += 1;
            continue;
        }
        let preceded_by_colons =
            i >= 1 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == ':');
        let mut path = Vec::new();
        let mut j = i;
        while let Some(TokenTree::Ident(id)) = tokens.get(j) {
            path.push(id.to_string());
            let colons = matches!(tokens.get(j + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':')
                && matches!(tokens.get(j + 2), Some(TokenTree::Punct(p)) if p.as_char() == ':');
            if !colons {
                break;
            }
            j += 3;
        }
        if path.len() > 1 && !preceded_by_colons {
            out.push(path);
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
}

/// Function lengths, outside test code.
struct Lengths<'a> {
    file: String,
    module: Vec<String>,
    out: &'a mut Vec<Function>,
}

impl Lengths<'_> {
    fn record(&mut self, name: &syn::Ident, sig: &syn::Signature, block: &syn::Block) {
        let start = sig.fn_token.span().start().line;
        let end = block.brace_token.span.close().end().line;
        let mut full = self.module.clone();
        full.push(name.to_string());
        self.out.push(Function {
            name: full.join("::"),
            at: format!("src/{}:{start}", self.file),
            lines: end + 1 - start,
        });
    }
}

impl<'ast> Visit<'ast> for Lengths<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_test(item_attrs(item)) {
            return;
        }
        match item {
            // Out-of-line modules are read from their own file.
            syn::Item::Mod(m) if m.content.is_none() => {}
            syn::Item::Mod(m) => {
                self.module.push(m.ident.to_string());
                syn::visit::visit_item(self, item);
                self.module.pop();
            }
            _ => syn::visit::visit_item(self, item),
        }
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.record(&f.sig.ident, &f.sig, &f.block);
        syn::visit::visit_item_fn(self, f);
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if is_test(&f.attrs) {
            return;
        }
        self.record(&f.sig.ident, &f.sig, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }
    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.record(&f.sig.ident, &f.sig, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

/// Tarjan's strongly connected components.
fn tarjan(next: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        next: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.counter);
        s.low[v] = s.counter;
        s.counter += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for i in 0..s.next[v].len() {
            let w = s.next[v][i];
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let n = next.len();
    let mut s = State {
        next,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        counter: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}
