//! The OpenAPI document at `/api/openapi.json` and the docs page at `/api/docs`, over real
//! HTTP: valid OpenAPI 3.1 (checked by `openapi-spec-validator` from the test venv at
//! `PYTHON`), in step with the route table both ways, and describing what the server really
//! sends (real answers and WebSocket messages validate against its schemas).

mod common;

use std::time::Duration;

use common::ws::WsClient;
use common::{tokens, Backend, TestServer};
use reactive_notebook::api::openapi::wire::WsServerMessage;
use reactive_notebook::api::ROUTE_HANDLERS;
use reqwest::Method;
use serde_json::{json, Value};

const A: &str = "user_alice";

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// Runs a Python snippet of the test venv on `input` (stdin, JSON); a failure (or a venv without
/// the package) fails the test with Python's message.
fn python(script: &str, input: &Value, what: &str) {
    let out = common::python::run(script, input.to_string().as_bytes());
    assert!(
        out.status.success(),
        "{what} failed (scripts/setup-python.sh installs openapi-spec-validator from \
         scripts/requirements-test.txt into the venv PYTHON names):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const SPEC_VALIDATOR: &str = r#"
import json, sys
from openapi_spec_validator import validate
from openapi_spec_validator import OpenAPIV31SpecValidator
doc = json.load(sys.stdin)
validate(doc, cls=OpenAPIV31SpecValidator)
"#;

/// Validates instances against schemas of the document, each named by a JSON pointer into it.
const INSTANCE_VALIDATOR: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
data = json.load(sys.stdin)
failures = []
for pointer, instance in data["checks"]:
    root = dict(data["doc"])
    root["$ref"] = pointer
    for error in Draft202012Validator(root).iter_errors(instance):
        failures.append(f"{pointer}: {json.dumps(instance)[:300]}: {error.message}")
if failures:
    print("\n".join(failures))
    sys.exit(1)
"#;

async fn fetch_document(server: &TestServer) -> Value {
    let (status, doc) = server
        .call(Method::GET, "/api/openapi.json", None, None)
        .await;
    assert_eq!(status, 200, "the document is served without auth: {doc}");
    doc
}

/// Every `(method, path)` operation of the document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                out.push((method.to_string(), path.clone()));
            }
        }
    }
    out
}

/// `/a/{id}/b` with every parameter filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push_str("x0");
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// A JSON pointer token (`/` and `~` escaped).
fn token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

#[actix_web::test]
async fn document_is_valid_openapi_31_without_auth() {
    let server = TestServer::start(Backend::Sqlite).await;
    let doc = fetch_document(&server).await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    python(SPEC_VALIDATOR, &doc, "openapi-spec-validator");

    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    let error_body = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error_body["required"], json!(["detail"]), "{error_body}");

    // Every error answer is the shared ErrorBody; routes without a bearer requirement are
    // exactly the ones that need no token.
    let mut open = Vec::new();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        for (status, answer) in op["responses"].as_object().expect("responses") {
            let code: u16 = status.parse().expect("numeric status");
            let json_schema = &answer["content"]["application/json"]["schema"];
            // The readiness probe's 503 keeps its own `{"status", "detail"}` shape.
            if code >= 401 && !json_schema.is_null() && path != "/health/ready" {
                assert_eq!(
                    json_schema["$ref"], "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
        let needs_bearer = op["security"]
            .as_array()
            .is_some_and(|reqs| reqs.iter().any(|r| r.get("bearer").is_some()));
        let optional = op["security"].as_array().is_some_and(|reqs| {
            reqs.iter()
                .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
        });
        if !needs_bearer || optional {
            open.push(format!("{} {path}", method.to_uppercase()));
        }
        if needs_bearer && !optional {
            assert!(
                op["responses"].get("401").is_some(),
                "{method} {path} needs a token but documents no 401"
            );
        }
    }
    open.sort();
    assert_eq!(
        open,
        [
            "GET /api/config",
            "GET /api/docs",
            "GET /api/openapi.json",
            "GET /api/ws/notebooks/{id}",
            "GET /health",
            "GET /health/ready",
            "GET /invite/{code}",
            "GET /metrics",
        ],
        "the routes documented as needing no token"
    );
    for (path, method) in [("/api/config", "GET"), ("/health", "GET")] {
        let (status, body) = server
            .call(
                Method::from_bytes(method.as_bytes()).expect("method"),
                path,
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{path} is documented as open: {body}");
    }
    let (status, _) = server.call(Method::GET, "/api/notebooks", None, None).await;
    assert_eq!(
        status, 401,
        "a bearer route refuses a request without a token"
    );
    server.finish().await;
}

#[actix_web::test]
async fn document_and_route_table_match_both_ways() {
    let server = TestServer::start(Backend::Sqlite).await;
    let doc = fetch_document(&server).await;
    let ops = operations(&doc);

    // Table -> document: every route of the table is one operation of the document.
    assert_eq!(
        ops.len(),
        ROUTE_HANDLERS.len(),
        "the document has {} operations but the route table {} routes: {ROUTE_HANDLERS:?}",
        ops.len(),
        ROUTE_HANDLERS.len()
    );
    let mut ids: Vec<&str> = ops
        .iter()
        .map(|(m, p)| {
            doc["paths"][p][m]["operationId"]
                .as_str()
                .expect("operationId")
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), ops.len(), "operation ids are unique");
    for must in [
        ("get", "/api/openapi.json"),
        ("get", "/api/docs"),
        ("get", "/api/ws/notebooks/{id}"),
        ("post", "/api/chat/{notebook_id}"),
        ("post", "/api/notebooks/import"),
        ("get", "/api/notebooks/{id}/export"),
        ("get", "/health/ready"),
        ("get", "/metrics"),
    ] {
        assert!(
            ops.contains(&(must.0.to_string(), must.1.to_string())),
            "{must:?} is documented"
        );
    }

    // Query parameters are documented too.
    let export = &doc["paths"]["/api/notebooks/{id}/export"]["get"]["parameters"];
    assert!(
        export.as_array().is_some_and(|ps| ps
            .iter()
            .any(|p| p["name"] == "format" && p["in"] == "query")),
        "{export}"
    );

    // Document -> server: every documented operation is served (a route the server does not
    // have answers the catch-all `{"detail": "Not Found"}`).
    for (method, path) in &ops {
        let url = concrete(path);
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let (status, body) = server.call(method.clone(), &url, None, None).await;
        assert!(
            !(status == 404 && body == json!({"detail": "Not Found"})),
            "{method} {path} is documented but not served ({status} {body})"
        );
    }
    // ... and the catch-all really answers that way for a route nobody registered.
    let (status, body) = server
        .call(Method::PATCH, "/api/notebooks/x0", None, None)
        .await;
    assert_eq!((status, body), (404, json!({"detail": "Not Found"})));
    server.finish().await;
}

#[actix_web::test]
async fn websocket_and_chat_schemas_are_components() {
    let server = TestServer::start(Backend::Sqlite).await;
    let doc = fetch_document(&server).await;
    let schemas = &doc["components"]["schemas"];
    let tags = |name: &str, key: &str| -> Vec<String> {
        let mut out = Vec::new();
        collect_tags(&schemas[name], key, &mut out);
        out.sort();
        out
    };
    let client = tags("WsClientMessage", "type");
    for kind in [
        "authenticate",
        "run_cell",
        "interrupt",
        "focus",
        "cursor",
        "refresh_auth",
        "yjs",
    ] {
        assert!(
            client.iter().any(|k| k == kind),
            "WsClientMessage {kind}: {client:?}"
        );
    }
    let server_kinds = tags("WsServerMessage", "type");
    for kind in [
        "authenticated",
        "auth_refreshed",
        "error",
        "cell_status",
        "cell_stdout",
        "cell_output",
        "cell_error",
        "cell_updated",
        "cell_created",
        "cell_deleted",
        "cell_moved",
        "notebook_updated",
        "notebook_deleted",
        "presence",
        "cursor",
        "yjs",
        "package_install",
        "variables",
    ] {
        assert!(
            server_kinds.iter().any(|k| k == kind),
            "WsServerMessage {kind}: {server_kinds:?}"
        );
    }
    let chat = tags("ChatFrame", "event");
    for kind in [
        "turn_start",
        "text_start",
        "text_delta",
        "tool_start",
        "content_block_stop",
        "tool_execute",
        "tool_result",
        "error",
        "done",
    ] {
        assert!(chat.iter().any(|k| k == kind), "ChatFrame {kind}: {chat:?}");
    }
    server.finish().await;
}

/// Collects the `enum` values of every `key` property found in `schema`.
fn collect_tags(schema: &Value, key: &str, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(values) = map
                .get("properties")
                .and_then(|p| p.get(key))
                .and_then(|t| t.get("enum"))
                .and_then(Value::as_array)
            {
                out.extend(values.iter().filter_map(Value::as_str).map(String::from));
            }
            for value in map.values() {
                collect_tags(value, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_tags(v, key, out)),
        _ => {}
    }
}

#[actix_web::test]
async fn real_answers_and_messages_match_the_schemas() {
    let server = TestServer::start(Backend::Sqlite).await;
    let doc = fetch_document(&server).await;
    let mut checks: Vec<Value> = Vec::new();
    let answer = |path: &str, method: &str, status: u16| -> String {
        format!(
            "#/paths/{}/{method}/responses/{status}/content/application~1json/schema",
            token(path)
        )
    };

    // REST answers, each against the schema documented for its status.
    let nb = server.new_notebook(A, "Schemas").await;
    let rest = [
        (Method::GET, "/health".to_string(), "/health", None),
        (Method::GET, "/health/ready".into(), "/health/ready", None),
        (Method::GET, "/api/config".into(), "/api/config", None),
        (
            Method::GET,
            "/api/environment".into(),
            "/api/environment",
            None,
        ),
        (Method::GET, "/api/notebooks".into(), "/api/notebooks", None),
        (
            Method::GET,
            format!("/api/notebooks/{nb}"),
            "/api/notebooks/{id}",
            None,
        ),
        (
            Method::POST,
            format!("/api/notebooks/{nb}/cells"),
            "/api/notebooks/{id}/cells",
            Some(json!({"code": "x = 1\nprint(x)"})),
        ),
        (
            Method::PUT,
            format!("/api/notebooks/{nb}/name"),
            "/api/notebooks/{id}/name",
            Some(json!({"name": "Renamed"})),
        ),
        (
            Method::PUT,
            format!("/api/notebooks/{nb}/lazy"),
            "/api/notebooks/{id}/lazy",
            Some(json!({"lazy": false})),
        ),
        (
            Method::GET,
            format!("/api/notebooks/{nb}/members"),
            "/api/notebooks/{id}/members",
            None,
        ),
        (
            Method::POST,
            format!("/api/notebooks/{nb}/invites"),
            "/api/notebooks/{id}/invites",
            Some(json!({"role": "viewer"})),
        ),
        (
            Method::GET,
            format!("/api/notebooks/{nb}/invites"),
            "/api/notebooks/{id}/invites",
            None,
        ),
        (
            Method::GET,
            format!("/api/notebooks/{nb}/audit"),
            "/api/notebooks/{id}/audit",
            None,
        ),
        (
            Method::GET,
            format!("/api/notebooks/{nb}/variables"),
            "/api/notebooks/{id}/variables",
            None,
        ),
        (
            Method::GET,
            "/api/notebooks/missing".into(),
            "/api/notebooks/{id}",
            None,
        ),
        (
            Method::POST,
            format!("/api/notebooks/{nb}/cells"),
            "/api/notebooks/{id}/cells",
            Some(json!({"type": "cobol"})),
        ),
        (
            Method::POST,
            "/api/notebooks/import".into(),
            "/api/notebooks/import",
            Some(json!({"format": "py", "content": "# %%\nx = 1\n"})),
        ),
    ];
    for (method, url, template, body) in rest {
        let (status, value) = server.call(method.clone(), &url, Some(A), body).await;
        let verb = method.as_str().to_lowercase();
        assert!(
            doc["paths"][template][&verb]["responses"]
                .get(status.to_string())
                .is_some(),
            "{method} {template} answered {status}, which it does not document: {value}"
        );
        checks.push(json!([answer(template, &verb, status), value]));
    }

    // WebSocket messages of a real session: run, edit, move, rename, delete.
    let token = tokens::token_for(A);
    let mut ws = WsClient::connect(&server.base, &nb).await;
    ws.presence = true;
    ws.send(json!({"type": "authenticate", "token": token}))
        .await;
    let mut seen = vec![ws.json(Duration::from_secs(10)).await];
    assert_eq!(seen[0]["type"], "authenticated", "{}", seen[0]);
    ws.send(json!({"type": "refresh_auth", "token": tokens::token_for(A)}))
        .await;
    seen.extend(
        ws.until(Duration::from_secs(10), |m| m["type"] == "auth_refreshed")
            .await,
    );
    let first = server.notebook(A, &nb).await["cells"][0]["id"]
        .as_str()
        .expect("cell id")
        .to_string();
    let (status, created) = server
        .post(
            &format!("/api/notebooks/{nb}/cells"),
            A,
            json!({"code": "y = 2\nprint(y)\ny"}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let cell = created["cell_id"].as_str().expect("cell_id").to_string();
    seen.extend(
        ws.until(Duration::from_secs(10), |m| m["type"] == "cell_created")
            .await,
    );
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/api/notebooks/{nb}/cells/{cell}/run"),
            Some(A),
            None,
        )
        .await;
    assert_eq!(status, 202);
    seen.extend(
        ws.until(Duration::from_secs(60), |m| {
            m["type"] == "cell_status" && m["status"] == "success"
        })
        .await,
    );
    let (status, _) = server
        .put(
            &format!("/api/notebooks/{nb}/cells/{first}"),
            A,
            json!({"code": "raise ValueError('no')"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .call(
            Method::POST,
            &format!("/api/notebooks/{nb}/cells/{first}/run"),
            Some(A),
            None,
        )
        .await;
    assert_eq!(status, 202);
    seen.extend(
        ws.until(Duration::from_secs(60), |m| m["type"] == "cell_error")
            .await,
    );
    let (status, _) = server
        .post(
            &format!("/api/notebooks/{nb}/cells/{cell}/move"),
            A,
            json!({"before_cell_id": first}),
        )
        .await;
    assert_eq!(status, 200);
    seen.extend(
        ws.until(Duration::from_secs(10), |m| m["type"] == "cell_moved")
            .await,
    );
    ws.send(json!({"type": "focus", "cellId": cell})).await;
    seen.extend(
        ws.until(Duration::from_secs(10), |m| m["type"] == "presence")
            .await,
    );
    ws.send(json!({"type": "run_cell"})).await;
    seen.extend(
        ws.until(Duration::from_secs(10), |m| m["type"] == "error")
            .await,
    );
    let (status, _) = server
        .put(
            &format!("/api/notebooks/{nb}/lazy"),
            A,
            json!({"lazy": true}),
        )
        .await;
    assert_eq!(status, 200);
    seen.extend(
        ws.until(Duration::from_secs(10), |m| m["type"] == "notebook_updated")
            .await,
    );
    let (status, _) = server
        .delete(&format!("/api/notebooks/{nb}/cells/{first}"), A)
        .await;
    assert_eq!(status, 200);
    seen.extend(
        ws.until(Duration::from_secs(10), |m| m["type"] == "cell_deleted")
            .await,
    );

    let kinds: std::collections::BTreeSet<&str> =
        seen.iter().filter_map(|m| m["type"].as_str()).collect();
    for kind in [
        "authenticated",
        "auth_refreshed",
        "cell_status",
        "cell_stdout",
        "cell_error",
        "cell_created",
        "cell_updated",
        "cell_moved",
        "presence",
        "error",
        "notebook_updated",
        "cell_deleted",
    ] {
        assert!(kinds.contains(kind), "the session saw {kind}: {kinds:?}");
    }
    for message in &seen {
        // The Rust type the schema is derived from reads the message and writes it back
        // unchanged: no field is missing from the schema or shaped differently.
        let parsed: WsServerMessage = serde_json::from_value(message.clone())
            .unwrap_or_else(|e| panic!("{message} is not a WsServerMessage: {e}"));
        assert_eq!(
            &serde_json::to_value(&parsed).expect("serializes"),
            message,
            "WsServerMessage loses or changes fields"
        );
        checks.push(json!(["#/components/schemas/WsServerMessage", message]));
    }
    python(
        INSTANCE_VALIDATOR,
        &json!({"doc": doc, "checks": checks}),
        "validating real answers against the document",
    );
    server.finish().await;
}

#[actix_web::test]
async fn docs_page_loads_the_vendored_swagger_ui() {
    let server = TestServer::start(Backend::Sqlite).await;
    let page = server
        .http
        .get(server.url("/api/docs"))
        .send()
        .await
        .expect("request sent");
    assert_eq!(page.status(), 200);
    let kind = page
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(kind.starts_with("text/html"), "{kind}");
    let html = page.text().await.expect("page");
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/swagger-ui/"))
        .collect();
    for needed in [
        "/swagger-ui/swagger-ui-bundle.js",
        "/swagger-ui/swagger-ui.css",
        "/swagger-ui/init.js",
    ] {
        assert!(assets.contains(&needed), "the page loads {needed}: {html}");
    }
    for asset in &assets {
        let resp = server
            .http
            .get(server.url(asset))
            .send()
            .await
            .expect("request sent");
        assert_eq!(resp.status(), 200, "{asset}");
        let body = resp.text().await.expect("asset");
        assert!(body.len() > 100, "{asset} is a real file");
    }
    let init = server
        .http
        .get(server.url("/swagger-ui/init.js"))
        .send()
        .await
        .expect("request sent")
        .text()
        .await
        .expect("init.js");
    assert!(init.contains("/api/openapi.json"), "{init}");
    let bundle = server
        .http
        .get(server.url("/swagger-ui/swagger-ui-bundle.js"))
        .send()
        .await
        .expect("request sent")
        .text()
        .await
        .expect("bundle");
    assert!(
        bundle.contains("SwaggerUIBundle"),
        "the real Swagger UI bundle"
    );
    let license = server
        .http
        .get(server.url("/swagger-ui/LICENSE"))
        .send()
        .await
        .expect("request sent");
    assert_eq!(license.status(), 200, "the licence ships with the files");
    let license = license.text().await.expect("licence");
    assert!(
        license.contains("Apache License"),
        "the licence ships with the files"
    );
    server.finish().await;
}
