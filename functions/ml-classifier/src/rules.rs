//! The classification rules: deterministic keyword scoring over title and description.
//!
//! Type: every keyword of a type found in the title scores 2, in the description 1; the
//! highest score wins, ties go to the earlier type in `TYPE_KEYWORDS`, and a task with no
//! keyword at all is a `Feature`.
//!
//! Complexity: the description's length in words sets a base (under 20 words `Simple`,
//! under 80 `Medium`, under 250 `Complex`, else `Epic`); a scope keyword ("migrate",
//! "architecture", ...) raises it one step, a smallness keyword ("typo", "minor", ...)
//! lowers it one step, within `Simple`..`Epic`.

use shared::domain::{TaskComplexity, TaskType};

/// Keywords of each type, in tie-breaking order. Matched against whole lowercase words.
pub const TYPE_KEYWORDS: [(TaskType, &[&str]); 6] = [
    (
        TaskType::BugFix,
        &[
            "fix",
            "bug",
            "crash",
            "crashes",
            "error",
            "broken",
            "regression",
            "fails",
            "failing",
            "defect",
            "panic",
            "wrong",
        ],
    ),
    (
        TaskType::Test,
        &[
            "test", "tests", "testing", "coverage", "e2e", "flaky", "spec", "specs",
        ],
    ),
    (
        TaskType::Refactor,
        &[
            "refactor",
            "cleanup",
            "restructure",
            "rename",
            "simplify",
            "extract",
            "deduplicate",
            "tidy",
            "reorganize",
        ],
    ),
    (
        TaskType::Documentation,
        &[
            "doc",
            "docs",
            "document",
            "documentation",
            "readme",
            "guide",
            "changelog",
            "tutorial",
        ],
    ),
    (
        TaskType::Deployment,
        &[
            "deploy",
            "deployment",
            "release",
            "rollout",
            "provision",
            "infrastructure",
            "kubernetes",
            "helm",
            "terraform",
        ],
    ),
    (
        TaskType::Feature,
        &[
            "add",
            "implement",
            "support",
            "feature",
            "new",
            "create",
            "build",
            "introduce",
            "enable",
        ],
    ),
];

const SCOPE_KEYWORDS: &[&str] = &[
    "migrate",
    "migration",
    "rewrite",
    "redesign",
    "architecture",
    "distributed",
    "concurrency",
    "security",
    "performance",
    "across",
    "entire",
    "platform",
];
const SMALL_KEYWORDS: &[&str] = &[
    "typo", "trivial", "minor", "small", "tiny", "one-line", "quick",
];

const COMPLEXITIES: [TaskComplexity; 4] = [
    TaskComplexity::Simple,
    TaskComplexity::Medium,
    TaskComplexity::Complex,
    TaskComplexity::Epic,
];

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

pub fn classify(title: &str, description: &str) -> (TaskType, TaskComplexity) {
    let title_words = words(title);
    let description_words = words(description);
    (
        task_type(&title_words, &description_words),
        complexity(&title_words, &description_words),
    )
}

fn task_type(title: &[String], description: &[String]) -> TaskType {
    let hits = |keywords: &[&str], words: &[String]| {
        words
            .iter()
            .filter(|w| keywords.contains(&w.as_str()))
            .count()
    };
    let mut best = (TaskType::Feature, 0);
    for (task_type, keywords) in TYPE_KEYWORDS {
        let score = 2 * hits(keywords, title) + hits(keywords, description);
        if score > best.1 {
            best = (task_type, score);
        }
    }
    best.0
}

fn complexity(title: &[String], description: &[String]) -> TaskComplexity {
    let length = description.len();
    let mut level: i32 = match length {
        0..=19 => 0,
        20..=79 => 1,
        80..=249 => 2,
        _ => 3,
    };
    let all = || title.iter().chain(description);
    if all().any(|w| SCOPE_KEYWORDS.contains(&w.as_str())) {
        level += 1;
    }
    if all().any(|w| SMALL_KEYWORDS.contains(&w.as_str())) {
        level -= 1;
    }
    COMPLEXITIES[level.clamp(0, 3) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskComplexity::*;
    use TaskType::*;

    fn words_of(count: usize) -> String {
        vec!["lorem"; count].join(" ")
    }

    #[test]
    fn when_titles_and_descriptions_vary_should_classify_by_the_rules() {
        let long = words_of(100);
        let huge = words_of(300);
        let cases: Vec<(&str, String, TaskType, TaskComplexity)> = vec![
            (
                "Fix crash on login",
                "The app crashes when the password is empty".into(),
                BugFix,
                Simple,
            ),
            (
                "Add dark mode",
                "Users want a dark theme".into(),
                Feature,
                Simple,
            ),
            ("Improve things", String::new(), Feature, Simple),
            (
                "Increase test coverage of the parser",
                words_of(30),
                Test,
                Medium,
            ),
            (
                "Refactor the billing module",
                long.clone(),
                Refactor,
                Complex,
            ),
            (
                "Update README",
                "Document the new flags".into(),
                Documentation,
                Simple,
            ),
            (
                "Deploy to production",
                "Release 2.0 with helm".into(),
                Deployment,
                Simple,
            ),
            (
                "Migrate the entire platform to the new architecture",
                huge.clone(),
                Feature,
                Epic,
            ),
            ("Fix typo in error message", "minor".into(), BugFix, Simple),
            (
                "Fix flaky tests",
                "The integration tests fail randomly".into(),
                Test,
                Simple,
            ),
            ("Rewrite the scheduler", words_of(30), Feature, Complex),
        ];
        for (title, description, task_type, complexity) in cases {
            assert_eq!(
                classify(title, &description),
                (task_type, complexity),
                "{title}"
            );
        }
    }

    #[test]
    fn when_scores_tie_should_prefer_the_earlier_type() {
        // "fix" (BugFix) and "docs" (Documentation) both score 2 in the title.
        assert_eq!(classify("fix docs", "").0, BugFix);
    }
}
