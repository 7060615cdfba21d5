//! template.yaml and the workspace must agree: one function per function crate, and every
//! variable a function reads set by the template. One test, since it sets process variables.

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::{repository, template_functions};
use orchestration::adapters::clients;
use orchestration::config::{self, ConfigError};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Function {
    code_uri: String,
    env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Functions {
    functions: BTreeMap<String, Function>,
}

/// Wires the function built from `crate_name` exactly as its `main` does.
async fn wire(crate_name: &str) -> Result<(), ConfigError> {
    let aws = clients::load_config().await;
    match crate_name {
        "task-api" => task_api::Deps::from_env(&aws).map(drop),
        "outbox-sweeper" => outbox_sweeper::Sweeper::from_env(&aws).map(drop),
        "ml-classifier" => ml_classifier::consumer(&aws).map(drop),
        "dashboard" => dashboard::consumer(&aws).map(drop),
        "cicd-monitor" => cicd_monitor::consumer(&aws).map(drop),
        other => panic!("no wiring known for the function crate {other}; add it here"),
    }
}

fn crate_of(code_uri: &str) -> String {
    code_uri
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn when_the_template_is_read_should_match_the_function_crates_and_set_every_variable_they_read(
) {
    // Given the template's functions and the workspace's function crates
    let json = template_functions();
    let template: Functions =
        serde_json::from_str(&json).unwrap_or_else(|err| panic!("{err}: {json}"));
    let crates: BTreeSet<String> = std::fs::read_dir(repository().join("functions"))
        .expect("functions/ is readable")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            entry
                .path()
                .join("Cargo.toml")
                .exists()
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect();

    // Then each crate has one function and each function one crate
    let built: BTreeSet<String> = template
        .functions
        .values()
        .map(|f| crate_of(&f.code_uri))
        .collect();
    assert_eq!(
        built, crates,
        "function crates and template functions differ"
    );
    assert_eq!(
        built.len(),
        template.functions.len(),
        "two functions build the same crate"
    );

    // And each function, wired with only its template variables, finds all it reads
    let every_name: BTreeSet<&String> = template
        .functions
        .values()
        .flat_map(|f| f.env.keys())
        .collect();
    for (logical_id, function) in &template.functions {
        for name in &every_name {
            std::env::remove_var(name);
        }
        for (name, value) in &function.env {
            std::env::set_var(name, value);
        }
        config::forget_names_read();

        let wired = wire(&crate_of(&function.code_uri)).await;

        assert!(wired.is_ok(), "{logical_id}: {}", wired.unwrap_err());
        let unset: Vec<&str> = config::names_read()
            .into_iter()
            .filter(|name| !function.env.contains_key(*name))
            .collect();
        assert!(
            unset.is_empty(),
            "{logical_id} reads {unset:?}, which template.yaml does not set"
        );
        assert!(
            !config::names_read().is_empty(),
            "{logical_id} read no configuration at all"
        );
    }
}
