//! Static dependency analysis of notebook cells: which module-level names a cell defines
//! (writes) and which free names it reads, computed in Rust without a Python process.
//!
//! Python is parsed with tree-sitter (`tree-sitter` + `tree-sitter-python`), a maintained,
//! error-tolerant C parser with official Rust bindings. On the tree we run a two-pass
//! scope analysis modelled on CPython's symtable: pass one records every binding and every
//! name load together with the scope it occurs in (module, function, lambda, class,
//! comprehension, except-handler); pass two resolves each load with Python's LEGB rules
//! (class bodies are skipped by nested functions, `global`/`nonlocal` honoured, walrus in
//! a comprehension binds in the enclosing scope). A load that resolves to module level and
//! is not defined at the top level of the cell is a read.
//!
//! Scoping decisions worth knowing:
//! - Module and class bodies run top to bottom, so there a load that comes before the
//!   name's first binding is a read: `x = x`, `(x := x)`, `print(x); x = 1`, `x += 1` and
//!   `class F: x = x` all read `x` (a class-body load before the class binds the name looks
//!   it up in the module). Function bodies run later, when called: a load there is a read
//!   only when the cell does not define the name anywhere (`def f(): return y` then `y = 1`
//!   does not read `y`). Bindings are ordered as Python evaluates them (right-hand side
//!   before targets, decorators and defaults before the `def`, a class body before its name).
//! - `except E as e` binds `e` only inside the handler (as Python 3 does, it is deleted
//!   afterwards), so `e` is never a write and two cells may both use `except ... as e`.
//! - `del x` at module level is a read of `x`, never a definition; inside a function it
//!   makes `x` local, as in Python, unless `x` is declared `global` there (then it reads it).
//! - A bare annotation `x: int` at module level defines nothing (Python binds nothing).
//! - Builtins are never reads (a cell that shadows `id` does not make `print(id)` in
//!   another cell depend on it); a cell that assigns a builtin name writes it.
//! - Names starting with `_` are private to their cell and never appear in writes/reads.

use std::collections::{BTreeSet, HashMap, HashSet};

use tree_sitter::{Node, Parser};

use crate::notebook::CellType;

mod sql;
mod sql_tables;

pub use sql::{analyze_sql, sql_placeholders, sql_to_positional};

/// Names a cell defines and reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CellNames {
    /// Module-level names the cell defines, sorted and deduplicated.
    pub writes: Vec<String>,
    /// Free names the cell reads from other cells, sorted and deduplicated.
    pub reads: Vec<String>,
    /// Parse error with its line number; writes and reads are empty when set.
    pub syntax_error: Option<String>,
}

impl CellNames {
    fn error(msg: String) -> CellNames {
        CellNames {
            syntax_error: Some(msg),
            ..CellNames::default()
        }
    }
}

/// `dir(builtins)` of CPython 3.11 without the underscore names (those are ignored anyway).
#[rustfmt::skip]
const BUILTINS: &[&str] = &[
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException", "BaseExceptionGroup",
    "BlockingIOError", "BrokenPipeError", "BufferError", "BytesWarning", "ChildProcessError",
    "ConnectionAbortedError", "ConnectionError", "ConnectionRefusedError", "ConnectionResetError",
    "DeprecationWarning", "EOFError", "Ellipsis", "EncodingWarning", "EnvironmentError",
    "Exception", "ExceptionGroup", "False", "FileExistsError", "FileNotFoundError",
    "FloatingPointError", "FutureWarning", "GeneratorExit", "IOError", "ImportError",
    "ImportWarning", "IndentationError", "IndexError", "InterruptedError", "IsADirectoryError",
    "KeyError", "KeyboardInterrupt", "LookupError", "MemoryError", "ModuleNotFoundError",
    "NameError", "None", "NotADirectoryError", "NotImplemented", "NotImplementedError", "OSError",
    "OverflowError", "PendingDeprecationWarning", "PermissionError", "ProcessLookupError",
    "RecursionError", "ReferenceError", "ResourceWarning", "RuntimeError", "RuntimeWarning",
    "StopAsyncIteration", "StopIteration", "SyntaxError", "SyntaxWarning", "SystemError",
    "SystemExit", "TabError", "TimeoutError", "True", "TypeError", "UnboundLocalError",
    "UnicodeDecodeError", "UnicodeEncodeError", "UnicodeError", "UnicodeTranslateError",
    "UnicodeWarning", "UserWarning", "ValueError", "Warning", "ZeroDivisionError", "abs", "aiter",
    "all", "anext", "any", "ascii", "bin", "bool", "breakpoint", "bytearray", "bytes", "callable",
    "chr", "classmethod", "compile", "complex", "copyright", "credits", "delattr", "dict", "dir",
    "divmod", "enumerate", "eval", "exec", "exit", "filter", "float", "format", "frozenset",
    "getattr", "globals", "hasattr", "hash", "help", "hex", "id", "input", "int", "isinstance",
    "issubclass", "iter", "len", "license", "list", "locals", "map", "max", "memoryview", "min",
    "next", "object", "oct", "open", "ord", "pow", "print", "property", "quit", "range", "repr",
    "reversed", "round", "set", "setattr", "slice", "sorted", "staticmethod", "str", "sum", "super",
    "tuple", "type", "vars", "zip",
];

/// Python keywords: never valid names (used by the SQL placeholder scanner).
#[rustfmt::skip]
pub(crate) const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
    "continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if",
    "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try",
    "while", "with", "yield",
];

/// Deeper trees are rejected instead of risking a stack overflow on hostile input
/// (CPython itself refuses far shallower nesting).
const MAX_DEPTH: usize = 600;

fn is_builtin(name: &str) -> bool {
    BUILTINS.contains(&name)
}

/// Whether `name` is a Python keyword.
pub fn is_keyword(name: &str) -> bool {
    KEYWORDS.contains(&name)
}

fn is_private(name: &str) -> bool {
    name.starts_with('_')
}

/// Compute the names a Python cell defines and reads.
pub fn analyze_python(code: &str) -> CellNames {
    let mut parser = Parser::new();
    if let Err(e) = parser.set_language(&tree_sitter_python::LANGUAGE.into()) {
        return CellNames::error(format!("python grammar unavailable: {e}"));
    }
    let Some(tree) = parser.parse(code, None) else {
        return CellNames::error("python parser failed".to_string());
    };
    let root = tree.root_node();
    if let Some(msg) = syntax_error(root, code) {
        return CellNames::error(msg);
    }
    if let Some(msg) = unexpected_indent(root, code) {
        return CellNames::error(msg);
    }
    let mut a = Analyzer::new(code);
    a.visit_children(root, MODULE, 0);
    if let Some(msg) = a.error {
        return CellNames::error(msg);
    }
    a.finish()
}

/// Analyses a cell's code by its type; a SQL cell also defines its result name, and markdown
/// defines and reads nothing (it is never in the graph).
pub fn analyze_cell(cell_type: CellType, code: &str, result_name: Option<&str>) -> CellNames {
    match cell_type {
        CellType::Python => analyze_python(code),
        CellType::Markdown => CellNames::default(),
        CellType::Sql => {
            let mut names = analyze_sql(code);
            if names.syntax_error.is_none() {
                if let Some(own) = result_name {
                    // A query over its own previous result does not depend on itself.
                    names.reads.retain(|r| r != own);
                    names.writes = vec![own.to_string()];
                }
            }
            names
        }
    }
}

/// 1-based line and character column of a byte offset.
pub(crate) fn line_col(code: &str, byte: usize) -> (usize, usize) {
    let prefix = code.get(..byte).unwrap_or(code);
    let line = prefix.matches('\n').count() + 1;
    let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// tree-sitter accepts an indented first-level statement; CPython raises IndentationError.
fn unexpected_indent(root: Node, code: &str) -> Option<String> {
    let mut cursor = root.walk();
    let stmt = root.named_children(&mut cursor).find(|c| {
        let line_start = code
            .get(..c.start_byte())
            .map_or(0, |p| p.rfind('\n').map_or(0, |i| i + 1));
        c.kind() != "comment"
            && c.start_position().column > 0
            && code
                .get(line_start..c.start_byte())
                .is_some_and(|pre| pre.chars().all(|ch| ch == ' ' || ch == '\t'))
    })?;
    let (line, _) = line_col(code, stmt.start_byte());
    Some(format!("syntax error at line {line}: unexpected indent"))
}

/// First ERROR or MISSING node, described with its position.
fn syntax_error(root: Node, code: &str) -> Option<String> {
    if !root.has_error() {
        return None;
    }
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if n.is_error() || n.is_missing() {
            let (line, col) = line_col(code, n.start_byte());
            if n.is_missing() {
                return Some(format!(
                    "syntax error at line {line}, column {col}: missing {}",
                    n.kind()
                ));
            }
            let text: String = code
                .get(n.byte_range())
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(30)
                .collect();
            return Some(format!(
                "syntax error at line {line}, column {col}: invalid syntax near {text:?}"
            ));
        }
        let mut cursor = n.walk();
        let kids: Vec<Node> = n.children(&mut cursor).filter(|k| k.has_error()).collect();
        stack.extend(kids.into_iter().rev());
    }
    let (line, col) = line_col(code, root.start_byte());
    Some(format!("syntax error at line {line}, column {col}"))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Module,
    Function,
    Class,
    Comprehension,
    /// An `except ... as e` body: binds only `e`, everything else goes to the parent.
    Handler,
}

struct Scope {
    kind: Kind,
    parent: usize,
    /// Names bound in this scope, each with the evaluation step of its first binding.
    bound: HashMap<String, usize>,
    globals: HashSet<String>,
    nonlocals: HashSet<String>,
}

const MODULE: usize = 0;

struct Analyzer<'a> {
    code: &'a str,
    scopes: Vec<Scope>,
    /// Every name load, with the scope it occurs in and its evaluation step; resolved once
    /// all bindings are known.
    refs: Vec<(usize, String, usize)>,
    /// Evaluation steps so far: loads and bindings are numbered in the order Python runs them.
    step: usize,
    error: Option<String>,
}

impl<'a> Analyzer<'a> {
    fn new(code: &'a str) -> Self {
        let mut a = Analyzer {
            code,
            scopes: Vec::new(),
            refs: Vec::new(),
            step: 0,
            error: None,
        };
        a.new_scope(Kind::Module, MODULE);
        a
    }

    fn new_scope(&mut self, kind: Kind, parent: usize) -> usize {
        self.scopes.push(Scope {
            kind,
            parent,
            bound: HashMap::new(),
            globals: HashSet::new(),
            nonlocals: HashSet::new(),
        });
        self.scopes.len() - 1
    }

    fn text(&self, n: Node) -> &'a str {
        self.code.get(n.byte_range()).unwrap_or("")
    }

    fn fail(&mut self, n: Node, what: &str) {
        if self.error.is_none() {
            let (line, col) = line_col(self.code, n.start_byte());
            self.error = Some(format!("syntax error at line {line}, column {col}: {what}"));
        }
    }

    /// Scope that owns bindings made in `s` (handlers forward all but their own name).
    fn binding_scope(&self, mut s: usize, name: &str) -> usize {
        while self.scopes[s].kind == Kind::Handler && !self.scopes[s].bound.contains_key(name) {
            s = self.scopes[s].parent;
        }
        s
    }

    fn bind_name(&mut self, s: usize, name: &str) {
        let t = self.binding_scope(s, name);
        self.step += 1;
        let step = self.step;
        self.scopes[t].bound.entry(name.to_string()).or_insert(step);
    }

    fn bind(&mut self, s: usize, ident: Node) {
        let name = self.text(ident);
        self.bind_name(s, name);
    }

    fn reference(&mut self, s: usize, ident: Node) {
        let name = self.text(ident).to_string();
        self.step += 1;
        self.refs.push((s, name, self.step));
    }

    fn named_children<'t>(n: Node<'t>) -> Vec<Node<'t>> {
        let mut c = n.walk();
        n.named_children(&mut c).collect()
    }

    fn visit_children(&mut self, n: Node, s: usize, d: usize) {
        for c in Self::named_children(n) {
            self.visit(c, s, d);
        }
    }

    fn visit_field(&mut self, n: Node, field: &str, s: usize, d: usize) {
        if let Some(c) = n.child_by_field_name(field) {
            self.visit(c, s, d);
        }
    }

    /// Visit a statement or expression node in scope `s`.
    fn visit(&mut self, n: Node, s: usize, d: usize) {
        if d > MAX_DEPTH {
            self.fail(n, "code is nested too deeply");
            return;
        }
        if self.error.is_some() {
            return;
        }
        // Arms delegate to small non-inlined methods to keep this recursive frame small.
        let d = d + 1;
        match n.kind() {
            "identifier" => self.reference(s, n),
            "comment"
            | "string_start"
            | "string_end"
            | "string_content"
            | "escape_sequence"
            | "type_conversion"
            | "future_import_statement"
            | "pass_statement"
            | "break_statement"
            | "continue_statement"
            | "wildcard_import" => {}
            "attribute" => self.visit_field(n, "object", s, d),
            "keyword_argument" => self.visit_field(n, "value", s, d),
            "member_type" => self.visit_first(n, s, d),
            "print_statement" | "exec_statement" => {
                self.fail(n, "Python 2 print/exec statement is not valid Python 3")
            }
            "import_statement" | "import_from_statement" => self.import(n, s),
            "global_statement" | "nonlocal_statement" => self.declaration(n, s),
            "decorated_definition" => self.decorated(n, s, d),
            "function_definition" | "lambda" => self.function(n, s, d),
            "class_definition" => self.class(n, s, d),
            "assignment" => self.assignment(n, s, d),
            "augmented_assignment" => self.augmented(n, s, d),
            "named_expression" => self.walrus(n, s, d),
            "for_statement" => self.for_statement(n, s, d),
            "as_pattern" => self.as_pattern(n, s, d),
            "except_clause" => self.except_clause(n, s, d),
            "delete_statement" => self.delete(n, s, d),
            "case_clause" => self.case_clause(n, s, d),
            "list_comprehension"
            | "set_comprehension"
            | "generator_expression"
            | "dictionary_comprehension" => self.comprehension(n, s, d),
            "type_alias_statement" => self.type_alias(n, s, d),
            _ => self.visit_children(n, s, d),
        }
    }

    #[inline(never)]
    fn visit_first(&mut self, n: Node, s: usize, d: usize) {
        if let Some(c) = n.named_child(0) {
            self.visit(c, s, d);
        }
    }

    #[inline(never)]
    fn declaration(&mut self, n: Node, s: usize) {
        let mut t = s;
        while self.scopes[t].kind == Kind::Handler {
            t = self.scopes[t].parent;
        }
        if self.scopes[t].kind == Kind::Module {
            return; // `global x` at module level is a no-op
        }
        let global = n.kind() == "global_statement";
        for c in Self::named_children(n) {
            let name = self.text(c).to_string();
            let sc = &mut self.scopes[t];
            if global {
                sc.globals.insert(name);
            } else {
                sc.nonlocals.insert(name);
            }
        }
    }

    #[inline(never)]
    fn decorated(&mut self, n: Node, s: usize, d: usize) {
        for c in Self::named_children(n) {
            if c.kind() == "decorator" {
                self.visit_children(c, s, d);
            }
        }
        self.visit_field(n, "definition", s, d);
    }

    #[inline(never)]
    fn assignment(&mut self, n: Node, s: usize, d: usize) {
        self.visit_field(n, "right", s, d);
        self.visit_field(n, "type", s, d);
        let Some(left) = n.child_by_field_name("left") else {
            return;
        };
        if n.child_by_field_name("right").is_some() {
            self.target(left, s, d);
        } else if left.kind() != "identifier" {
            self.visit(left, s, d); // `obj.attr: int` evaluates `obj`
        } else if self.scopes[self.binding_scope(s, self.text(left))].kind != Kind::Module {
            self.bind(s, left); // a bare annotation makes a name local in a function
        }
    }

    #[inline(never)]
    fn augmented(&mut self, n: Node, s: usize, d: usize) {
        self.visit_field(n, "right", s, d);
        let Some(left) = n.child_by_field_name("left") else {
            return;
        };
        if left.kind() != "identifier" {
            self.target(left, s, d);
            return;
        }
        // `x += 1` loads `x` before it binds it again.
        self.reference(s, left);
        self.bind(s, left);
    }

    #[inline(never)]
    fn walrus(&mut self, n: Node, s: usize, d: usize) {
        self.visit_field(n, "value", s, d);
        if let Some(name) = n.child_by_field_name("name") {
            // PEP 572: a walrus in a comprehension binds in the enclosing scope.
            let mut t = s;
            while self.scopes[t].kind == Kind::Comprehension {
                t = self.scopes[t].parent;
            }
            self.bind(t, name);
        }
    }

    #[inline(never)]
    fn for_statement(&mut self, n: Node, s: usize, d: usize) {
        self.visit_field(n, "right", s, d);
        if let Some(left) = n.child_by_field_name("left") {
            self.target(left, s, d);
        }
        self.visit_field(n, "body", s, d);
        self.visit_field(n, "alternative", s, d);
    }

    /// `with cm as target` (handlers with `as` are handled by `except_clause`).
    #[inline(never)]
    fn as_pattern(&mut self, n: Node, s: usize, d: usize) {
        for c in Self::named_children(n) {
            if c.kind() == "as_pattern_target" {
                for t in Self::named_children(c) {
                    self.target(t, s, d);
                }
            } else {
                self.visit(c, s, d);
            }
        }
    }

    #[inline(never)]
    fn delete(&mut self, n: Node, s: usize, d: usize) {
        let owner = self.binding_scope(s, "");
        for c in Self::named_children(n) {
            if self.scopes[owner].kind == Kind::Module {
                self.visit(c, s, d); // `del x` needs an existing `x`: a read
            } else {
                self.delete_target(c, owner, s, d);
            }
        }
    }

    /// `del x` in a function or class makes `x` local there, unless `x` is declared
    /// `global` in it: then it deletes the module's `x`, which must exist (a read).
    fn delete_target(&mut self, n: Node, owner: usize, s: usize, d: usize) {
        if d > MAX_DEPTH {
            self.fail(n, "code is nested too deeply");
            return;
        }
        match n.kind() {
            "identifier" if self.scopes[owner].globals.contains(self.text(n)) => {
                self.reference(s, n)
            }
            "expression_list" | "tuple" | "list" | "parenthesized_expression" => {
                for c in Self::named_children(n) {
                    self.delete_target(c, owner, s, d + 1);
                }
            }
            _ => self.target(n, s, d),
        }
    }

    #[inline(never)]
    fn case_clause(&mut self, n: Node, s: usize, d: usize) {
        for c in Self::named_children(n) {
            if c.kind() == "case_pattern" {
                self.pattern(c, s, d);
            }
        }
        self.visit_field(n, "guard", s, d);
        self.visit_field(n, "consequence", s, d);
    }

    fn import(&mut self, n: Node, s: usize) {
        let mut c = n.walk();
        let names: Vec<Node> = n.children_by_field_name("name", &mut c).collect();
        for name in names {
            let bound = match name.kind() {
                "aliased_import" => name.child_by_field_name("alias"),
                // `import a.b` binds `a`; `from m import x` binds `x`.
                "dotted_name" => name.named_child(0),
                _ => None,
            };
            if let Some(b) = bound {
                self.bind(s, b);
            }
        }
    }

    /// Bind assignment / loop / `with` targets; attributes and subscripts are loads.
    fn target(&mut self, n: Node, s: usize, d: usize) {
        if d > MAX_DEPTH {
            self.fail(n, "code is nested too deeply");
            return;
        }
        match n.kind() {
            "identifier" => self.bind(s, n),
            "tuple_pattern"
            | "list_pattern"
            | "pattern_list"
            | "tuple"
            | "list"
            | "expression_list"
            | "parenthesized_expression"
            | "list_splat_pattern"
            | "list_splat"
            | "case_pattern" => {
                for c in Self::named_children(n) {
                    self.target(c, s, d + 1);
                }
            }
            _ => self.visit(n, s, d),
        }
    }

    /// Bind `match` capture patterns; value and class patterns are loads.
    fn pattern(&mut self, n: Node, s: usize, d: usize) {
        if d > MAX_DEPTH {
            self.fail(n, "code is nested too deeply");
            return;
        }
        let d = d + 1;
        let kids = Self::named_children(n);
        match n.kind() {
            "identifier" => self.bind(s, n),
            "dotted_name" => {
                if kids.len() == 1 {
                    self.bind(s, kids[0]); // capture pattern
                } else if let Some(first) = kids.first() {
                    self.reference(s, *first); // value pattern `Color.RED`
                }
            }
            "class_pattern" => {
                for (i, c) in kids.into_iter().enumerate() {
                    if i == 0 && c.kind() == "dotted_name" {
                        if let Some(first) = c.named_child(0) {
                            self.reference(s, first);
                        }
                    } else {
                        self.pattern(c, s, d);
                    }
                }
            }
            "keyword_pattern" => {
                // The first identifier is the attribute name, not a binding.
                for c in kids.into_iter().skip(1) {
                    self.pattern(c, s, d);
                }
            }
            "dict_pattern" => {
                let mut cursor = n.walk();
                let keys: Vec<Node> = n.children_by_field_name("key", &mut cursor).collect();
                for c in kids {
                    let is_key = keys.iter().any(|k| k.id() == c.id());
                    if is_key && c.kind() == "dotted_name" {
                        if let Some(first) = c.named_child(0) {
                            self.reference(s, first);
                        }
                    } else if !is_key {
                        self.pattern(c, s, d);
                    }
                }
            }
            "string"
            | "concatenated_string"
            | "integer"
            | "float"
            | "true"
            | "false"
            | "none"
            | "complex_pattern" => {}
            _ => {
                for c in kids {
                    self.pattern(c, s, d);
                }
            }
        }
    }

    fn except_clause(&mut self, n: Node, s: usize, d: usize) {
        for c in Self::named_children(n) {
            if c.kind() == "block" {
                continue;
            }
            let alias = (c.kind() == "as_pattern")
                .then(|| c.child_by_field_name("alias"))
                .flatten()
                .and_then(|a| a.named_child(0))
                .filter(|a| a.kind() == "identifier");
            match alias {
                Some(alias) => {
                    for e in Self::named_children(c) {
                        if e.kind() != "as_pattern_target" {
                            self.visit(e, s, d);
                        }
                    }
                    // Python 3 deletes `e` after the handler, so it lives in its own scope.
                    let h = self.new_scope(Kind::Handler, s);
                    let name = self.text(alias).to_string();
                    self.step += 1;
                    self.scopes[h].bound.insert(name, self.step);
                    for b in Self::named_children(n) {
                        if b.kind() == "block" {
                            self.visit(b, h, d);
                        }
                    }
                    return;
                }
                None => self.visit(c, s, d),
            }
        }
        for b in Self::named_children(n) {
            if b.kind() == "block" {
                self.visit(b, s, d);
            }
        }
    }

    /// PEP 695 type parameters get their own scope between the definition and its body.
    fn type_params(&mut self, n: Node, s: usize, d: usize) -> usize {
        match n.child_by_field_name("type_parameters") {
            Some(tp) => self.type_param_scope(tp, s, d),
            None => s,
        }
    }

    /// New scope binding the parameters of a `type_parameter` node (`[T, *Ts, U: Bound]`).
    fn type_param_scope(&mut self, tp: Node, s: usize, d: usize) -> usize {
        let ann = self.new_scope(Kind::Function, s);
        for t in Self::named_children(tp) {
            let Some(first) = t.named_child(0) else {
                continue;
            };
            match first.kind() {
                "identifier" => self.bind(ann, first),
                "splat_type" => {
                    if let Some(i) = first.named_child(0) {
                        self.bind(ann, i);
                    }
                }
                "constrained_type" => {
                    // `T: bound`: the first child names the parameter, the rest are loads.
                    for (i, c) in Self::named_children(first).into_iter().enumerate() {
                        let ident = if c.kind() == "type" {
                            c.named_child(0)
                        } else {
                            Some(c)
                        };
                        match (i, ident) {
                            (0, Some(id)) if id.kind() == "identifier" => self.bind(ann, id),
                            _ => self.visit(c, ann, d),
                        }
                    }
                }
                _ => self.visit(t, ann, d),
            }
        }
        ann
    }

    fn function(&mut self, n: Node, s: usize, d: usize) {
        let ann = self.type_params(n, s, d);
        let mut params = Vec::new();
        if let Some(ps) = n.child_by_field_name("parameters") {
            for p in Self::named_children(ps) {
                self.parameter(p, s, ann, d, &mut params);
            }
        }
        self.visit_field(n, "return_type", ann, d);
        // Defaults and annotations are evaluated before `def` binds the name.
        if n.kind() == "function_definition" {
            if let Some(name) = n.child_by_field_name("name") {
                self.bind(s, name);
            }
        }
        let f = self.new_scope(Kind::Function, ann);
        for p in params {
            self.bind(f, p);
        }
        self.visit_field(n, "body", f, d);
    }

    /// Defaults are evaluated in `outer`, annotations in `ann`; names are collected.
    fn parameter<'t>(
        &mut self,
        p: Node<'t>,
        outer: usize,
        ann: usize,
        d: usize,
        names: &mut Vec<Node<'t>>,
    ) {
        match p.kind() {
            "identifier" => names.push(p),
            "default_parameter" | "typed_default_parameter" | "typed_parameter" => {
                self.visit_field(p, "value", outer, d);
                self.visit_field(p, "type", ann, d);
                match p.child_by_field_name("name") {
                    Some(name) => self.parameter(name, outer, ann, d, names),
                    None => {
                        // typed_parameter keeps its name as an unnamed-field child.
                        for c in Self::named_children(p) {
                            if c.kind() != "type" {
                                self.parameter(c, outer, ann, d, names);
                            }
                        }
                    }
                }
            }
            "list_splat_pattern" | "dictionary_splat_pattern" | "tuple_pattern" => {
                for c in Self::named_children(p) {
                    self.parameter(c, outer, ann, d, names);
                }
            }
            _ => {}
        }
    }

    fn class(&mut self, n: Node, s: usize, d: usize) {
        let ann = self.type_params(n, s, d);
        self.visit_field(n, "superclasses", ann, d);
        let c = self.new_scope(Kind::Class, ann);
        self.visit_field(n, "body", c, d);
        // The body runs before the class statement binds the name.
        if let Some(name) = n.child_by_field_name("name") {
            self.bind(s, name);
        }
    }

    fn comprehension(&mut self, n: Node, s: usize, d: usize) {
        let c = self.new_scope(Kind::Comprehension, s);
        let body = n.child_by_field_name("body");
        let mut first = true;
        for clause in Self::named_children(n) {
            if Some(clause.id()) == body.map(|b| b.id()) {
                continue;
            }
            match clause.kind() {
                "for_in_clause" => {
                    // The first iterable is evaluated in the enclosing scope.
                    let iter_scope = if first { s } else { c };
                    first = false;
                    let mut cursor = clause.walk();
                    let rights: Vec<Node> = clause
                        .children_by_field_name("right", &mut cursor)
                        .filter(|r| r.is_named())
                        .collect();
                    for r in rights {
                        self.visit(r, iter_scope, d);
                    }
                    if let Some(left) = clause.child_by_field_name("left") {
                        self.target(left, c, d);
                    }
                }
                _ => self.visit(clause, c, d),
            }
        }
        if let Some(b) = body {
            self.visit(b, c, d);
        }
    }

    fn type_alias(&mut self, n: Node, s: usize, d: usize) {
        let Some(left) = n.child_by_field_name("left") else {
            return;
        };
        let mut ann = s;
        if let Some(inner) = left.named_child(0) {
            match inner.kind() {
                "identifier" => self.bind(s, inner),
                "generic_type" => {
                    for k in Self::named_children(inner) {
                        match k.kind() {
                            "identifier" => self.bind(s, k),
                            "type_parameter" => ann = self.type_param_scope(k, s, d),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        self.visit_field(n, "right", ann, d);
    }

    /// Does a load of `name` at evaluation step `step` in scope `s` resolve to a module-level
    /// (cell-global) name?
    fn resolves_to_module(&self, s: usize, name: &str, step: usize) -> bool {
        let mut cur = s;
        let mut crossed_function = false;
        loop {
            let sc = &self.scopes[cur];
            match sc.kind {
                Kind::Module => return true,
                Kind::Handler => {
                    if sc.bound.contains_key(name) {
                        return false;
                    }
                }
                Kind::Class => {
                    // Class bodies are invisible to functions nested in them.
                    if !crossed_function {
                        if sc.globals.contains(name) {
                            return true;
                        }
                        if let Some(&bound_at) = sc.bound.get(name) {
                            // Before the body binds it, a class-body load looks in the module.
                            return step < bound_at;
                        }
                    }
                }
                Kind::Function | Kind::Comprehension => {
                    if sc.globals.contains(name) {
                        return true;
                    }
                    if !sc.nonlocals.contains(name) && sc.bound.contains_key(name) {
                        return false;
                    }
                    crossed_function = true;
                }
            }
            cur = sc.parent;
        }
    }

    /// Whether code in scope `s` runs later (when a function is called), not in cell order.
    fn deferred(&self, mut s: usize) -> bool {
        while s != MODULE {
            if self.scopes[s].kind == Kind::Function {
                return true;
            }
            s = self.scopes[s].parent;
        }
        false
    }

    fn finish(self) -> CellNames {
        // Each module-level name with the step of its first binding.
        let mut first_bound: HashMap<&str, usize> = HashMap::new();
        let module = self.scopes[MODULE].bound.iter();
        // `global x; x = ...` inside a function or class defines module-level `x`.
        let declared = self.scopes[1..].iter().flat_map(|sc| {
            sc.bound
                .iter()
                .filter(|(name, _)| sc.globals.contains(name.as_str()))
        });
        for (name, &at) in module.chain(declared) {
            let entry = first_bound.entry(name.as_str()).or_insert(at);
            *entry = (*entry).min(at);
        }
        let reads: BTreeSet<String> = self
            .refs
            .iter()
            .filter(|(s, name, step)| {
                let defined_before = match first_bound.get(name.as_str()) {
                    // A function body runs after the whole cell defined its names.
                    Some(&at) => at < *step || self.deferred(*s),
                    None => false,
                };
                !defined_before && self.resolves_to_module(*s, name, *step)
            })
            .map(|(_, name, _)| name.clone())
            .collect();
        let writes: BTreeSet<&str> = first_bound.keys().copied().collect();
        CellNames {
            writes: writes
                .into_iter()
                .filter(|n| !is_private(n))
                .map(str::to_string)
                .collect(),
            reads: reads
                .into_iter()
                .filter(|n| !is_private(n) && !is_builtin(n))
                .collect(),
            syntax_error: None,
        }
    }
}
