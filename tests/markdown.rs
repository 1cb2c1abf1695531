//! Markdown cells (stored, never run, outside the graph) and `text/markdown` outputs.

mod common;

use std::time::Duration;

use common::cells::{cell, run, run_settled, settle};
use common::tokens::token_for;
use common::ws::WsClient;
use common::{Backend, TestServer};
use serde_json::{json, Value};

const U: &str = "user_markdown";

both_backends!(
    markdown_cell_is_stored_and_never_runs,
    |backend: Backend| async move {
        let mut s = TestServer::start(backend).await;
        let nb = s.new_empty_notebook(U, "markdown").await;
        // Text that would be Python with names: a markdown cell still defines and reads nothing.
        let text = "# Title\n\nx = y + 1 and $e^{i\\pi}$\n";
        let md = s.new_cell(U, &nb, "markdown", text).await;
        let py = s.new_cell(U, &nb, "python", "x = 41\nprint(x + 1)").await;

        let n = s.notebook(U, &nb).await;
        let m = cell(&n, &md);
        assert_eq!(m["type"], "markdown");
        assert_eq!(m["code"], text);
        assert_eq!(m["reads"], json!([]));
        assert_eq!(m["writes"], json!([]));
        assert_eq!(m["error"], Value::Null, "no graph or syntax error: {m}");
        assert_eq!(m["syntax_error"], Value::Null);
        assert_eq!(m["result_name"], Value::Null);
        // The Python cell's `x` is not "defined twice".
        assert_eq!(cell(&n, &py)["error"], Value::Null);

        // Running it is a no-op success: accepted, nothing queued, no output.
        let m = run_settled(&s, U, &nb, &md).await;
        assert_eq!(m["status"], "idle", "{m}");
        assert_eq!(m["stdout"], "");
        assert_eq!(m["outputs"], json!([]));
        // Running the Python cell does not pull the markdown cell in.
        let p = run_settled(&s, U, &nb, &py).await;
        assert_eq!(p["stdout"], "42\n");
        let n = s.notebook(U, &nb).await;
        assert_eq!(cell(&n, &md)["status"], "idle");

        // Editing keeps it text.
        let (status, body) = s
            .put(
                &format!("/api/notebooks/{nb}/cells/{md}"),
                U,
                json!({"code": "def broken(:\n*still* text"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let n = s.notebook(U, &nb).await;
        assert_eq!(cell(&n, &md)["syntax_error"], Value::Null);
        assert_eq!(cell(&n, &md)["error"], Value::Null);
        // A result name is for SQL cells only.
        let (status, _) = s
            .put(
                &format!("/api/notebooks/{nb}/cells/{md}"),
                U,
                json!({"result_name": "df"}),
            )
            .await;
        assert_eq!(status, 422);

        // It survives a restart as it was.
        s.restart().await;
        let n = s.notebook(U, &nb).await;
        let m = cell(&n, &md);
        assert_eq!(m["type"], "markdown");
        assert_eq!(m["code"], "def broken(:\n*still* text");
        assert_eq!(n["cells"][0]["id"], md.as_str());
        s.finish().await;
    }
);

#[actix_web::test]
async fn running_markdown_broadcasts_nothing() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(U, "markdown ws").await;
    let md = s.new_cell(U, &nb, "markdown", "just *text*").await;
    let py = s.new_cell(U, &nb, "python", "1 + 1").await;
    let mut tab = WsClient::join(&s.base, &nb, &token_for(U)).await;
    tab.send(json!({"type": "run_cell", "cellId": md})).await;
    run(&s, U, &nb, &md).await;
    // Then a real run, whose events mark the end of what the markdown run could have sent.
    run(&s, U, &nb, &py).await;
    let events = tab
        .until(Duration::from_secs(60), |v| {
            v["type"] == "cell_status" && v["cellId"] == py.as_str() && v["status"] == "success"
        })
        .await;
    let about_md: Vec<&Value> = events
        .iter()
        .filter(|v| v["cellId"] == md.as_str())
        .collect();
    assert!(about_md.is_empty(), "{about_md:?}");
    settle(&s, U, &nb).await;
    s.finish().await;
}

#[actix_web::test]
async fn unknown_cell_type_is_refused() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(U, "types").await;
    let (status, body) = s
        .post(
            &format!("/api/notebooks/{nb}/cells"),
            U,
            json!({"type": "rst", "code": "x"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("markdown"),
        "{body}"
    );
    assert_eq!(s.notebook(U, &nb).await["cells"], json!([]));
    s.finish().await;
}

#[actix_web::test]
async fn repr_markdown_becomes_a_markdown_output() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(U, "markdown output").await;
    // Duck-typed like IPython.display.Markdown (no IPython in the kernel), in both shapes the
    // display protocol allows: the text, or (text, metadata).
    let code = "class Md:\n    def __init__(self, t):\n        self.t = t\n    \
                def _repr_markdown_(self):\n        return self.t\n\
                class MdMeta(Md):\n    def _repr_markdown_(self):\n        return (self.t, {})\n\
                display(Md('# Hello **world**'))\nMdMeta('$x^2$')";
    let c = s.new_cell(U, &nb, "python", code).await;
    let c = run_settled(&s, U, &nb, &c).await;
    assert_eq!(c["status"], "success", "{c:#}");
    assert_eq!(
        c["outputs"],
        json!([
            {"mime_type": "text/markdown", "data": "# Hello **world**", "metadata": {}},
            {"mime_type": "text/markdown", "data": "$x^2$", "metadata": {}},
        ])
    );
    s.finish().await;
}
