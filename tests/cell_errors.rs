//! Clearer errors: graph errors name cells by position, tracebacks show the source line,
//! syntax errors are reported (with line and column) as soon as the code is saved.

mod common;

use common::cells::{cell, error_of, run_settled};
use common::{Backend, TestServer};
use serde_json::{json, Value};

const U: &str = "user_cell_errors";

both_backends!(
    graph_errors_name_cells_by_position,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let nb = s.new_notebook(U, "graph errors").await;
        let one = s.new_cell(U, &nb, "python", "a = b + 1").await;
        let _md = s.new_cell(U, &nb, "markdown", "between").await;
        let three = s.new_cell(U, &nb, "python", "b = a + 1").await;
        let four = s.new_cell(U, &nb, "python", "z = 1").await;
        let five = s.new_cell(U, &nb, "python", "z = 2").await;
        let n = s.notebook(U, &nb).await;
        let e1 = error_of(cell(&n, &one));
        let e3 = error_of(cell(&n, &three));
        // A new notebook starts with one empty cell: these are cells 2 to 6.
        assert!(e1.contains("cycle") && e1.contains("cell 4"), "{e1}");
        assert!(e3.contains("cycle") && e3.contains("cell 2"), "{e3}");
        let e4 = error_of(cell(&n, &four));
        let e5 = error_of(cell(&n, &five));
        assert!(e4.contains("'z'") && e4.contains("cell 6"), "{e4}");
        assert!(e5.contains("'z'") && e5.contains("cell 5"), "{e5}");
        // No cell ids in the messages: people see positions.
        for (e, id) in [(&e1, &three), (&e3, &one), (&e4, &five), (&e5, &four)] {
            assert!(!e.contains(id.as_str()), "{e}");
        }
        s.finish().await;
    }
);

#[actix_web::test]
async fn traceback_shows_the_offending_line() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_notebook(U, "traceback").await;
    let def = s
        .new_cell(U, &nb, "python", "def half(v):\n    return v / zero")
        .await;
    let zero = s.new_cell(U, &nb, "python", "zero = 0").await;
    let call = s
        .new_cell(
            U,
            &nb,
            "python",
            "import math\nr = half(4) + half.__code__.co_argcount",
        )
        .await;
    run_settled(&s, U, &nb, &def).await;
    run_settled(&s, U, &nb, &zero).await;
    let c = run_settled(&s, U, &nb, &call).await;
    assert_eq!(c["status"], "error", "{c:#}");
    let e = error_of(&c);
    assert!(
        e.contains("line 2, in <module>\n    r = half(4) + half.__code__.co_argcount"),
        "{e}"
    );
    // The function's frame shows its own cell's line, not the caller's.
    assert!(e.contains("in half\n    return v / zero"), "{e}");
    assert!(e.ends_with("ZeroDivisionError: division by zero"), "{e}");
    s.finish().await;
}

both_backends!(
    syntax_errors_are_reported_while_typing,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let nb = s.new_notebook(U, "syntax").await;
        let c = s.new_cell(U, &nb, "python", "x = 1").await;
        let n = s.notebook(U, &nb).await;
        assert_eq!(cell(&n, &c)["syntax_error"], Value::Null);

        let (status, body) = s
            .put(
                &format!("/api/notebooks/{nb}/cells/{c}"),
                U,
                json!({"code": "x = 1\ny = (2,\nprint(y"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let n = s.notebook(U, &nb).await;
        let se = &cell(&n, &c)["syntax_error"];
        assert!(
            se["message"]
                .as_str()
                .unwrap_or("")
                .contains("syntax error"),
            "{se}"
        );
        let line = se["line"].as_u64().unwrap_or(0);
        assert!((2..=3).contains(&line), "{se}");
        assert!(se["col"].as_u64().unwrap_or(0) >= 1, "{se}");

        // A SQL cell's unterminated string is flagged too.
        let q = s.new_cell(U, &nb, "sql", "SELECT 1\nWHERE a = 'open").await;
        let n = s.notebook(U, &nb).await;
        assert_eq!(cell(&n, &q)["syntax_error"]["line"], 2, "{n:#}");

        // Fixing the code clears it.
        let (status, _) = s
            .put(
                &format!("/api/notebooks/{nb}/cells/{c}"),
                U,
                json!({"code": "x = 1\ny = (2,)"}),
            )
            .await;
        assert_eq!(status, 200);
        let n = s.notebook(U, &nb).await;
        assert_eq!(cell(&n, &c)["syntax_error"], Value::Null);
        s.finish().await;
    }
);
