//! The audit: the truth is every task of the run as the API reports it at the end; the
//! dashboard's deltas, the consumers' tables, the outboxes, the dead-letter queues and the
//! races are held to it. Each check is one line of the report.

use std::collections::{BTreeMap, HashMap};

use shared::domain::{TaskStatus, TaskType};

use crate::api::{Stats, TaskView};
use crate::aws::{outbox_empty, text, Item};
use crate::lifecycle::{Notes, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// Reported, not judged.
    Note,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub check: String,
    pub expected: String,
    pub observed: String,
    pub verdict: Verdict,
}

fn line(check: &str, expected: impl ToString, observed: impl ToString, ok: bool) -> Line {
    Line {
        check: check.to_owned(),
        expected: expected.to_string(),
        observed: observed.to_string(),
        verdict: if ok { Verdict::Pass } else { Verdict::Fail },
    }
}

fn equal<T: PartialEq + std::fmt::Display>(check: &str, expected: T, observed: T) -> Line {
    let ok = expected == observed;
    line(check, &expected, &observed, ok)
}

/// Counts by name, shown as `name count, ...`.
#[derive(Debug, PartialEq)]
struct Counts(BTreeMap<String, i64>);

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// Everything the audit reads, gathered after the system went quiet.
pub struct Evidence {
    pub outcomes: Vec<Outcome>,
    /// Every task of the run's users, as the API reports it now, by id.
    pub tasks: HashMap<String, TaskView>,
    pub stats_before: Stats,
    pub stats_after: Stats,
    pub examples_before: u64,
    pub examples_after: u64,
    pub builds_before: u64,
    pub builds_after: u64,
    pub archived_before: u64,
    pub archived_after: u64,
    /// Each task's archived events, `(sequence, event id)` in sequence order.
    pub archived: HashMap<String, Vec<(String, String)>>,
    pub task_items: HashMap<String, Item>,
    pub examples: HashMap<String, Item>,
    pub builds: HashMap<String, Item>,
    /// Each dead-letter queue's messages, waiting plus in flight.
    pub dead_letters: Vec<(String, u64)>,
    /// Faults were injected: answers of committed writes that say otherwise are noted,
    /// not failed.
    pub faults: bool,
}

fn finished(status: TaskStatus) -> bool {
    matches!(status, TaskStatus::Completed | TaskStatus::Failed)
}

fn code_changing(task_type: Option<TaskType>) -> bool {
    matches!(
        task_type,
        Some(TaskType::BugFix | TaskType::Feature | TaskType::Refactor | TaskType::Test)
    )
}

/// The dashboard's view of a status: classification emits no event.
fn dashboard_status(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Pending | TaskStatus::Classified => "Pending",
        other => other.as_str(),
    }
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> Counts {
    Counts(
        after
            .keys()
            .chain(before.keys())
            .map(|key| {
                let value = |map: &BTreeMap<String, u64>| map.get(key).copied().unwrap_or(0) as i64;
                (key.clone(), value(after) - value(before))
            })
            .filter(|(_, value)| *value != 0)
            .collect(),
    )
}

fn tally<'a>(keys: impl Iterator<Item = &'a str>) -> Counts {
    let mut counts = BTreeMap::new();
    for key in keys {
        *counts.entry(key.to_owned()).or_insert(0) += 1;
    }
    Counts(counts)
}

pub fn audit(evidence: &Evidence) -> Vec<Line> {
    let mut lines = Vec::new();
    lines.extend(lifecycles(evidence));
    lines.extend(dashboard(evidence));
    lines.extend(records(evidence));
    lines.extend(archive(evidence));
    lines.extend(plumbing(evidence));
    lines.extend(races_and_answers(evidence));
    lines
}

fn lifecycles(e: &Evidence) -> Vec<Line> {
    let planned = e.outcomes.len();
    let ended = e.outcomes.iter().filter(|o| o.error.is_none()).count();
    let as_planned = e
        .outcomes
        .iter()
        .filter(|o| {
            let Some(task) = o.task_id.and_then(|id| e.tasks.get(&id.to_string())) else {
                return false;
            };
            let status = if o.plan.fails {
                TaskStatus::Failed
            } else {
                TaskStatus::Completed
            };
            task.status == status
                && task.tokens_used == Some(o.plan.tokens)
                && task
                    .cost_usd
                    .is_some_and(|c| (c - o.plan.cost_usd).abs() < 1e-9)
        })
        .count();
    let known = e.outcomes.iter().filter_map(|o| o.task_id).count();
    vec![
        line(
            "lifecycles driven to their end",
            planned,
            ended,
            ended == planned,
        ),
        line(
            "final state, tokens and cost as planned (API)",
            planned,
            as_planned,
            as_planned == planned,
        ),
        line(
            "tasks of the run's users",
            known,
            e.tasks.len(),
            e.tasks.len() == known,
        ),
    ]
}

fn dashboard(e: &Evidence) -> Vec<Line> {
    let (before, after) = (&e.stats_before, &e.stats_after);
    let tasks: Vec<&TaskView> = e.tasks.values().collect();
    let done: Vec<&&TaskView> = tasks.iter().filter(|t| finished(t.status)).collect();
    let started: Vec<&&TaskView> = tasks
        .iter()
        .filter(|t| finished(t.status) || t.status == TaskStatus::InProgress)
        .collect();
    let count = |status| tasks.iter().filter(|t| t.status == status).count() as u64;
    let tokens: u64 = done.iter().filter_map(|t| t.tokens_used).sum();
    let cost: f64 = done.iter().filter_map(|t| t.cost_usd).sum();
    let cost_delta = after.cost_usd_total - before.cost_usd_total;
    let type_names: Vec<String> = started
        .iter()
        .map(|t| t.task_type.map(|v| format!("{v:?}")).unwrap_or_default())
        .collect();
    let complexity_names: Vec<String> = started
        .iter()
        .map(|t| t.complexity.map(|v| format!("{v:?}")).unwrap_or_default())
        .collect();
    vec![
        equal(
            "dashboard tasks_total delta",
            tasks.len() as i64,
            after.tasks_total as i64 - before.tasks_total as i64,
        ),
        equal(
            "dashboard completed delta",
            count(TaskStatus::Completed) as i64,
            after.completed as i64 - before.completed as i64,
        ),
        equal(
            "dashboard failed delta",
            count(TaskStatus::Failed) as i64,
            after.failed as i64 - before.failed as i64,
        ),
        equal(
            "dashboard by_status delta",
            tally(tasks.iter().map(|t| dashboard_status(t.status))),
            delta(&after.by_status, &before.by_status),
        ),
        equal(
            "dashboard by_type delta",
            tally(type_names.iter().map(String::as_str)),
            delta(&after.by_type, &before.by_type),
        ),
        equal(
            "dashboard by_complexity delta",
            tally(complexity_names.iter().map(String::as_str)),
            delta(&after.by_complexity, &before.by_complexity),
        ),
        equal(
            "dashboard tokens_used_total delta",
            tokens as i64,
            after.tokens_used_total as i64 - before.tokens_used_total as i64,
        ),
        line(
            "dashboard cost_usd_total delta (±0.00001)",
            format!("{cost:.6}"),
            format!("{cost_delta:.6}"),
            (cost - cost_delta).abs() <= 1e-5,
        ),
    ]
}

fn records(e: &Evidence) -> Vec<Line> {
    let done: Vec<&TaskView> = e.tasks.values().filter(|t| finished(t.status)).collect();
    let examples_right = done
        .iter()
        .filter(|t| {
            e.examples
                .get(&t.id.to_string())
                .and_then(|i| text(i, "outcome"))
                == Some(t.status.as_str())
        })
        .count();
    let examples_stray = e
        .tasks
        .values()
        .filter(|t| !finished(t.status) && e.examples.contains_key(&t.id.to_string()))
        .count();
    let grown = e.examples_after as i64 - e.examples_before as i64;
    let builds_due: Vec<&&TaskView> = done
        .iter()
        .filter(|t| t.status == TaskStatus::Completed && code_changing(t.task_type))
        .collect();
    let builds_right = builds_due
        .iter()
        .filter(|t| e.builds.contains_key(&t.id.to_string()))
        .count();
    let builds_stray = e
        .tasks
        .values()
        .filter(|t| {
            e.builds.contains_key(&t.id.to_string())
                && !(t.status == TaskStatus::Completed && code_changing(t.task_type))
        })
        .count();
    let built = e.builds_after as i64 - e.builds_before as i64;
    vec![
        line(
            "training examples: one per finished task, outcome right",
            format!("{} (table +{})", done.len(), done.len()),
            format!("{examples_right}, {examples_stray} stray (table +{grown})"),
            examples_right == done.len() && examples_stray == 0 && grown == done.len() as i64,
        ),
        line(
            "build requests: one per completed BugFix/Feature/Refactor/Test",
            format!("{} (table +{})", builds_due.len(), builds_due.len()),
            format!("{builds_right}, {builds_stray} stray (table +{built})"),
            builds_right == builds_due.len()
                && builds_stray == 0
                && built == builds_due.len() as i64,
        ),
    ]
}

/// The events a task of `status` has had: created, then started, then finished.
fn events_of(status: TaskStatus) -> usize {
    match status {
        TaskStatus::Pending | TaskStatus::Classified => 1,
        TaskStatus::InProgress => 2,
        TaskStatus::Completed | TaskStatus::Failed => 3,
    }
}

fn archive(e: &Evidence) -> Vec<Line> {
    let expected: usize = e.tasks.values().map(|t| events_of(t.status)).sum();
    let mut kept = 0;
    let mut wrong = 0;
    for task in e.tasks.values() {
        let events = e
            .archived
            .get(&task.id.to_string())
            .map(Vec::as_slice)
            .unwrap_or_default();
        kept += events.len();
        // Sequences 1, 2, 3 each once, and no event id twice.
        let sequences: Vec<u64> = events.iter().filter_map(|(s, _)| s.parse().ok()).collect();
        let mut ids: Vec<&str> = events.iter().map(|(_, id)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let whole = (1..=events_of(task.status) as u64).collect::<Vec<_>>();
        if sequences != whole || ids.len() != events.len() {
            wrong += 1;
        }
    }
    let grown = e.archived_after as i64 - e.archived_before as i64;
    vec![line(
        "event archive: every event once, none missing",
        format!("{expected}, 0 tasks wrong (table +{expected})"),
        format!("{kept}, {wrong} tasks wrong (table +{grown})"),
        kept == expected && wrong == 0 && grown == expected as i64,
    )]
}

fn plumbing(e: &Evidence) -> Vec<Line> {
    let checked = e.task_items.len();
    let pending = e.task_items.values().filter(|i| !outbox_empty(i)).count();
    let mut lines = vec![line(
        "outboxes empty (TasksTable items)",
        format!("{} of {}", e.tasks.len(), e.tasks.len()),
        format!("{} of {checked}", checked - pending),
        pending == 0 && checked == e.tasks.len(),
    )];
    for (queue, messages) in &e.dead_letters {
        lines.push(line(&format!("{queue} empty"), 0, messages, *messages == 0));
    }
    lines
}

fn races_and_answers(e: &Evidence) -> Vec<Line> {
    let races: Vec<_> = e.outcomes.iter().filter_map(|o| o.race.as_ref()).collect();
    let one = races.iter().filter(|r| r.wins == 1).count();
    let several = races.iter().filter(|r| r.wins > 1).count();
    let none = races.len() - one - several;
    let mut notes = Notes::default();
    for outcome in &e.outcomes {
        notes.add(&outcome.notes);
    }
    let tolerated = |count: u32| {
        if e.faults {
            Verdict::Note
        } else if count == 0 {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    };
    vec![
        line(
            "races: exactly one start answered 200",
            races.len(),
            format!("{one} (several: {several}, none: {none})"),
            several == 0 && (none == 0 || e.faults),
        ),
        Line {
            check: "committed writes answered 409".into(),
            expected: "0".into(),
            observed: notes.committed_but_conflict.to_string(),
            verdict: tolerated(notes.committed_but_conflict),
        },
        Line {
            check: "committed writes answered 5xx or not at all".into(),
            expected: "0".into(),
            observed: notes.committed_but_unanswered.to_string(),
            verdict: tolerated(notes.committed_but_unanswered),
        },
        Line {
            check: "calls retried after an error (write had not happened)".into(),
            expected: "-".into(),
            observed: notes.retried.to_string(),
            verdict: Verdict::Note,
        },
    ]
}
