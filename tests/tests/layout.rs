//! The workspace's code keeps its layers: within each crate no modules import each other
//! in a circle (`infra/module-cycles.py` reads every member's `src/`).

use std::process::Command;

use tests::repository;

#[test]
fn when_the_crates_modules_are_read_should_find_no_import_circle() {
    let root = repository();
    let output = Command::new("python3")
        .arg(root.join("infra/module-cycles.py"))
        .current_dir(&root)
        .output()
        .expect("python3 runs infra/module-cycles.py");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("functions/task-api/src"), "{report}");
}
