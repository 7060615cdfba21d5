use std::collections::HashMap;
use std::time::Duration;

use lambda_http::http::Method;
use shared::events::{EventEnvelope, TaskEventData};
use tests::{act, call, create_task, TestEnv};

fn by_type(events: &[EventEnvelope]) -> HashMap<(String, &'static str), usize> {
    let mut counts = HashMap::new();
    for event in events {
        *counts
            .entry((event.subject.clone(), event.kind().name()))
            .or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn when_tasks_run_their_lifecycle_should_deliver_each_event_once_to_the_queues_that_admit_it()
{
    // Given
    let env = TestEnv::new("lifecycle").await;
    let deps = env.deps();

    // When one task completes and another fails
    let done = create_task(&deps, "alice", "Fix the login bug").await;
    let broken = create_task(&deps, "alice", "Add dark mode").await;
    for id in [&done, &broken] {
        let (status, task) = act(
            &deps,
            "alice",
            id,
            "classify",
            r#"{"task_type":"BugFix","complexity":"Medium"}"#,
        )
        .await;
        assert_eq!(
            (status, task["status"].as_str()),
            (200, Some("Classified")),
            "{task}"
        );
        let (status, task) = act(&deps, "alice", id, "start", r#"{"strategy":"Iterative"}"#).await;
        assert_eq!(
            (status, task["status"].as_str()),
            (200, Some("InProgress")),
            "{task}"
        );
    }
    let (status, task) = act(
        &deps,
        "alice",
        &done,
        "complete",
        r#"{"tokens_used":4200,"cost_usd":1.25}"#,
    )
    .await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["tokens_used"], 4200);
    let (status, task) = act(
        &deps,
        "alice",
        &broken,
        "fail",
        r#"{"error_message":"tests did not pass"}"#,
    )
    .await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["status"], "Failed");
    assert_eq!(task["tokens_used"], 0);

    // Then each queue holds exactly what its filter policy admits, once each
    let quiet = Duration::from_secs(2);
    let dashboard = env.receive(&env.queue_url("Dashboard"), 6, quiet).await;
    let classifier = env.receive(&env.queue_url("MlClassifier"), 4, quiet).await;
    let cicd = env.receive(&env.queue_url("CicdMonitor"), 1, quiet).await;

    let expect = |pairs: &[(&String, &'static str)]| {
        pairs
            .iter()
            .map(|(id, kind)| (((*id).clone(), *kind), 1))
            .collect::<HashMap<_, _>>()
    };
    assert_eq!(
        by_type(&dashboard),
        expect(&[
            (&done, "TaskCreated"),
            (&done, "TaskStarted"),
            (&done, "TaskCompleted"),
            (&broken, "TaskCreated"),
            (&broken, "TaskStarted"),
            (&broken, "TaskFailed"),
        ])
    );
    assert_eq!(
        by_type(&classifier),
        expect(&[
            (&done, "TaskCreated"),
            (&done, "TaskCompleted"),
            (&broken, "TaskCreated"),
            (&broken, "TaskFailed")
        ])
    );
    assert_eq!(by_type(&cicd), expect(&[(&done, "TaskCompleted")]));

    // And the envelopes carry the contract's attributes, payload and per-task sequence
    for event in &dashboard {
        assert_eq!(event.specversion, "1.0");
        assert_eq!(event.source, "/orchestration/tasks");
        assert_eq!(event.datacontenttype, "application/json");
        assert_eq!(event.task_id().to_string(), event.subject);
        let expected_sequence = match event.kind().name() {
            "TaskCreated" => 1,
            "TaskStarted" => 2,
            _ => 3,
        };
        assert_eq!(event.sequence.number(), expected_sequence, "{event:?}");
        assert_eq!(event.dataschema, event.kind().data_schema(), "{event:?}");
    }
    let completed = cicd[0].clone();
    match completed.data {
        TaskEventData::Completed(data) => {
            assert_eq!(data.tokens_used, 4200);
            assert_eq!(data.cost_usd, 1.25);
            assert_eq!(data.strategy, shared::domain::ExecutionStrategy::Iterative);
            assert_eq!(data.task_type, shared::domain::TaskType::BugFix);
        }
        other => panic!("expected TaskCompleted, got {other:?}"),
    }

    // And nothing is left pending in the outboxes
    for id in [&done, &broken] {
        let item = env.item(id).await;
        assert!(
            !item.contains_key("outbox_pending"),
            "{id} still marked pending"
        );
        assert!(item["outbox"].as_m().unwrap().is_empty());
    }
    let (status, page) = call(&deps, Some("alice"), Method::GET, "/tasks", "").await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    env.teardown().await;
}

#[tokio::test]
async fn when_listing_should_page_a_users_tasks_newest_first_through_the_index() {
    // Given three tasks of alice and one of bob
    let env = TestEnv::new("listing").await;
    let deps = env.deps();
    let mut ids = Vec::new();
    for title in ["first", "second", "third"] {
        ids.push(create_task(&deps, "alice", title).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    create_task(&deps, "bob", "not alice's").await;

    // When alice lists two at a time
    let (status, first) = call(&deps, Some("alice"), Method::GET, "/tasks?limit=2", "").await;
    assert_eq!(status, 200, "{first}");
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (status, second) = call(
        &deps,
        Some("alice"),
        Method::GET,
        &format!("/tasks?limit=2&cursor={cursor}"),
        "",
    )
    .await;
    assert_eq!(status, 200, "{second}");

    // Then she sees her own tasks, newest first, each once
    let listed: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|page| page["items"].as_array().unwrap().iter())
        .map(|task| task["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);

    // And a forged cursor, or alice's cursor in bob's hands, is refused by name
    let (status, error) = call(&deps, Some("alice"), Method::GET, "/tasks?cursor=zz", "").await;
    assert_eq!((status, error["field"].as_str()), (400, Some("cursor")));
    let path = format!("/tasks?cursor={cursor}");
    let (status, error) = call(&deps, Some("bob"), Method::GET, &path, "").await;
    assert_eq!((status, error["field"].as_str()), (400, Some("cursor")));
    env.teardown().await;
}
