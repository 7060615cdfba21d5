//! The checked-in OpenAPI document (`openapi.json` at the repository's root) is the one
//! the code generates. `UPDATE_OPENAPI=1 cargo test -p task-api --test openapi` writes it
//! anew.

use std::path::PathBuf;

fn checked_in() -> PathBuf {
    // Cargo sets the variable when it runs tests; the compile-time value may name another
    // checkout that shares the target directory.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    PathBuf::from(manifest_dir).join("../../openapi.json")
}

#[test]
fn the_checked_in_document_should_be_the_one_the_code_generates() {
    let generated = task_api::openapi()
        .to_pretty_json()
        .expect("the document serialises")
        + "\n";
    let path = checked_in();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("openapi.json is writable");
        return;
    }
    let on_disk = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    assert!(
        on_disk == generated,
        "openapi.json differs from what the code generates; write it anew with \
         UPDATE_OPENAPI=1 cargo test -p task-api --test openapi"
    );
}

#[test]
fn the_document_should_describe_every_operation_with_its_errors_and_security() {
    let document = serde_json::to_value(task_api::openapi()).expect("a JSON document");

    assert!(document["openapi"].as_str().unwrap().starts_with("3.1."));
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let operations: Vec<(&str, &str)> = vec![
        ("/tasks", "post"),
        ("/tasks", "get"),
        ("/tasks/{id}", "get"),
        ("/tasks/{id}/classify", "post"),
        ("/tasks/{id}/start", "post"),
        ("/tasks/{id}/complete", "post"),
        ("/tasks/{id}/fail", "post"),
        ("/tasks/{id}/events", "get"),
        ("/dashboard/stats", "get"),
        ("/dashboard/tasks/{id}/events", "get"),
        ("/ops/overview", "get"),
        ("/ops/dead-letters", "get"),
        ("/ops/dead-letters/redrive", "post"),
        ("/ops/dead-letters/discard", "post"),
    ];
    let paths = document["paths"].as_object().unwrap();
    let described: usize = paths
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(described, operations.len(), "{:?}", paths.keys());
    for (path, method) in operations {
        let operation = &document["paths"][path][method];
        assert!(operation["operationId"].is_string(), "{method} {path}");
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.contains_key("401"),
            "{method} {path} names no 401"
        );
        // The operations routes answer for the queues behind them (502) and need the
        // operator scope; a redrive is not keyed (a second one moves nothing twice).
        if path.starts_with("/ops/") {
            for status in ["403", "502"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} names no {status}"
                );
            }
            if method == "post" {
                for status in ["400", "413", "415"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} names no {status}"
                    );
                }
            }
            continue;
        }
        assert!(
            responses.contains_key("500"),
            "{method} {path} names no 500"
        );
        if method == "post" {
            let params = operation["parameters"].as_array().unwrap();
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
                "{method} {path} takes no Idempotency-Key"
            );
            for status in ["413", "415", "422"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} names no {status}"
                );
            }
        }
    }
}
