use std::time::Duration;

use futures::future::join_all;
use tests::{act, create_task, TestEnv};

#[tokio::test]
async fn when_twenty_starts_race_should_let_exactly_one_win_and_publish_one_task_started() {
    // Given a classified task
    let env = TestEnv::new("race").await;
    let deps = env.deps();
    let id = create_task(&deps, "alice", "Race").await;
    let (status, _) = act(
        &deps,
        "alice",
        &id,
        "classify",
        r#"{"task_type":"Feature","complexity":"Complex"}"#,
    )
    .await;
    assert_eq!(status, 200);

    // When twenty start requests run at once
    let strategies = ["SingleShot", "Iterative", "MultiAgent", "HybridExecution"];
    let calls = (0..20).map(|i| {
        let deps = deps.clone();
        let id = id.clone();
        let body = format!(r#"{{"strategy":"{}"}}"#, strategies[i % 4]);
        tokio::spawn(async move { act(&deps, "alice", &id, "start", &body).await })
    });
    let results: Vec<(u16, serde_json::Value)> = join_all(calls)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect();

    // Then exactly one succeeds and every other gets a 409
    let winners: Vec<_> = results
        .iter()
        .filter(|(status, _)| *status == 200)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (status, body) in results.iter().filter(|(status, _)| *status != 200) {
        assert_eq!(*status, 409, "{body}");
        assert!(
            matches!(
                body["error"].as_str(),
                Some("version_conflict" | "invalid_transition")
            ),
            "{body}"
        );
    }

    // And exactly one TaskStarted is published, for the winner's task as it started
    let events = env
        .receive(&env.queue_url("Dashboard"), 2, Duration::from_secs(3))
        .await;
    let started: Vec<_> = events
        .iter()
        .filter(|e| e.kind().name() == "TaskStarted")
        .collect();
    assert_eq!(started.len(), 1, "{events:?}");
    let data = serde_json::to_value(&started[0].data).unwrap()["data"].clone();
    assert_eq!(data["task_id"], winners[0].1["id"], "{data}");
    assert_eq!(data["task_type"], winners[0].1["task_type"], "{data}");
    env.teardown().await;
}
