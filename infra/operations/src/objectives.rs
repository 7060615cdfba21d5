//! Latency objectives: for each consumer, the share of events it must apply within some
//! seconds of their emission (99 % within 5 s, say), as the stack declares them, and how a
//! window of measured event ages meets them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Consumer, OpsError};

/// The stack's defaults: `LatencyObjectivePercent` and each consumer's
/// `<Consumer>LatencyObjectiveSecs`.
pub const DEFAULT_PERCENT: f64 = 99.0;
pub const DEFAULT_WITHIN: [(Consumer, u64); 4] = [
    (Consumer::MlClassifier, 5),
    (Consumer::Dashboard, 5),
    (Consumer::CicdMonitor, 30),
    (Consumer::EventArchive, 10),
];

/// How far back the view measures an objective: the hour a fast burn is judged over.
pub const WINDOW: Duration = Duration::from_secs(3_600);

/// One consumer's objective: `percent` of its events applied within `within`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    pub consumer: Consumer,
    pub percent: f64,
    pub within: Duration,
}

/// Events a consumer applied in a window, and how many of those within its objective.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgeCount {
    pub events: u64,
    pub within: u64,
}

/// An objective as measured over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attainment {
    /// The objective: `target_percent` of events applied within `within_secs`.
    pub target_percent: f64,
    pub within_secs: u64,
    /// The window measured, ending now.
    pub window_secs: u64,
    pub events: u64,
    pub events_within: u64,
    /// Of the window's events, the share applied within the objective (none without events).
    pub attained_percent: Option<f64>,
    /// How fast the window spends the error budget: 1 spends exactly the budget the
    /// objective allows, 14.4 would spend a 30-day budget's 2 % in an hour (the alarm's
    /// threshold).
    pub burn_rate: Option<f64>,
}

/// The burn rate at which the stack's alarm fires (`LatencyBurnRateAlarm`).
pub const FAST_BURN: f64 = 14.4;

impl Objective {
    pub fn attainment(&self, count: AgeCount, window: Duration) -> Attainment {
        let share = (count.events > 0).then(|| count.within as f64 / count.events as f64);
        let budget = 1.0 - self.percent / 100.0;
        Attainment {
            target_percent: self.percent,
            within_secs: self.within.as_secs(),
            window_secs: window.as_secs(),
            events: count.events,
            events_within: count.within,
            attained_percent: share.map(|share| share * 100.0),
            burn_rate: share.map(|share| (1.0 - share) / budget),
        }
    }
}

/// Every consumer's objective, from the stack's variables: `percent` (`LATENCY_OBJECTIVE_PERCENT`)
/// and `within` (`LATENCY_OBJECTIVES`: `ml-classifier:5,dashboard:5,...`, seconds). A
/// consumer left out keeps its default.
pub fn parse(percent: Option<&str>, within: Option<&str>) -> Result<Vec<Objective>, OpsError> {
    let percent = match percent.map(str::trim) {
        None | Some("") => DEFAULT_PERCENT,
        Some(text) => match text.parse::<f64>() {
            Ok(p) if p > 0.0 && p < 100.0 => p,
            _ => {
                return Err(OpsError::usage(format!(
                    "LATENCY_OBJECTIVE_PERCENT: {text:?} is no share between 0 and 100 (99, 99.9)"
                )))
            }
        },
    };
    let mut objectives: Vec<Objective> = DEFAULT_WITHIN
        .into_iter()
        .map(|(consumer, secs)| Objective {
            consumer,
            percent,
            within: Duration::from_secs(secs),
        })
        .collect();
    for entry in within
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let bad = || {
            OpsError::usage(format!(
                "LATENCY_OBJECTIVES: {entry:?} is not <consumer>:<seconds> (dashboard:5)"
            ))
        };
        let (name, secs) = entry.split_once(':').ok_or_else(bad)?;
        let consumer = Consumer::named(name.trim())
            .map_err(|err| OpsError::usage(format!("LATENCY_OBJECTIVES: {err}")))?;
        let secs: u64 = secs.trim().parse().map_err(|_| bad())?;
        if secs == 0 {
            return Err(bad());
        }
        let objective = objectives
            .iter_mut()
            .find(|o| o.consumer == consumer)
            .expect("every consumer has a default");
        objective.within = Duration::from_secs(secs);
    }
    Ok(objectives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_objectives_are_declared_should_read_them_and_keep_defaults_for_the_rest() {
        // Given a target and two consumers' seconds
        // When read
        let objectives = parse(Some("99.9"), Some("dashboard:2, cicd-monitor:60")).unwrap();
        // Then those two take them, the others their defaults, all the target
        let within = |c| {
            objectives
                .iter()
                .find(|o| o.consumer == c)
                .map(|o| (o.percent, o.within.as_secs()))
        };
        assert_eq!(within(Consumer::Dashboard), Some((99.9, 2)));
        assert_eq!(within(Consumer::CicdMonitor), Some((99.9, 60)));
        assert_eq!(within(Consumer::MlClassifier), Some((99.9, 5)));
        assert_eq!(parse(None, None).unwrap().len(), 4);
    }

    #[test]
    fn when_an_objective_is_bad_should_refuse_it_naming_the_variable() {
        for (percent, within) in [
            (Some("100"), None),
            (Some("ninety"), None),
            (None, Some("dashboard")),
            (None, Some("dashboard:0")),
            (None, Some("billing:5")),
        ] {
            let err = parse(percent, within).unwrap_err().to_string();
            assert!(err.starts_with("LATENCY_OBJECTIVE"), "{err}");
        }
    }

    #[test]
    fn when_a_window_is_measured_should_give_the_share_and_the_burn_rate() {
        // Given 99 % within 5 s
        let objective = Objective {
            consumer: Consumer::Dashboard,
            percent: 99.0,
            within: Duration::from_secs(5),
        };
        // When 1,000 events were applied, 980 of them in time
        let attained = objective.attainment(
            AgeCount {
                events: 1_000,
                within: 980,
            },
            WINDOW,
        );
        // Then 98 % was attained, spending the budget twice as fast as allowed
        assert!((attained.attained_percent.unwrap() - 98.0).abs() < 1e-9);
        assert!((attained.burn_rate.unwrap() - 2.0).abs() < 1e-9);
        // And a window without events measures nothing
        let idle = objective.attainment(AgeCount::default(), WINDOW);
        assert_eq!((idle.attained_percent, idle.burn_rate), (None, None));
    }
}
