//! What each lifecycle does, decided by its index alone: a title that the classifier's
//! keyword rules map to each task type in turn, a description whose length spreads the
//! complexities, the strategy, the usage, whether it fails, and whether its start is raced.

use shared::domain::ExecutionStrategy;

/// Title stems, one per task type (BugFix, Test, Refactor, Documentation, Deployment,
/// Feature); the number appended makes every title unique.
const TITLES: [&str; 6] = [
    "Fix crash in the session handler",
    "Raise test coverage of the parser",
    "Refactor the billing module",
    "Update the README guide",
    "Deploy the release to staging",
    "Implement support for dark mode",
];

/// Description lengths in words: under 20, 80 and 250 words set the complexity base.
const DESCRIPTION_WORDS: [usize; 4] = [8, 40, 120, 260];

const FILLER: [&str; 8] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
];

const STRATEGIES: [ExecutionStrategy; 4] = [
    ExecutionStrategy::SingleShot,
    ExecutionStrategy::Iterative,
    ExecutionStrategy::MultiAgent,
    ExecutionStrategy::HybridExecution,
];

/// Shares of the run, as "one in every N" (0: none).
#[derive(Debug, Clone, Copy)]
pub struct Shares {
    pub fail_every: u64,
    pub race_every: u64,
}

/// One lifecycle's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub index: u64,
    pub title: String,
    pub description: String,
    pub strategy: ExecutionStrategy,
    pub fails: bool,
    pub raced: bool,
    pub tokens: u64,
    pub cost_usd: f64,
}

impl Plan {
    pub fn new(run: &str, index: u64, shares: Shares) -> Self {
        let title = format!("{} {run}-{index}", TITLES[(index % 6) as usize]);
        // Cycles of 6 and 4 are coprime-ish through the offset, so every type meets every length.
        let words = DESCRIPTION_WORDS[((index / 6 + index) % 4) as usize];
        let description = (0..words)
            .map(|i| FILLER[(i + index as usize) % FILLER.len()])
            .collect::<Vec<_>>()
            .join(" ");
        let every = |n: u64, offset: u64| n > 0 && index % n == offset % n;
        let tokens = 500 + (index * 7919) % 20_000;
        Plan {
            index,
            title,
            description,
            strategy: STRATEGIES[((index / 3) % 4) as usize],
            fails: every(shares.fail_every, shares.fail_every.saturating_sub(1)),
            raced: every(shares.race_every, 3),
            tokens,
            // Whole micro-dollars, so sums compare exactly up to float rounding.
            cost_usd: tokens as f64 * 2e-5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_spread_types_lengths_failures_and_races() {
        let shares = Shares {
            fail_every: 5,
            race_every: 10,
        };
        let plans: Vec<Plan> = (0..120).map(|i| Plan::new("r", i, shares)).collect();
        assert_eq!(plans.iter().filter(|p| p.fails).count(), 24);
        assert_eq!(plans.iter().filter(|p| p.raced).count(), 12);
        for (stem, _) in TITLES.iter().zip(0..) {
            for words in DESCRIPTION_WORDS {
                assert!(
                    plans
                        .iter()
                        .any(|p| p.title.starts_with(stem)
                            && p.description.split(' ').count() == words),
                    "{stem} with {words} words"
                );
            }
        }
    }
}
