//! template.yaml and the workspace must agree: one function per function crate, and every
//! variable a function's settings read set by the template for that function.

use std::collections::{BTreeMap, BTreeSet};

use cicd_monitor::CicdSettings;
use dashboard::DashboardSettings;
use dev_server::functions::crate_name;
use ml_classifier::ClassifierSettings;
use outbox_sweeper::SweeperSettings;
use serde::Deserialize;
use shared::settings::{Settings, Variables};
use task_api::ApiSettings;
use tests::{repository, template_functions};

#[derive(Debug, Deserialize)]
struct Function {
    code_uri: String,
    env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Functions {
    functions: BTreeMap<String, Function>,
}

/// Reads `S` from exactly the template's variables of one function; returns what is wrong.
fn configure<S: Settings>(env: &BTreeMap<String, String>) -> Vec<String> {
    let variables = Variables::new(env.clone());
    let mut problems = Vec::new();
    if let Err(err) = S::from_variables(&variables) {
        problems.push(err.to_string());
    }
    let declared: BTreeSet<&str> = S::variables().into_iter().collect();
    for name in variables.names_read() {
        if !declared.contains(name) {
            problems.push(format!("reads {name} but does not list it"));
        }
    }
    for name in declared {
        if !env.contains_key(name) {
            problems.push(format!("reads {name}, which template.yaml does not set"));
        }
    }
    problems
}

#[test]
fn when_the_template_is_read_should_match_the_function_crates_and_set_every_variable_they_read() {
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
        .map(|f| crate_name(&f.code_uri).to_owned())
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

    // And each function's settings, given only its template variables, find all they read
    for (logical_id, function) in &template.functions {
        let problems = match crate_name(&function.code_uri) {
            "task-api" => configure::<ApiSettings>(&function.env),
            "outbox-sweeper" => configure::<SweeperSettings>(&function.env),
            "ml-classifier" => configure::<ClassifierSettings>(&function.env),
            "dashboard" => configure::<DashboardSettings>(&function.env),
            "cicd-monitor" => configure::<CicdSettings>(&function.env),
            other => panic!("no settings known for the function crate {other}; add them here"),
        };
        assert!(problems.is_empty(), "{logical_id}: {problems:?}");
    }
}
