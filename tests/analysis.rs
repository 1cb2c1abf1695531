//! Specification of cell dependency analysis: one row per Python scoping rule.

use reactive_notebook::notebook::analysis::{
    analyze_python, analyze_sql, sql_placeholders, sql_to_positional,
};

/// (rule, code, expected writes, expected reads) — both sorted.
type Case = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

const PYTHON_CASES: &[Case] = &[
    // --- assignment ---
    ("simple assignment", "x = 1", &["x"], &[]),
    ("assignment reads the right-hand side", "y = x + 1", &["y"], &["x"]),
    ("tuple unpacking", "a, b = pair", &["a", "b"], &["pair"]),
    ("parenthesized tuple unpacking", "(a, b) = 1, 2", &["a", "b"], &[]),
    ("list unpacking", "[a, b] = [1, 2]", &["a", "b"], &[]),
    ("nested unpacking", "a, (b, [c, d]) = v", &["a", "b", "c", "d"], &["v"]),
    ("star unpacking", "first, *rest = items", &["first", "rest"], &["items"]),
    ("chained assignment", "a = b = 1", &["a", "b"], &[]),
    ("chained assignment reads value", "a = b = c", &["a", "b"], &["c"]),
    ("a load before the definition is a read", "print(x)\nx = 1", &["x"], &["x"]),
    ("a load after the definition is not a read", "x = 1\nprint(x)", &["x"], &[]),
    ("self-referencing assignment reads the old value", "x = x", &["x"], &["x"]),
    ("self-referencing expression reads the old value", "x = x + 1", &["x"], &["x"]),
    ("a later redefinition does not hide an earlier read", "y = x\nx = 2", &["x", "y"], &["x"]),
    ("a definition in a branch before the load is not a read", "if c:\n    x = 1\nprint(x)", &["x"], &["c"]),
    ("attribute target reads the object", "obj.attr = value", &[], &["obj", "value"]),
    ("subscript target reads object and index", "d[k] = v", &[], &["d", "k", "v"]),
    // --- augmented assignment ---
    ("augmented assignment reads and writes", "x += 1", &["x"], &["x"]),
    ("augmented after definition is not a read", "x = 0\nx += 1", &["x"], &[]),
    ("augmented attribute", "obj.count += n", &[], &["n", "obj"]),
    // --- annotations ---
    ("annotated assignment", "x: int = 1", &["x"], &[]),
    ("annotation names are reads", "x: MyType = make()", &["x"], &["MyType", "make"]),
    ("bare annotation defines nothing", "x: Alias", &[], &["Alias"]),
    // --- walrus ---
    ("walrus at module level defines", "if (y := compute()) > 0:\n    pass", &["y"], &["compute"]),
    ("walrus in comprehension binds in module", "vals = [(last := v) for v in data]", &["last", "vals"], &["data"]),
    ("self-referencing walrus reads the old value", "(x := x)", &["x"], &["x"]),
    ("walrus value is evaluated before the binding", "y = (x := x + 1) + x", &["x", "y"], &["x"]),
    ("walrus inside function is local", "def f():\n    (z := 1)\n    return z", &["f"], &[]),
    // --- imports ---
    ("import", "import numpy", &["numpy"], &[]),
    ("dotted import binds the top package", "import os.path", &["os"], &[]),
    ("import as", "import numpy as np", &["np"], &[]),
    ("dotted import as", "import a.b.c as abc", &["abc"], &[]),
    ("from import", "from math import sin, cos", &["cos", "sin"], &[]),
    ("from import as", "from m import x, y as z", &["x", "z"], &[]),
    ("relative from import", "from .pkg import thing", &["thing"], &[]),
    ("star import defines nothing", "from m import *", &[], &[]),
    ("future import defines nothing", "from __future__ import annotations", &[], &[]),
    // --- functions ---
    ("def defines the function", "def f():\n    pass", &["f"], &[]),
    ("parameters are local", "def f(a, b=1, *args, c, d=2, **kw):\n    return a + b + c + d", &["f"], &[]),
    ("function body free names are reads", "def f():\n    return g(y)", &["f"], &["g", "y"]),
    ("body name defined at top level is not a read", "def f():\n    return y\ny = 1", &["f", "y"], &[]),
    ("function locals are not reads", "def f():\n    t = 1\n    return t", &["f"], &[]),
    ("local assigned after use is still local", "def f():\n    print(t)\n    t = 1", &["f"], &[]),
    ("defaults are read in the enclosing scope", "def f(a=default):\n    return a", &["f"], &["default"]),
    ("annotations are reads", "def f(a: A, *args: B, **kw: C) -> R:\n    pass", &["f"], &["A", "B", "C", "R"]),
    ("decorators are reads", "@cache\n@app.route('/')\ndef view():\n    pass", &["view"], &["app", "cache"]),
    ("a default naming the function reads it", "def f(a=f):\n    return a", &["f"], &["f"]),
    ("a decorator naming the function reads it", "@f\ndef f():\n    pass", &["f"], &["f"]),
    ("recursive function is not a read of itself", "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)", &["fact"], &[]),
    ("async def", "async def fetch():\n    return await client.get(url)", &["fetch"], &["client", "url"]),
    ("positional-only and keyword-only markers", "def f(a, /, b, *, c):\n    return a, b, c", &["f"], &[]),
    // --- closures, global, nonlocal ---
    ("closure reads the outer local", "def outer():\n    v = 1\n    def inner():\n        return v\n    return inner", &["outer"], &[]),
    ("closure free name is a read", "def outer():\n    def inner():\n        return w\n    return inner", &["outer"], &["w"]),
    ("nonlocal binds the outer local", "def outer():\n    v = 0\n    def inc():\n        nonlocal v\n        v += 1\n    return inc", &["outer"], &[]),
    ("global assignment defines module name", "def setup():\n    global config\n    config = load()", &["config", "setup"], &["load"]),
    ("global del in a function reads, never defines", "def drop():\n    global x\n    del x", &["drop"], &["x"]),
    ("global del of a name the cell defines is not a read", "x = 1\ndef drop():\n    global x\n    del x", &["drop", "x"], &[]),
    ("global del of a tuple", "def drop():\n    global a\n    del a, b", &["drop"], &["a"]),
    ("global del in a class body reads", "class C:\n    global x\n    del x", &["C"], &["x"]),
    ("global read is a read", "def show():\n    global setting\n    return setting", &["show"], &["setting"]),
    ("global in outer seen by inner", "def outer():\n    global g\n    g = 1\n    def inner():\n        return g\n    return inner", &["g", "outer"], &[]),
    // --- classes ---
    ("class defines its name", "class C:\n    pass", &["C"], &[]),
    ("bases and keywords are reads", "class C(Base, metaclass=Meta):\n    pass", &["C"], &["Base", "Meta"]),
    ("class body names are not module names", "class C:\n    attr = 1\n    def method(self):\n        return self.attr", &["C"], &[]),
    ("class-body names are invisible in methods", "class C:\n    k = 1\n    def m(self):\n        return k", &["C"], &["k"]),
    ("class body reads its own names", "class C:\n    a = 1\n    b = a + 1", &["C"], &[]),
    ("class body self-reference reads the module name", "class F:\n    x = x", &["F"], &["x"]),
    ("class body load before its own binding reads the module", "class F:\n    y = x\n    x = 1", &["F"], &["x"]),
    ("class body self-reference with the module name defined first", "x = 1\nclass F:\n    x = x", &["F", "x"], &[]),
    ("method used in the class body before its def is a read", "class B:\n    bound = method\n    def method(self):\n        pass", &["B"], &["method"]),
    ("method used in the class body after its def is not a read", "class B:\n    def method(self):\n        pass\n    bound = method", &["B"], &[]),
    ("class body naming the class being defined reads it", "class C:\n    me = C", &["C"], &["C"]),
    ("class body free names are reads", "class C:\n    size = DEFAULT", &["C"], &["DEFAULT"]),
    ("nested class", "class Outer:\n    class Inner:\n        x = y", &["Outer"], &["y"]),
    ("method refers to the class by module name", "class Node:\n    def clone(self):\n        return Node()", &["Node"], &[]),
    ("decorated class", "@dataclass\nclass P:\n    x: int = 0", &["P"], &["dataclass"]),
    // --- lambdas and comprehensions ---
    ("lambda parameters are local", "f = lambda a, b=1: a + b + c", &["f"], &["c"]),
    ("lambda default is read outside", "f = lambda a=d: a", &["f"], &["d"]),
    ("comprehension variable does not leak", "squares = [i * i for i in range(n)]", &["squares"], &["n"]),
    ("generator expression", "total = sum(x for x in xs if x > lo)", &["total"], &["lo", "xs"]),
    ("set comprehension", "s = {f(v) for v in vs}", &["s"], &["f", "vs"]),
    ("dict comprehension", "d = {k: v for k, v in items.items()}", &["d"], &["items"]),
    ("nested comprehension", "flat = [y for row in grid for y in row]", &["flat"], &["grid"]),
    ("later iterables see loop variables", "pairs = [(a, b) for a in xs for b in f(a)]", &["pairs"], &["f", "xs"]),
    ("module comprehension runs at once: a later definition does not hide the read", "ys = [x for _ in range(2)]\nx = 1", &["x", "ys"], &["x"]),
    ("augmented assignment after a read of the name reads it", "print(x)\nx = 0\nx += 1", &["x"], &["x"]),
    ("comprehension variable named like a read", "out = [x for x in x]", &["out"], &["x"]),
    ("comprehension in class body cannot see class names", "class C:\n    n = 3\n    sq = [n * i for i in range(2)]", &["C"], &["n"]),
    ("first iterable in class body sees class names", "class C:\n    xs = [1]\n    ys = [i for i in xs]", &["C"], &[]),
    // --- control flow at module level ---
    ("for-loop target defines", "for i in range(3):\n    acc = i", &["acc", "i"], &[]),
    ("for-else", "for item in seq:\n    pass\nelse:\n    done = True", &["done", "item"], &["seq"]),
    ("while body is module level", "while cond:\n    n = step()", &["n"], &["cond", "step"]),
    ("if/elif/else bodies are module level", "if a:\n    x = 1\nelif b:\n    y = 2\nelse:\n    z = 3", &["x", "y", "z"], &["a", "b"]),
    ("with as defines", "with open(path) as fh:\n    text = fh.read()", &["fh", "text"], &["path"]),
    ("with as tuple", "with ctx() as (a, b):\n    pass", &["a", "b"], &["ctx"]),
    ("multiple with items", "with lock, open(p) as f:\n    pass", &["f"], &["lock", "p"]),
    ("try/except/else/finally are module level", "try:\n    a = 1\nexcept ValueError:\n    b = 2\nelse:\n    c = 3\nfinally:\n    d = 4", &["a", "b", "c", "d"], &[]),
    ("except as binds only inside the handler", "try:\n    run()\nexcept MyError as e:\n    log(e)", &[], &["MyError", "log", "run"]),
    ("except tuple of classes", "try:\n    pass\nexcept (E1, E2):\n    pass", &[], &["E1", "E2"]),
    ("assignment inside handler is module level", "try:\n    pass\nexcept Exception as err:\n    msg = str(err)", &["msg"], &[]),
    ("del is a read, not a definition", "del cache", &[], &["cache"]),
    ("del of attribute and item", "del obj.attr, table[key]", &[], &["key", "obj", "table"]),
    ("del inside a function makes the name local", "def f():\n    del tmp", &["f"], &[]),
    ("return/raise/assert are reads", "def f():\n    assert ok, msg\n    raise Err(code)", &["f"], &["Err", "code", "msg", "ok"]),
    // --- match ---
    ("match capture patterns define", "match cmd:\n    case [action, obj]:\n        pass", &["action", "obj"], &["cmd"]),
    ("class pattern reads the class, keyword captures", "match p:\n    case Point(x=a, y=0):\n        pass", &["a"], &["Point", "p"]),
    ("value pattern reads", "match c:\n    case Color.RED:\n        pass", &[], &["Color", "c"]),
    ("as pattern, star and guard", "match v:\n    case [first, *others] as whole if first > limit:\n        pass", &["first", "others", "whole"], &["limit", "v"]),
    ("mapping pattern", "match msg:\n    case {\"type\": kind, **extra}:\n        pass", &["extra", "kind"], &["msg"]),
    ("wildcard captures nothing", "match v:\n    case _:\n        pass", &[], &["v"]),
    ("builtin class patterns are not reads", "match v:\n    case str() | int(n):\n        pass", &["n"], &["v"]),
    // --- strings ---
    ("f-string expressions are reads", "s = f\"{name}: {value!r}\"", &["s"], &["name", "value"]),
    ("f-string nested format spec", "s = f\"{x:{width}.{prec}f}\"", &["s"], &["prec", "width", "x"]),
    ("f-string debug specifier", "s = f\"{total=}\"", &["s"], &["total"]),
    ("plain strings contain no names", "s = 'x {y}'", &["s"], &[]),
    // --- builtins ---
    ("builtins are not reads", "print(len(range(10)), Exception, __name__)", &[], &[]),
    ("shadowing a builtin is a write", "list = [1, 2]\nprint(list)", &["list"], &[]),
    ("defining print is a write", "def print(*a):\n    pass", &["print"], &[]),
    // --- private names ---
    ("underscore names are private", "_tmp = 1\ny = _tmp", &["y"], &[]),
    ("underscore reads are ignored", "y = _other", &["y"], &[]),
    ("private function", "def _helper():\n    return z", &[], &["z"]),
    // --- expressions ---
    ("attribute chain reads only the base", "v = a.b.c", &["v"], &["a"]),
    ("call keyword names are not reads", "r = f(key=val)", &["r"], &["f", "val"]),
    ("subscript and slice", "v = arr[i:j, ::k]", &["v"], &["arr", "i", "j", "k"]),
    ("method call on result", "df2 = df.groupby(col).sum()", &["df2"], &["col", "df"]),
    ("dict and set literals", "d = {k1: v1, **more}\ns = {a, *b}", &["d", "s"], &["a", "b", "k1", "more", "v1"]),
    ("conditional and boolean expressions", "z = a if b else c or not d", &["z"], &["a", "b", "c", "d"]),
    ("await at top level", "data = await fetch(url)", &["data"], &["fetch", "url"]),
    ("comments are ignored", "# uses hidden\nx = 1  # and more\n    # indented comment", &["x"], &[]),
    ("empty cell", "", &[], &[]),
    // --- type aliases (3.12) ---
    ("type alias defines its name", "type Vector = list[Scalar]", &["Vector"], &["Scalar"]),
    ("generic type alias parameters are local", "type Pair[T: Base] = tuple[T, T]", &["Pair"], &["Base"]),
    ("generic class type parameters are local", "class Box[T](Generic[T]):\n    def get(self) -> T: ...", &["Box"], &["Generic"]),
    ("except-handler name captured by a nested function", "try:\n    pass\nexcept E as e:\n    def g():\n        return e", &["g"], &["E"]),
    ("lambda in comprehension", "fs = [lambda: i + k for i in range(3)]", &["fs"], &["k"]),
    ("parenthesized with items", "with (open(a) as f, open(b) as g):\n    pass", &["f", "g"], &["a", "b"]),
    ("global declared in a class body", "class C:\n    global gx\n    gx = 1", &["C", "gx"], &[]),
    ("star and double-star arguments", "f(*args, **kw)", &[], &["args", "f", "kw"]),
    ("generic function type parameters are local", "def first[T](xs: list[T]) -> T:\n    return xs[0]", &["first"], &[]),
];

fn show(v: &[String]) -> String {
    format!("{v:?}")
}

#[test]
fn python_scoping_table() {
    assert!(
        PYTHON_CASES.len() >= 70,
        "only {} cases",
        PYTHON_CASES.len()
    );
    let mut failures = Vec::new();
    for (rule, code, writes, reads) in PYTHON_CASES {
        let got = analyze_python(code);
        let want_w: Vec<String> = writes.iter().map(|s| s.to_string()).collect();
        let want_r: Vec<String> = reads.iter().map(|s| s.to_string()).collect();
        if got.syntax_error.is_some() || got.writes != want_w || got.reads != want_r {
            failures.push(format!(
                "--- {rule}\n{code}\n  writes: want {} got {}\n  reads:  want {} got {}\n  error: {:?}",
                show(&want_w),
                show(&got.writes),
                show(&want_r),
                show(&got.reads),
                got.syntax_error
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        PYTHON_CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn output_is_sorted_and_deduplicated() {
    let got = analyze_python("b = 1\na = 2\nb = 3\nprint(z, y, z)");
    assert_eq!(got.writes, vec!["a", "b"]);
    assert_eq!(got.reads, vec!["y", "z"]);
}

#[test]
fn syntax_errors_report_line_and_clear_names() {
    for (code, line) in [
        ("x = 1\ny = (2\n", 2),
        ("x = = 1", 1),
        ("a = 1\nb = 2\ndef f(:\n    pass", 3),
        ("x = 1\nprint \"py2\"", 2),
        ("if x\n    y = 1", 1),
        ("x = 1\n  y = 2", 2),
    ] {
        let got = analyze_python(code);
        let msg = got
            .syntax_error
            .unwrap_or_else(|| panic!("no syntax error for {code:?}"));
        assert!(msg.contains(&format!("line {line}")), "{code:?}: {msg}");
        assert!(got.writes.is_empty() && got.reads.is_empty(), "{code:?}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let code = format!("x = {}1{}", "(".repeat(5000), ")".repeat(5000));
    let got = analyze_python(&code);
    assert!(got.syntax_error.is_some());
    let long = format!("x = {}", vec!["a"; 3000].join(" + "));
    let got = analyze_python(&long);
    assert!(got.syntax_error.is_some() || got.reads == vec!["a"]);
}

#[test]
fn non_ascii_identifiers() {
    let got = analyze_python("größe = länge * 2");
    assert_eq!(got.writes, vec!["größe"]);
    assert_eq!(got.reads, vec!["länge"]);
}

// --- SQL ---

fn names(code: &str) -> Vec<String> {
    sql_placeholders(code).into_iter().map(|(_, n)| n).collect()
}

#[test]
fn sql_placeholders_are_reads() {
    let got = analyze_sql("SELECT * FROM s.t WHERE a = {x} AND b = {y} AND c = {x}");
    assert_eq!(got.writes, Vec::<String>::new());
    assert_eq!(got.reads, vec!["x", "y"]);
    assert_eq!(got.syntax_error, None);
}

#[test]
fn sql_table_names_are_reads() {
    // FROM/JOIN tables that are single identifiers may be DataFrames; CTEs, qualified names
    // and table functions are not.
    let got = analyze_sql(
        "WITH w AS (SELECT * FROM df) \
         SELECT * FROM w JOIN cities c ON w.k = c.k, s.t, read_csv('x') WHERE a = {x}",
    );
    assert_eq!(got.reads, vec!["cities", "df", "x"]);
    // SQL the parser cannot read: only the placeholders.
    let got = analyze_sql("SELEC * FRM df WHERE a = {x}");
    assert_eq!(got.reads, vec!["x"]);
}

#[test]
fn sql_placeholder_ranges_are_exact() {
    let code = "SELECT {a}, { b_2 }, {\tc\t} FROM t";
    let got = sql_placeholders(code);
    assert_eq!(got.len(), 3);
    for (range, name) in &got {
        let text = &code[range.clone()];
        assert!(text.starts_with('{') && text.ends_with('}'), "{text}");
        assert_eq!(text[1..text.len() - 1].trim(), name);
    }
    assert_eq!(got[0], (7..10, "a".to_string()));
    assert_eq!(got[1], (12..19, "b_2".to_string()));
    assert_eq!(got[2], (21..26, "c".to_string()));
}

#[test]
fn sql_string_literals_are_skipped() {
    assert_eq!(names("SELECT '{a}', 'it''s {b}', {c}"), vec!["c"]);
    assert_eq!(names("SELECT E'\\' {a}', {b}"), vec!["b"]);
    assert_eq!(names("SELECT \"{col}\" FROM t WHERE x = {v}"), vec!["v"]);
    assert_eq!(names("SELECT $$ {a} $$, $tag$ {b} $tag$, {c}"), vec!["c"]);
}

#[test]
fn sql_comments_are_skipped() {
    assert_eq!(names("SELECT {a} -- {b}\n, {c}"), vec!["a", "c"]);
    assert_eq!(
        names("SELECT /* {a} /* nested {b} */ {c} */ {d}"),
        vec!["d"]
    );
    assert_eq!(names("SELECT 1 - {a}"), vec!["a"]);
}

#[test]
fn sql_escaped_braces_and_non_placeholders() {
    assert_eq!(names("SELECT '{{', {{a}}, {{{b}}}"), vec!["b"]);
    assert_eq!(
        names("SELECT {a.b}, {}, {1x}, {a b}, {if}, {x + 1}"),
        Vec::<String>::new()
    );
    assert_eq!(names("SELECT {größe}"), vec!["größe"]);
    let ph = sql_placeholders("SELECT 'é', {é}");
    assert_eq!(ph[0].0, 13..17);
}

#[test]
fn sql_private_names_are_not_reads_but_still_placeholders() {
    assert_eq!(analyze_sql("SELECT {_x}").reads, Vec::<String>::new());
    assert_eq!(names("SELECT {_x}"), vec!["_x"]);
}

#[test]
fn sql_positional_rewrite() {
    let (sql, params) = sql_to_positional(
        "SELECT '{x}', {{x}} FROM t WHERE a = {x} AND b = { y } OR c = {x} -- {z}",
    );
    assert_eq!(
        sql,
        "SELECT '{x}', {x} FROM t WHERE a = $1 AND b = $2 OR c = $1 -- {z}"
    );
    assert_eq!(params, vec!["x", "y"]);
}

#[test]
fn sql_unterminated_literal_is_an_error() {
    for code in ["SELECT 'abc {x}", "SELECT 1\n/* {x}", "SELECT $$ {x}"] {
        let got = analyze_sql(code);
        assert!(got.syntax_error.is_some(), "{code}");
        assert!(got.reads.is_empty());
    }
    let got = analyze_sql("SELECT 1,\n 'open");
    assert!(got.syntax_error.unwrap_or_default().contains("line 2"));
}
