//! Export (ipynb, percent py, html) and import (ipynb, py) over real HTTP, on SQLite and
//! PostgreSQL; exported files are checked with the real `nbformat` and `jupytext`.

mod common;

use std::path::Path;
use std::process::Command;

use common::cells::{error_of, run_settled};
use common::tempdir::TempDir;
use common::{tokens, Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const A: &str = "user_alice";
const B: &str = "user_bob";
const FLAG: &str = "# [import] ";
const TABLE_MIME: &str = "application/vnd.reactive-notebook.table+json";

/// An export: status, headers and body text.
struct Download {
    status: u16,
    content_type: String,
    disposition: String,
    body: String,
}

async fn export(s: &TestServer, user: &str, nb: &str, format: &str) -> Download {
    let resp = s
        .http
        .get(s.url(&format!("/api/notebooks/{nb}/export?format={format}")))
        .bearer_auth(tokens::token_for(user))
        .send()
        .await
        .expect("request sent");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("body read");
    Download {
        status,
        content_type,
        disposition,
        body,
    }
}

async fn import(s: &TestServer, user: &str, format: &str, content: &str) -> (u16, Value) {
    s.post(
        "/api/notebooks/import",
        user,
        json!({ "format": format, "content": content, "name": "Imported" }),
    )
    .await
}

/// Imports and returns the new notebook (asserting 200).
async fn import_ok(s: &TestServer, user: &str, format: &str, content: &str) -> (Value, Value) {
    let (status, body) = import(s, user, format, content).await;
    assert_eq!(status, 200, "{body}");
    let id = body["notebook_id"].as_str().expect("notebook_id");
    (body.clone(), s.notebook(user, id).await)
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ipynb")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Runs the test venv's Python (`PYTHON`) on a script; fails the test if it cannot run or fails.
fn python(script: &str, args: &[&Path]) -> String {
    let py = std::env::var("PYTHON").expect("PYTHON must name the test venv's python");
    let out = Command::new(&py)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {py}: {e}"));
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cells(n: &Value) -> Vec<Value> {
    n["cells"].as_array().expect("cells").clone()
}

/// (type, code, result_name) of every cell, the part of a notebook a file carries.
fn shape(n: &Value) -> Vec<(String, String, Value)> {
    cells(n)
        .iter()
        .map(|c| {
            (
                c["type"].as_str().expect("type").to_string(),
                c["code"].as_str().expect("code").to_string(),
                c["result_name"].clone(),
            )
        })
        .collect()
}

/// Whether this server has markdown cells (they arrive with the markdown-cells feature; until
/// then an imported markdown cell is kept as a comment-only Python cell).
async fn markdown_supported(s: &TestServer, nb: &str) -> bool {
    let path = format!("/api/notebooks/{nb}/cells");
    let (status, body) = s
        .post(&path, A, json!({"type": "markdown", "code": "probe"}))
        .await;
    if status != 200 {
        return false;
    }
    let id = body["cell_id"].as_str().expect("cell_id");
    assert_eq!(s.delete(&format!("{path}/{id}"), A).await.0, 200);
    true
}

/// Asserts an imported markdown cell: a markdown cell, or commented Python without them.
fn assert_markdown(cell: &Value, text: &str, supported: bool) {
    if supported {
        assert_eq!(cell["type"], "markdown", "{cell}");
        assert_eq!(cell["code"], text, "{cell}");
    } else {
        let commented: Vec<String> = text
            .lines()
            .map(|l| {
                if l.is_empty() {
                    "#".into()
                } else {
                    format!("# {l}")
                }
            })
            .collect();
        assert_eq!(cell["type"], "python", "{cell}");
        assert_eq!(cell["code"], commented.join("\n"), "{cell}");
    }
}

async fn notebook_ids(s: &TestServer, user: &str) -> Vec<String> {
    let (status, body) = s.get("/api/notebooks", user).await;
    assert_eq!(status, 200, "{body}");
    body["notebooks"]
        .as_array()
        .expect("notebooks")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect()
}

both_backends!(exports_a_run_notebook, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(A, "Export <test> é").await;
    let hello = s
        .new_cell(A, &nb, "python", "print(\"hello <b>&\")\nx = 3")
        .await;
    let table = s
        .new_cell(
            A,
            &nb,
            "python",
            "import pandas as pd\ndf = pd.DataFrame({\"n\": [1, 2], \"s\": [\"<i>\", \"ok\"]})\ndf",
        )
        .await;
    let html = s
        .new_cell(
            A,
            &nb,
            "python",
            "class H:\n    def _repr_html_(self):\n        return \"<script>alert(1)</script><p>hi</p>\"\nH()",
        )
        .await;
    let image = s
        .new_cell(
            A,
            &nb,
            "python",
            "import matplotlib\nmatplotlib.use(\"Agg\")\nimport matplotlib.pyplot as plt\n\
             fig, ax = plt.subplots()\nax.plot([1, 2])\nfig",
        )
        .await;
    let failing = s
        .new_cell(A, &nb, "python", "raise ValueError(\"bad <value>\")")
        .await;
    let sql = s
        .new_cell(A, &nb, "sql", "SELECT n * {x} AS m FROM df")
        .await;
    for id in [&hello, &table, &html, &image, &failing, &sql] {
        let cell = run_settled(&s, A, &nb, id).await;
        let expected = if id == &failing { "error" } else { "success" };
        assert_eq!(cell["status"], expected, "{cell:#}");
    }
    let doc = s.notebook(A, &nb).await;
    let index = |id: &str| {
        cells(&doc)
            .iter()
            .position(|c| c["id"] == id)
            .expect("cell in notebook")
    };

    // ipynb: valid for the real nbformat, outputs as MIME bundles.
    let d = export(&s, A, &nb, "ipynb").await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert!(
        d.content_type.starts_with("application/x-ipynb+json"),
        "{}",
        d.content_type
    );
    assert!(
        d.disposition
            .starts_with("attachment; filename=\"Export _test.ipynb\""),
        "{}",
        d.disposition
    );
    let dir = TempDir::new();
    let file = dir.path().join("export.ipynb");
    std::fs::write(&file, &d.body).expect("write");
    python(
        "import nbformat, sys; nbformat.validate(nbformat.read(sys.argv[1], as_version=4))",
        &[&file],
    );
    let ipynb: Value = serde_json::from_str(&d.body).expect("json");
    assert_eq!(ipynb["nbformat"], 4);
    assert_eq!(ipynb["nbformat_minor"], 5);
    assert_eq!(ipynb["metadata"]["kernelspec"]["language"], "python");
    let jcells = ipynb["cells"].as_array().expect("cells");
    assert_eq!(jcells.len(), cells(&doc).len());
    let outputs = |id: &str| {
        jcells[index(id)]["outputs"]
            .as_array()
            .expect("outputs")
            .clone()
    };
    let text = |v: &Value| match v {
        Value::Array(parts) => parts.iter().filter_map(Value::as_str).collect::<String>(),
        other => other.as_str().unwrap_or("").to_string(),
    };
    let out = outputs(&hello);
    assert_eq!(out[0]["output_type"], "stream");
    assert_eq!(text(&out[0]["text"]), "hello <b>&\n");
    let out = outputs(&table);
    assert_eq!(out[0]["output_type"], "display_data");
    assert_eq!(out[0]["data"][TABLE_MIME]["columns"], json!(["n", "s"]));
    assert!(text(&out[0]["data"]["text/html"]).contains("<td>&lt;i&gt;</td>"));
    assert!(text(&out[0]["data"]["text/plain"]).contains("n\ts"));
    let out = outputs(&html);
    assert!(text(&out[0]["data"]["text/html"]).contains("<p>hi</p>"));
    let out = outputs(&image);
    assert!(out[0]["data"]["image/png"]
        .as_str()
        .is_some_and(|d| d.starts_with("iVBOR")));
    let out = outputs(&failing);
    let error = out.last().expect("error output");
    assert_eq!(error["output_type"], "error");
    assert_eq!(error["ename"], "ValueError");
    assert_eq!(error["evalue"], "bad <value>");
    let sql_cell = &jcells[index(&sql)];
    assert!(text(&sql_cell["source"]).starts_with("%%sql\nSELECT n"));
    assert_eq!(
        sql_cell["metadata"]["reactive_notebook"]["result_name"],
        "df_1"
    );
    assert_eq!(
        outputs(&sql)[0]["data"][TABLE_MIME]["columns"],
        json!(["m"])
    );

    // py: valid Python, and jupytext reads back the same cells.
    let d = export(&s, A, &nb, "py").await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert!(d.disposition.contains(".py\""), "{}", d.disposition);
    let file = dir.path().join("export.py");
    std::fs::write(&file, &d.body).expect("write");
    python(
        "import ast, sys; ast.parse(open(sys.argv[1]).read())",
        &[&file],
    );
    let read = python(
        "import json, sys, jupytext\nnb = jupytext.read(sys.argv[1])\n\
         print(json.dumps([[c.cell_type, c.source] for c in nb.cells]))",
        &[&file],
    );
    let read: Value = serde_json::from_str(&read).expect("jupytext output");
    let expected: Vec<Value> = cells(&doc)
        .iter()
        .map(|c| {
            let code = c["code"].as_str().expect("code");
            match c["type"].as_str() {
                Some("sql") => json!(["code", format!("%%sql\n{code}")]),
                Some("markdown") => json!(["markdown", code]),
                _ => json!(["code", code]),
            }
        })
        .collect();
    assert_eq!(read, json!(expected));

    // html: standalone, escaped, no way to run a script.
    let d = export(&s, A, &nb, "html").await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert!(
        d.content_type.starts_with("text/html"),
        "{}",
        d.content_type
    );
    let page = d.body;
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.contains("<script"), "{page}");
    assert!(page.contains("<title>Export &lt;test&gt; é</title>"));
    assert!(page.contains("hello &lt;b&gt;&amp;"));
    assert!(
        page.contains("&lt;b&gt;&amp;&quot;)"),
        "the code is escaped too"
    );
    assert!(page.contains("<iframe sandbox=\"\""));
    assert!(page.contains("srcdoc=\"&lt;script&gt;alert(1)&lt;/script&gt;&lt;p&gt;hi&lt;/p&gt;\""));
    assert!(page.contains("src=\"data:image/png;base64,iVBOR"));
    assert!(page.contains("<td>&lt;i&gt;</td>"));
    assert!(page.contains("ValueError: bad &lt;value&gt;"));
    assert!(page.contains("Content-Security-Policy"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing external"
    );
    s.finish().await;
});

both_backends!(round_trips_ipynb_and_py, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(A, "Round trip").await;
    let with_markdown = markdown_supported(&s, &nb).await;
    if with_markdown {
        s.new_cell(A, &nb, "markdown", "# Title\n\nSome *text*\n\n  indented")
            .await;
    }
    s.new_cell(
        A,
        &nb,
        "python",
        "x = 1\n\n\ny = x  # %d looks like a magic\n# %% not a marker\n# !nor this",
    )
    .await;
    s.new_cell(A, &nb, "python", "").await;
    let sql = s
        .new_cell(A, &nb, "sql", "-- a comment\nSELECT {x} AS one")
        .await;
    let (status, body) = s
        .put(
            &format!("/api/notebooks/{nb}/cells/{sql}"),
            A,
            json!({"result_name": "sales_by_month"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    s.new_cell(A, &nb, "sql", "SELECT 2").await;
    s.new_cell(
        A,
        &nb,
        "python",
        "def f():\n    return \"\"\"\n%not magic\n\"\"\"",
    )
    .await;
    let original = s.notebook(A, &nb).await;
    assert_eq!(
        common::cells::cell(&original, &sql)["result_name"],
        "sales_by_month"
    );
    for format in ["ipynb", "py"] {
        let d = export(&s, A, &nb, format).await;
        assert_eq!(d.status, 200, "{}", d.body);
        let (answer, copy) = import_ok(&s, A, format, &d.body).await;
        assert_eq!(shape(&copy), shape(&original), "{format}: {}", d.body);
        assert_eq!(answer["warnings"], json!([]), "{format}");
        assert_eq!(copy["name"], "Imported");
        // The copy is a new notebook: the original is untouched.
        assert_ne!(copy["id"], original["id"]);
    }
    assert_eq!(shape(&s.notebook(A, &nb).await), shape(&original));
    s.finish().await;
});

both_backends!(imports_jupyter_notebooks, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let probe = s.new_notebook(A, "probe").await;
    let md = markdown_supported(&s, &probe).await;
    let (answer, n) = import_ok(&s, A, "ipynb", &fixture("analysis.ipynb")).await;
    let c = cells(&n);
    assert_eq!(c.len(), 12, "every cell, no extra one: {n:#}");
    assert_eq!(answer["cells"], 12);
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    assert_markdown(
        &c[0],
        &format!(
            "# Sales analysis\n\nA chart pasted into the notebook:\n\n![chart](data:image/png;base64,{png})"
        ),
        md,
    );
    let code = |i: usize| c[i]["code"].as_str().expect("code").to_string();
    // Magics and shell lines stay, flagged; the warnings name the cells.
    for (i, magic) in [
        (1, "%matplotlib inline"),
        (2, "!pip install seaborn"),
        (4, "%%time"),
    ] {
        assert_eq!(c[i]["type"], "python");
        let flagged = code(i);
        assert!(flagged.starts_with(FLAG), "{flagged}");
        assert!(
            flagged.lines().nth(1).is_some_and(|l| l == magic),
            "{flagged}"
        );
    }
    let warned: Vec<u64> = answer["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w["cell"].as_u64().expect("cell"))
        .collect();
    assert_eq!(warned, vec![1, 2, 4], "{answer}");
    assert!(answer["warnings"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("%matplotlib")));
    assert_eq!(
        code(3),
        "sales = pd.DataFrame({\"month\": [1, 2, 3], \"amount\": [10.5, 20.0, 7.25]})\nsales"
    );
    assert_eq!(code(7), "1 / 0");
    assert_markdown(&c[8], "```\nRaw text: .. note:: for nbconvert\n```", md);
    // A `!` line inside a string is not shell syntax.
    assert!(!code(9).starts_with(FLAG), "{}", code(9));
    assert_eq!(c[10]["type"], "sql");
    assert_eq!(code(10), "SELECT month, amount FROM sales WHERE amount > 8");
    assert_eq!(c[10]["result_name"], "df_1");
    assert_markdown(
        &c[11],
        "## Notes\n\n* total is defined twice above\n* <b>bold html</b>",
        md,
    );
    // Outputs are not imported; a duplicate definition shows on both cells.
    for cell in &c {
        assert_eq!(cell["outputs"], json!([]), "{cell}");
        assert_eq!(cell["stdout"], "", "{cell}");
    }
    for i in [3, 6] {
        assert_eq!(c[i]["status"], "error", "{:#}", c[i]);
        assert!(error_of(&c[i]).contains("sales"), "{:#}", c[i]);
    }
    // The kernel refuses a magic with an error that says so.
    let nb = n["id"].as_str().expect("id");
    let cell = run_settled(&s, A, nb, c[1]["id"].as_str().expect("id")).await;
    assert_eq!(cell["status"], "error", "{cell:#}");
    let error = error_of(&cell);
    assert!(
        error.contains("%matplotlib inline is an IPython magic"),
        "{error}"
    );

    // nbformat 4.4: no ids, sources as strings, an empty cell, our SQL metadata.
    let (_, n) = import_ok(&s, A, "ipynb", &fixture("minimal_v44.ipynb")).await;
    let c = cells(&n);
    assert_eq!(c.len(), 4);
    assert_markdown(&c[0], "Intro text", md);
    assert_eq!(
        (c[1]["type"].clone(), c[1]["code"].clone()),
        (json!("python"), json!("a = 1\nb = a + 1"))
    );
    assert_eq!(
        (c[2]["type"].clone(), c[2]["code"].clone()),
        (json!("python"), json!(""))
    );
    assert_eq!(c[3]["type"], "sql");
    assert_eq!(c[3]["code"], "SELECT *\nFROM t");
    assert_eq!(c[3]["result_name"], "big");

    // The same notebook as jupytext writes it in the percent format imports to the same cells
    // (but for the attachment, which the script format cannot hold).
    let dir = TempDir::new();
    let file = dir.path().join("analysis.ipynb");
    std::fs::write(&file, fixture("analysis.ipynb")).expect("write");
    let script = python(
        "import sys, jupytext\nprint(jupytext.writes(jupytext.read(sys.argv[1]), fmt='py:percent'))",
        &[&file],
    );
    let (_, from_py) = import_ok(&s, A, "py", &script).await;
    let (_, from_ipynb) = import_ok(&s, A, "ipynb", &fixture("analysis.ipynb")).await;
    assert_eq!(shape(&from_py)[1..], shape(&from_ipynb)[1..], "{script}");
    s.finish().await;
});

both_backends!(bad_files_are_refused, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let before = notebook_ids(&s, A).await;
    let nb4 = |cells: Value| {
        json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}).to_string()
    };
    let bad: Vec<(&str, String, &str)> = vec![
        ("ipynb", "{not json".into(), "invalid JSON"),
        ("ipynb", "[1, 2]".into(), "not a JSON object"),
        (
            "ipynb",
            json!({"nbformat": 3, "worksheets": []}).to_string(),
            "nbformat 3",
        ),
        ("ipynb", json!({"cells": []}).to_string(), "nbformat"),
        (
            "ipynb",
            json!({"nbformat": 4, "metadata": {}}).to_string(),
            "cells",
        ),
        (
            "ipynb",
            nb4(json!([{"cell_type": "code", "metadata": {}, "outputs": []}])),
            "cell 1 has no source",
        ),
        (
            "ipynb",
            nb4(
                json!([{"cell_type": "markdown", "source": "ok"}, {"cell_type": "code", "source": 42}]),
            ),
            "cell 2 has no source",
        ),
        (
            "ipynb",
            nb4(json!(["x = 1"])),
            "cell 1 is not a JSON object",
        ),
        (
            "ipynb",
            nb4(json!([{"cell_type": "heading", "source": "x"}])),
            "unknown cell_type",
        ),
        ("ipynb", fixture("r_kernel.ipynb"), "R notebook"),
    ];
    for (format, content, says) in &bad {
        let (status, body) = import(&s, A, format, content).await;
        assert_eq!(status, 400, "{content}: {body}");
        let detail = body["detail"].as_str().expect("detail");
        assert!(detail.contains(says), "{detail} should say {says}");
    }
    for body in [
        json!({"format": "html", "content": "<p>"}),
        json!({"format": "docx", "content": ""}),
        json!({"format": "py"}),
        json!({"format": "py", "content": "x = 1", "name": "  "}),
    ] {
        let (status, answer) = s.post("/api/notebooks/import", A, body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer["detail"].is_string());
    }
    let (status, _) = s
        .call(
            Method::POST,
            "/api/notebooks/import",
            None,
            Some(json!({"format": "py", "content": ""})),
        )
        .await;
    assert_eq!(status, 401);
    // Over the body cap: 413.
    let huge = "x = 1\n".repeat(3 * 1024 * 1024);
    let (status, body) = import(&s, A, "py", &huge).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(notebook_ids(&s, A).await, before, "nothing was created");
    s.finish().await;
});

both_backends!(imports_respect_quotas, |backend: Backend| async move {
    let db = common::TestDb::new(backend).await;
    let mut config = db.config();
    config.quotas.cells_per_notebook = 3;
    config.quotas.notebooks_per_user = 2;
    let s = TestServer::start_with(db, config).await;
    let before = notebook_ids(&s, A).await; // the demo notebook
    let (status, body) = import(
        &s,
        A,
        "py",
        "# %%\na = 1\n# %%\nb = 2\n# %%\nc = 3\n# %%\nd = 4",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("CELLS_PER_NOTEBOOK")),
        "{body}"
    );
    assert_eq!(notebook_ids(&s, A).await, before);
    let (_, n) = import_ok(&s, A, "py", "# %%\na = 1\n# %%\nb = 2\n# %%\nc = 3").await;
    assert_eq!(cells(&n).len(), 3);
    let after = notebook_ids(&s, A).await;
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after.len(), 2, "the demo notebook and the import");
    let full = after;
    let (status, body) = import(&s, A, "py", "x = 1").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("NOTEBOOKS_PER_USER")),
        "{body}"
    );
    assert_eq!(notebook_ids(&s, A).await, full);
    s.finish().await;
});

both_backends!(
    export_is_for_the_owner_only,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let nb = s.new_notebook(A, "Private").await;
        s.new_cell(A, &nb, "python", "secret = 42").await;
        for format in ["ipynb", "py", "html"] {
            let theirs = export(&s, B, &nb, format).await;
            let missing = export(&s, B, "00000000-0000-0000-0000-000000000000", format).await;
            assert_eq!((theirs.status, missing.status), (404, 404));
            assert_eq!(theirs.body, missing.body);
            assert!(!theirs.body.contains("secret"));
        }
        for query in ["format=docx", "format=", "x=1"] {
            let (status, body) = s
                .get(&format!("/api/notebooks/{nb}/export?{query}"), A)
                .await;
            assert_eq!(status, 422, "{query}: {body}");
            assert!(
                body["detail"].as_str().is_some_and(|d| d.contains("ipynb")),
                "{body}"
            );
        }
        let (status, _) = s
            .call(
                Method::GET,
                &format!("/api/notebooks/{nb}/export?format=py"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 401);
        s.finish().await;
    }
);
