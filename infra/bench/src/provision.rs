//! The template's resources on the emulators, through `infra/provision.py`: each
//! function's variables, its queue, and the topic.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

pub struct Provisioned {
    /// Function logical id to (crate name, variables).
    pub functions: BTreeMap<String, (String, BTreeMap<String, String>)>,
    /// Function logical id to (queue URL, queue ARN) of its SQS event source.
    pub queues: BTreeMap<String, (String, String)>,
    pub topic_arn: String,
}

pub fn provision(python: &str, script: &str, prefix: &str) -> Result<Provisioned, String> {
    let up = run(python, script, &["up", "--prefix", prefix])?;
    let functions = run(python, script, &["functions", "--prefix", prefix])?;

    let resources = up["resources"]
        .as_object()
        .ok_or("provision.py up: no resources")?;
    let arn_of_url = |url: &str| {
        resources
            .values()
            .find(|r| r["url"].as_str() == Some(url))
            .and_then(|r| r["arn"].as_str())
            .map(str::to_owned)
    };
    let mut queues = BTreeMap::new();
    for source in up["event_sources"].as_array().into_iter().flatten() {
        let function = source["function"]
            .as_str()
            .ok_or("event source without function")?;
        let url = source["queue_url"]
            .as_str()
            .ok_or("event source without queue")?;
        let arn = arn_of_url(url).ok_or_else(|| format!("no ARN for queue {url}"))?;
        queues.insert(function.to_owned(), (url.to_owned(), arn));
    }
    let topic_arn = resources
        .get("EventsTopic")
        .and_then(|topic| topic["arn"].as_str())
        .ok_or("provision.py up: no EventsTopic")?
        .to_owned();

    let mut by_function = BTreeMap::new();
    for (id, function) in functions["functions"]
        .as_object()
        .ok_or("provision.py functions: no functions")?
    {
        let code_uri = function["code_uri"]
            .as_str()
            .ok_or_else(|| format!("{id}: no CodeUri"))?;
        let crate_name = code_uri
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(code_uri);
        let env = function["env"]
            .as_object()
            .ok_or_else(|| format!("{id}: no variables"))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        by_function.insert(id.clone(), (crate_name.to_owned(), env));
    }
    Ok(Provisioned {
        functions: by_function,
        queues,
        topic_arn,
    })
}

fn run(python: &str, script: &str, args: &[&str]) -> Result<Value, String> {
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .map_err(|err| format!("{python} {script}: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "provision.py {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|err| format!("provision.py output: {err}"))
}
