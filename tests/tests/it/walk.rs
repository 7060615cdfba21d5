//! The front page's walk through the lifecycle, run as written against a local server.
//!
//! The walk is the `sh` blocks of the README's "A walk through the lifecycle" section. A
//! comment `# → ...` on the lines right under a command is what that command answers: a
//! status (the first three digits, read off the status line `curl -i` prints),
//! `"field":value` pairs of its JSON, and `` `text` `` it prints (case aside). The test
//! runs the blocks with bash, in order, with `API` pointed at a server of its own, and holds
//! every command so annotated to what the document says.

use std::process::Stdio;
use std::time::Duration;

use tests::{repository, TestEnv};
use tokio::net::TcpListener;
use tokio::process::Command;

/// The whole walk: a few seconds, waits for the consumers included.
const WALK_LIMIT: Duration = Duration::from_secs(120);
const DOCUMENT: &str = "README.md";
const SECTION: &str = "## A walk through the lifecycle";
/// What the walk calls the server; the test's own takes its place.
const WALK_SERVER: &str = "http://127.0.0.1:3000";
const EXPECTATION: &str = "# →";
const MARKER: &str = "@@walk-step";

/// What the document says one command answers.
#[derive(Debug, Default, PartialEq)]
struct Expectation {
    status: Option<u16>,
    /// `"field":value` exactly as the JSON prints it.
    fields: Vec<String>,
    /// Text the command prints, compared regardless of case.
    texts: Vec<String>,
}

/// A command of the walk that the document says something about.
#[derive(Debug)]
struct Step {
    /// Its line in the document, 1-based.
    line: usize,
    command: String,
    expected: Expectation,
}

/// A line of the walk as bash will run it: the step it is, if any.
enum Line {
    Plain(String),
    Step(usize),
}

struct Walk {
    lines: Vec<Line>,
    steps: Vec<Step>,
}

/// Reads a JSON string starting at `start` (a `"`) and returns the index just after it.
fn json_string_end(text: &str, start: usize) -> Option<usize> {
    let mut escaped = false;
    for (offset, c) in text[start + 1..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(start + 1 + offset + 1),
            _ => {}
        }
    }
    None
}

/// Reads what follows `# →`: an optional status, then `"field":value` pairs (alone or in an
/// object) and `` `text` ``; anything else is prose for the reader.
fn parse_expectation(text: &str, expected: &mut Expectation) {
    let text = text.trim();
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let rest = if digits.len() == 3 {
        expected.status = Some(digits.parse().expect("three digits"));
        &text[3..]
    } else {
        text
    };
    let mut prose = String::new();
    let mut at = 0;
    while let Some(found) = rest[at..].find('"') {
        let start = at + found;
        prose.push_str(&rest[at..start]);
        let Some(key_end) = json_string_end(rest, start) else {
            prose.push_str(&rest[start..]);
            at = rest.len();
            break;
        };
        if !rest[key_end..].starts_with(':') {
            prose.push_str(&rest[start..key_end]);
            at = key_end;
            continue;
        }
        let value_start = key_end + 1;
        let value_end = if rest[value_start..].starts_with('"') {
            json_string_end(rest, value_start).unwrap_or(rest.len())
        } else {
            rest[value_start..]
                .find(|c: char| matches!(c, ',' | '}' | ']') || c.is_whitespace())
                .map_or(rest.len(), |end| value_start + end)
        };
        expected.fields.push(rest[start..value_end].to_owned());
        at = value_end;
    }
    prose.push_str(&rest[at..]);
    for text in prose.split('`').skip(1).step_by(2) {
        expected.texts.push(text.to_owned());
    }
}

/// The walk's `sh` blocks of `markdown`, each command with what the document expects of it.
fn read_walk(markdown: &str) -> Walk {
    let mut in_section = false;
    let mut in_block = false;
    let mut walk = Walk {
        lines: Vec::new(),
        steps: Vec::new(),
    };
    // The command the expectation lines below it belong to, while they follow it.
    let mut last_command: Option<usize> = None;
    for (index, line) in markdown.lines().enumerate() {
        let number = index + 1;
        if !in_block && line.starts_with("## ") {
            in_section = line == SECTION;
            continue;
        }
        if !in_section {
            continue;
        }
        if !in_block {
            in_block = line == "```sh";
            continue;
        }
        if line == "```" {
            in_block = false;
            last_command = None;
            continue;
        }
        if let Some(expectation) = line.trim_start().strip_prefix(EXPECTATION) {
            let position = last_command.unwrap_or_else(|| {
                panic!("{DOCUMENT}:{number}: an expectation under no command: {line}")
            });
            let step = match walk.lines[position] {
                Line::Step(step) => step,
                Line::Plain(ref command) => {
                    assert!(
                        !command.trim_end().ends_with('\\'),
                        "{DOCUMENT}:{number}: expectations are for one-line commands"
                    );
                    walk.steps.push(Step {
                        line: number - 1,
                        command: command.clone(),
                        expected: Expectation::default(),
                    });
                    walk.lines[position] = Line::Step(walk.steps.len() - 1);
                    walk.steps.len() - 1
                }
            };
            parse_expectation(expectation, &mut walk.steps[step].expected);
            continue;
        }
        let is_command = !line.trim().is_empty() && !line.trim_start().starts_with('#');
        walk.lines.push(Line::Plain(line.to_owned()));
        last_command = is_command.then(|| walk.lines.len() - 1);
    }
    assert!(!in_block, "{DOCUMENT}: the walk's last block is not closed");
    walk
}

/// The walk as one bash script, every step between markers on lines of their own.
fn script(walk: &Walk, server: &str) -> String {
    let mut script = String::from("set -euo pipefail\n");
    for line in &walk.lines {
        match line {
            Line::Plain(line) => script.push_str(line),
            Line::Step(step) => {
                let command = &walk.steps[*step].command;
                script.push_str(&format!("printf '\\n{MARKER} {step}\\n'\n"));
                script.push_str(command);
                script.push_str(&format!("\nprintf '\\n{MARKER}-end {step}\\n'"));
            }
        }
        script.push('\n');
    }
    script.replace(WALK_SERVER, server)
}

/// What each step printed, from the markers in the script's output.
fn outputs(stdout: &str, steps: usize) -> Vec<Option<String>> {
    (0..steps)
        .map(|step| {
            let begin = format!("\n{MARKER} {step}\n");
            let end = format!("\n{MARKER}-end {step}\n");
            let start = stdout.find(&begin)? + begin.len();
            let length = stdout[start..].find(&end)?;
            Some(stdout[start..start + length].to_owned())
        })
        .collect()
}

/// The status of the first status line in `output`, if any.
fn status(output: &str) -> Option<u16> {
    output
        .lines()
        .find(|line| line.starts_with("HTTP/"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
}

/// Whether `output` prints the pair `field` whole: `"n":1` is not in `"n":10`.
fn prints_field(output: &str, field: &str) -> bool {
    output.match_indices(field).any(|(at, _)| {
        field.ends_with('"')
            || !output[at + field.len()..]
                .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.')
    })
}

/// Every way `output` differs from what the document expects of it.
fn mismatches(expected: &Expectation, output: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(want) = expected.status {
        match status(output) {
            Some(got) if got == want => {}
            Some(got) => problems.push(format!("status {got}, the document says {want}")),
            None => problems.push(format!("no status line, the document says {want}")),
        }
    }
    for field in &expected.fields {
        if !prints_field(output, field) {
            problems.push(format!("no {field}"));
        }
    }
    for text in &expected.texts {
        if !output.to_lowercase().contains(&text.to_lowercase()) {
            problems.push(format!("no `{text}`"));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_readme_walk_runs_against_a_local_server_should_answer_as_it_says() {
    // Given the README's walk and the local server (task API and consumers) on a loopback
    // port of its own, over this test's resources
    let document = repository().join(DOCUMENT);
    let markdown = std::fs::read_to_string(&document).expect("the README reads");
    assert!(
        markdown.contains(WALK_SERVER),
        "the walk no longer calls {WALK_SERVER}"
    );
    let walk = read_walk(&markdown);
    let statuses = walk
        .steps
        .iter()
        .filter(|step| step.expected.status.is_some())
        .count();
    assert!(
        statuses > 0
            && walk
                .steps
                .iter()
                .any(|step| !step.expected.fields.is_empty()),
        "{DOCUMENT}: the walk states no status or field to check: {:?}",
        walk.steps
    );
    let env = TestEnv::new("walk").await;
    let consumers = env.start_consumers(None, Duration::from_secs(1)).await;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("its address");
    let router = dev_server::http::router(env.deps());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // When bash runs the walk's blocks as written, in order
    let run = Command::new("bash")
        .arg("-c")
        .arg(script(&walk, &format!("http://{address}")))
        .current_dir(repository())
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WALK_LIMIT, run).await;
    server.abort();
    drop(consumers);
    env.teardown().await;

    // Then it runs to its end and every command answers what the document says it does
    let output = output
        .unwrap_or_else(|_| panic!("the walk took over {WALK_LIMIT:?}"))
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    let mut problems = Vec::new();
    if !output.status.success() {
        problems.push(format!("the walk stopped ({}): {stderr}", output.status));
    }
    for (step, printed) in walk.steps.iter().zip(outputs(&stdout, walk.steps.len())) {
        let found = match printed {
            None => vec!["it did not run to its end".to_owned()],
            Some(printed) => mismatches(&step.expected, &printed)
                .into_iter()
                .map(|problem| format!("{problem} in:\n{}", printed.trim()))
                .collect(),
        };
        for problem in found {
            problems.push(format!(
                "{DOCUMENT}:{} `{}`: {problem}",
                step.line, step.command
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the walk does not answer as {DOCUMENT} says ({} problems, {} commands checked):\n\n{}",
        problems.len(),
        walk.steps.len(),
        problems.join("\n\n")
    );
    println!(
        "{} commands answered as {DOCUMENT} says ({statuses} statuses)",
        walk.steps.len()
    );
}

#[test]
fn when_an_expectation_names_a_status_fields_and_text_should_read_each() {
    // Given an expectation with a status, a JSON object, a lone pair, quoted text and prose
    let text =
        r#" 409 {"error":"invalid_transition","message":"say `no`"} "n":1.5 `x-id: 7`: again"#;

    // When it is read
    let mut expected = Expectation::default();
    parse_expectation(text, &mut expected);

    // Then each part is what it is, the backquotes inside a JSON string included
    assert_eq!(
        expected,
        Expectation {
            status: Some(409),
            fields: vec![
                r#""error":"invalid_transition""#.to_owned(),
                r#""message":"say `no`""#.to_owned(),
                r#""n":1.5"#.to_owned(),
            ],
            texts: vec!["x-id: 7".to_owned()],
        }
    );
}

#[test]
fn when_a_command_prints_other_values_than_the_document_says_should_name_each() {
    // Given what the document says, and an answer that differs in status and a number
    let expected = Expectation {
        status: Some(201),
        fields: vec![
            r#""version":1"#.to_owned(),
            r#""status":"Pending""#.to_owned(),
        ],
        texts: vec!["Location: /tasks/".to_owned()],
    };
    let printed = "HTTP/1.1 200 OK\nlocation: /tasks/1\n\n{\"status\":\"Pending\",\"version\":10}";

    // When they are compared
    let problems = mismatches(&expected, printed);

    // Then the status and the number are named; the rest holds
    assert_eq!(
        problems,
        vec![
            "status 200, the document says 201".to_owned(),
            r#"no "version":1"#.to_owned(),
        ]
    );
}

#[test]
fn when_the_readme_is_read_should_find_its_walk_and_what_it_expects() {
    // Given the README
    let markdown = std::fs::read_to_string(repository().join(DOCUMENT)).expect("the README reads");

    // When its walk is read
    let walk = read_walk(&markdown);

    // Then it has commands with statuses and fields to hold them to
    assert!(walk.steps.len() >= 10, "{:?}", walk.steps);
    assert!(walk
        .steps
        .iter()
        .any(|step| step.expected.status == Some(409)));
    assert!(walk
        .steps
        .iter()
        .all(|step| step.expected != Expectation::default()));
}
