//! The pass/fail gate (`/api/check`, `perfstats check`): expectations on one run
//! (`block.p99 < 200ms`), and regressions against a baseline run
//! (`block.p50=10%`), parsed from text and evaluated on live analyses.
//!
//! # Expectations: `METRIC OP VALUE`
//! - `KIND.STAT`, KIND one of `problem`, `block`, `reveal`, STAT one of `p50`,
//!   `p90`, `p99`, `max` (times: the whole-run latency distribution's, as
//!   `/api/analysis` shows them) or `count` (how many receipts);
//! - `synced.STAT`: per node, the time from its start to `INITIAL_SYNC_COMPLETED`,
//!   over the nodes that synced (`synced.count`: how many did);
//! - `node.NAME.synced`: that one node's;
//! - `rounds_flagged`, `winners_disagreeing`: as in `/api/analysis`;
//! - `nodes`: how many senders reported in the run (the authority included), as
//!   `/api/nodes` lists them.
//!
//! OP is one of `<` `<=` `>` `>=` `==` `!=`. VALUE is a number: with `ms` or `s`
//! for a time, bare (and whole) for a count. A metric with no value (no receipts,
//! no node synced, an unknown node, a node that never synced) fails, saying why.
//!
//! # Regressions: `KIND.STAT=P%`
//! STAT is `p50`, `p90` or `p99`. The check fails only when the 95% bootstrap
//! interval of (run − baseline) at that quantile ([`super::interval`]) lies wholly
//! above P% of the baseline's value: a rise that noise could explain never fails.
//! (With fewer than [`MIN_FOR_INTERVAL`] receipts on a side there is no interval,
//! and the check fails saying so: the gate cannot vouch for the run.) `max` has no
//! regression check: a bootstrap resample never holds a value above the largest
//! seen, so an interval of a maximum is degenerate and cannot tell a real rise from
//! one slow receipt; use `p99`.
//!
//! # Layout
//! - `expression`: the grammar of expectations and regressions.
//! - `metric`: the metrics, their units, and their values in a run.
//! - here: the checks of one request, evaluated into outcomes.

mod expression;
mod metric;

pub use expression::{Expectation, MaxRegression, Op};
pub use metric::{Metric, Stat, Unit};

use super::interval::{self, MIN_FOR_INTERVAL};
use super::live::LiveAnalysis;
use crate::error::Error;
use serde::Serialize;

/// The most expectations and regressions one check may hold together.
pub const MAX_CHECKS: usize = 100;
/// The longest expectation or regression text, in bytes.
pub const MAX_CHECK_BYTES: usize = 1_024;

/// The checks of one request, parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checks {
    /// On the run.
    pub expectations: Vec<Expectation>,
    /// Against the baseline.
    pub regressions: Vec<MaxRegression>,
}

/// How one check came out (`/api/check` `outcomes`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The expectation or regression as given (trimmed).
    pub check: String,
    /// `expect` or `max_regression`.
    pub rule: &'static str,
    /// The metric's name, e.g. `block.p99`.
    pub metric: String,
    /// The unit of `value` and `bound`.
    pub unit: Unit,
    /// An expectation's: the run's value. A regression's: run − baseline, ms.
    /// Null when there is none.
    pub value: Option<f64>,
    /// An expectation's OP. A regression's is `<=`: the rise must not be beyond
    /// noise above the bound.
    pub op: &'static str,
    /// An expectation's VALUE. A regression's: P% of the baseline's value, ms
    /// (null when the baseline has none).
    pub bound: Option<f64>,
    /// A regression's 95% interval of run − baseline, ms; null for an expectation
    /// or with too few receipts.
    pub interval_ms: Option<[f64; 2]>,
    /// A regression's baseline value, ms; null for an expectation.
    pub baseline: Option<f64>,
    /// Whether it passed.
    pub passed: bool,
    /// Why, in a sentence.
    pub message: String,
}

/// All checks evaluated (`/api/check`, with the runs added by the caller).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked {
    /// Whether every check passed.
    pub passed: bool,
    /// How many checks there were.
    pub total: usize,
    /// How many failed.
    pub failed: usize,
    /// Expectations in the order given, then regressions in theirs.
    pub outcomes: Vec<Outcome>,
}

fn shown(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Ms => format!("{value:.2} ms"),
        Unit::Count => format!("{value}"),
    }
}

impl Checks {
    /// Parses every expectation and regression; a regression needs a baseline, and
    /// a request at least one and at most [`MAX_CHECKS`] checks.
    pub fn parse(
        expect: &[String],
        max_regression: &[String],
        with_baseline: bool,
    ) -> Result<Checks, Error> {
        let total = expect.len() + max_regression.len();
        if total == 0 {
            return Err(Error::BadRequest(
                "expect: at least one expectation (or max_regression) is required".into(),
            ));
        }
        if total > MAX_CHECKS {
            return Err(Error::BadRequest(format!(
                "expect: at most {MAX_CHECKS} expectations and regressions together (got {total})"
            )));
        }
        if let Some(long) = expect
            .iter()
            .chain(max_regression)
            .find(|text| text.len() > MAX_CHECK_BYTES)
        {
            return Err(Error::BadRequest(format!(
                "expect: a check is at most {MAX_CHECK_BYTES} bytes (one has {})",
                long.len()
            )));
        }
        if !max_regression.is_empty() && !with_baseline {
            return Err(Error::BadRequest(
                "max_regression: needs a baseline (the run to compare with)".into(),
            ));
        }
        let regressions: Vec<MaxRegression> = max_regression
            .iter()
            .map(|text| MaxRegression::parse(text))
            .collect::<Result<_, _>>()?;
        // One allowance a metric: each costs two bootstraps under the run's analysis
        // lock, so at most 9 (3 kinds × 3 quantiles), not 100.
        for (at, regression) in regressions.iter().enumerate() {
            if regressions[..at]
                .iter()
                .any(|before| (before.kind, before.stat) == (regression.kind, regression.stat))
            {
                return Err(Error::BadRequest(format!(
                    "max_regression: {} is given twice (one allowance a metric)",
                    Metric::Latency(regression.kind, regression.stat).name()
                )));
            }
        }
        Ok(Checks {
            expectations: expect
                .iter()
                .map(|text| Expectation::parse(text))
                .collect::<Result<_, _>>()?,
            regressions,
        })
    }

    /// Evaluates the expectations on `run` and the regressions of `run` against
    /// `baseline` (a regression without a baseline fails).
    pub fn evaluate(&self, run: &LiveAnalysis, baseline: Option<&LiveAnalysis>) -> Checked {
        let mut outcomes: Vec<Outcome> = self
            .expectations
            .iter()
            .map(|expectation| expect(expectation, run))
            .collect();
        outcomes.extend(
            self.regressions
                .iter()
                .map(|regression| regressed(regression, run, baseline)),
        );
        let failed = outcomes.iter().filter(|outcome| !outcome.passed).count();
        Checked {
            passed: failed == 0,
            total: outcomes.len(),
            failed,
            outcomes,
        }
    }
}

fn expect(expectation: &Expectation, run: &LiveAnalysis) -> Outcome {
    let (metric, unit) = (expectation.metric.name(), expectation.metric.unit());
    let (symbol, bound) = (expectation.op.symbol(), expectation.bound);
    let measured = expectation.metric.measure(run);
    let passed = measured
        .as_ref()
        .is_ok_and(|value| expectation.op.holds(*value, bound));
    let message = match &measured {
        Err(why) => format!("{metric}: no value ({why})"),
        Ok(value) => format!(
            "{metric} = {}, {}{symbol} {}",
            shown(unit, *value),
            if passed { "" } else { "not " },
            shown(unit, bound)
        ),
    };
    Outcome {
        check: expectation.text.clone(),
        rule: "expect",
        metric,
        unit,
        value: measured.ok(),
        op: symbol,
        bound: Some(bound),
        interval_ms: None,
        baseline: None,
        passed,
        message,
    }
}

fn regressed(
    regression: &MaxRegression,
    run: &LiveAnalysis,
    baseline: Option<&LiveAnalysis>,
) -> Outcome {
    let metric = Metric::Latency(regression.kind, regression.stat);
    let name = metric.name();
    let fraction = regression.stat.fraction().expect("a quantile");
    let mut outcome = Outcome {
        check: regression.text.clone(),
        rule: "max_regression",
        metric: name.clone(),
        unit: Unit::Ms,
        value: None,
        op: "<=",
        bound: None,
        interval_ms: None,
        baseline: None,
        passed: false,
        message: String::new(),
    };
    let Some(baseline) = baseline else {
        outcome.message = format!("{name}: no baseline to compare with");
        return outcome;
    };
    let (now, before) = (metric.measure(run), metric.measure(baseline));
    let (now, before) = match (now, before) {
        (Ok(now), Ok(before)) => (now, before),
        (Err(why), _) => {
            outcome.message = format!("{name}: no value ({why})");
            return outcome;
        }
        (_, Err(why)) => {
            outcome.message = format!("{name}: no value in the baseline ({why})");
            return outcome;
        }
    };
    let allowed = before * regression.percent / 100.0;
    let (in_run, in_baseline) = (
        run.distribution(regression.kind),
        baseline.distribution(regression.kind),
    );
    // The same seed as `compare` uses, so both show the same median interval.
    let seed = interval::seed(in_baseline, in_run, regression.kind as u64);
    let ci = interval::quantile_delta_ci(in_baseline, in_run, fraction, seed);
    outcome.value = Some(now - before);
    outcome.bound = Some(allowed);
    outcome.baseline = Some(before);
    outcome.interval_ms = ci;
    let rise = format!(
        "{name} changed by {:+.2} ms ({} → {})",
        now - before,
        shown(Unit::Ms, before),
        shown(Unit::Ms, now)
    );
    let allowance = format!(
        "{allowed:.2} ms ({}% of the baseline's)",
        regression.percent
    );
    outcome.message = match ci {
        None => format!(
            "{rise}: too few receipts for an interval (run {}, baseline {}; each needs {MIN_FOR_INTERVAL})",
            in_run.count(),
            in_baseline.count()
        ),
        Some([low, high]) => {
            outcome.passed = low <= allowed;
            if outcome.passed {
                format!(
                    "{rise}, 95% interval [{low:+.2}, {high:+.2}] ms: not wholly above {allowance}"
                )
            } else {
                format!("{rise}, 95% interval [{low:+.2}, {high:+.2}] ms: wholly above {allowance}")
            }
        }
    };
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::Event;
    use crate::report::Report;

    const MS: i64 = 1_000_000;

    /// Adds reports `(ms, sender, event, message)` to `live` in order.
    fn add(live: &mut LiveAnalysis, reports: &[(i64, &str, Event, &str)]) {
        for (at, sender, event, message) in reports {
            let seq = live.reports() + 1;
            live.add(&Report {
                seq,
                run: 1,
                time_unix_nano: at * MS,
                received_unix_nano: 0,
                sender: (*sender).into(),
                event: *event,
                message: (*message).into(),
                report_id: seq.to_string(),
            });
        }
    }

    /// Authority `ra`; nodes a, b, c and `d.x<y`, started at 0; a synced at 100 ms,
    /// b at 250, d.x<y at 400, c never. Ten block rounds that a, b, c, d.x<y receive
    /// after `scale` × 10, 20, 30, 40 ms; one problem round only a and b receive
    /// (5 ms), in which they name different winners, and which c misses (it receives
    /// problems: once before the round).
    fn known_run(scale: i64) -> LiveAnalysis {
        let mut live = LiveAnalysis::default();
        let nodes = ["a", "b", "c", "d.x<y"];
        for node in ["ra"].iter().chain(&nodes) {
            add(&mut live, &[(0, node, Event::Libp2pNodeIdKnown, "id")]);
        }
        for (node, at) in [("a", 100), ("b", 250), ("d.x<y", 400)] {
            add(
                &mut live,
                &[(at, node, Event::InitialSyncCompleted, "synced")],
            );
        }
        for round in 0..10 {
            let sent = 1_000 + round * 1_000;
            add(&mut live, &[(sent, "ra", Event::RaNewBlockSent, "block")]);
            for (index, node) in nodes.iter().enumerate() {
                let at = sent + scale * 10 * (index as i64 + 1);
                add(&mut live, &[(at, node, Event::NewBlockReceived, "block")]);
            }
        }
        add(
            &mut live,
            &[
                // c receives problems (this one before any is sent), so it can miss one.
                (19_000, "c", Event::SimtaskReceived, "early"),
                (20_000, "ra", Event::RaNewProblemSent, "problem"),
                (20_005, "a", Event::SimtaskReceived, "task"),
                (20_005, "b", Event::SimtaskReceived, "task"),
                (20_100, "a", Event::BlockWinnerFound, "a"),
                (20_100, "b", Event::BlockWinnerFound, "b"),
            ],
        );
        live
    }

    fn checked(run: &LiveAnalysis, expect: &[&str]) -> Checked {
        let expect: Vec<String> = expect.iter().map(|text| text.to_string()).collect();
        Checks::parse(&expect, &[], false)
            .unwrap()
            .evaluate(run, None)
    }

    #[test]
    fn every_metric_has_its_value_in_a_known_run() {
        let run = known_run(1);
        // (expectation, its value: exact, or within the buckets' 0.4%, or none)
        for (text, value, passed) in [
            ("block.count == 40", Some(40.0), true),
            ("block.max == 40ms", Some(40.0), true),
            ("block.max == 0.04s", Some(40.0), true),
            ("block.p50 < 21ms", Some(20.0), true),
            ("block.p90 > 41ms", Some(40.0), false),
            ("block.p99 <= 40ms", Some(40.0), true),
            ("problem.count == 2", Some(2.0), true),
            ("problem.p50 >= 5.1ms", Some(5.0), false),
            ("reveal.count == 0", Some(0.0), true),
            ("reveal.p50 < 1s", None, false),
            ("reveal.max != 1s", None, false),
            ("rounds_flagged == 1", Some(1.0), true),
            ("winners_disagreeing == 0", Some(1.0), false),
            ("nodes >= 5", Some(5.0), true),
            ("synced.count == 3", Some(3.0), true),
            ("synced.p50 == 250ms", Some(250.0), true),
            ("synced.p90 == 400ms", Some(400.0), true),
            ("synced.p99 < 0.4s", Some(400.0), false),
            ("synced.max < 5s", Some(400.0), true),
            ("node.a.synced == 100ms", Some(100.0), true),
            ("node.d.x<y.synced < 300ms", Some(400.0), false),
            ("node.c.synced < 1s", None, false),
            ("node.zz.synced < 1s", None, false),
        ] {
            let outcome = &checked(&run, &[text]).outcomes[0];
            match (value, outcome.value) {
                (Some(expected), Some(got)) => assert!(
                    (got - expected).abs() <= expected * 0.004,
                    "{text}: {got} vs {expected}"
                ),
                (expected, got) => assert_eq!(got, expected, "{text}"),
            }
            assert_eq!(outcome.passed, passed, "{text}: {}", outcome.message);
            assert_eq!((outcome.rule, outcome.check.as_str()), ("expect", text));
        }
    }

    #[test]
    fn a_metric_without_a_value_fails_saying_why() {
        let run = known_run(1);
        let answer = checked(
            &run,
            &[
                "reveal.p99 < 1s",
                "node.c.synced < 1s",
                "node.zz.synced < 1s",
                "nodes == 5",
            ],
        );
        let messages: Vec<&str> = answer.outcomes.iter().map(|o| o.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "reveal.p99: no value (no reveal receipts in the run)",
                "node.c.synced: no value (c never reported INITIAL_SYNC_COMPLETED)",
                "node.zz.synced: no value (no node zz in the run)",
                "nodes = 5, == 5",
            ]
        );
        assert_eq!((answer.passed, answer.total, answer.failed), (false, 4, 3));
        let empty = checked(
            &LiveAnalysis::default(),
            &["synced.p50 < 1s", "synced.count == 0"],
        );
        assert_eq!(
            empty.outcomes[0].message,
            "synced.p50: no value (no node reported INITIAL_SYNC_COMPLETED)"
        );
        assert!(empty.outcomes[1].passed);
    }

    #[test]
    fn a_regression_metric_is_allowed_once() {
        let twice = ["block.p50=10%".to_string(), "block.p50=20%".to_string()];
        let Err(refused) = Checks::parse(&[], &twice, true) else {
            panic!("a metric given twice is refused");
        };
        assert!(
            refused.to_string().contains("block.p50 is given twice"),
            "{refused}"
        );
        let each = ["block.p50=10%".to_string(), "block.p99=10%".to_string()];
        assert!(Checks::parse(&[], &each, true).is_ok());
    }

    #[test]
    fn an_outcome_serialises_to_the_documented_shape() {
        let answer = checked(&known_run(1), &["block.max < 30ms"]);
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({
                "passed": false,
                "total": 1,
                "failed": 1,
                "outcomes": [{
                    "check": "block.max < 30ms",
                    "rule": "expect",
                    "metric": "block.max",
                    "unit": "ms",
                    "value": 40.0,
                    "op": "<",
                    "bound": 30.0,
                    "interval_ms": null,
                    "baseline": null,
                    "passed": false,
                    "message": "block.max = 40.00 ms, not < 30.00 ms",
                }],
            })
        );
    }

    fn regression(run: &LiveAnalysis, baseline: Option<&LiveAnalysis>, text: &str) -> Outcome {
        let checks = Checks::parse(&[], &[text.to_string()], true).unwrap();
        checks.evaluate(run, baseline).outcomes.remove(0)
    }

    #[test]
    fn a_regression_fails_only_when_its_interval_is_wholly_above_the_bound() {
        let baseline = known_run(1);
        let doubled = known_run(2);
        // Every block latency doubled: the median goes from 20 to 40 ms.
        let outcome = regression(&doubled, Some(&baseline), "block.p50=10%");
        assert!(!outcome.passed, "{}", outcome.message);
        let [low, _] = outcome.interval_ms.unwrap();
        let bound = outcome.bound.unwrap();
        assert!(low > bound, "{low} > {bound}");
        assert!((bound - 2.0).abs() < 0.01, "10% of 20 ms: {bound}");
        assert!((outcome.value.unwrap() - 20.0).abs() < 0.2, "{outcome:?}");
        assert!(
            outcome
                .message
                .contains("wholly above 2.00 ms (10% of the baseline's)")
        );
        // Allowing 150% lets the doubling through; a run against itself passes at 0%.
        assert!(regression(&doubled, Some(&baseline), "block.p99=150%").passed);
        let same = regression(&baseline, Some(&baseline), "block.p90=0%");
        assert!(same.passed, "{}", same.message);
        // Getting faster is never a regression.
        assert!(regression(&baseline, Some(&doubled), "block.p50=0%").passed);
    }

    #[test]
    fn a_regression_without_an_interval_fails_saying_why() {
        let run = known_run(1);
        let too_few = regression(&run, Some(&run), "problem.p50=10%");
        assert!(!too_few.passed);
        assert!(
            too_few
                .message
                .contains("too few receipts for an interval (run 2, baseline 2; each needs 10)"),
            "{}",
            too_few.message
        );
        assert_eq!(too_few.interval_ms, None);
        let none = regression(&run, Some(&LiveAnalysis::default()), "block.p50=10%");
        assert_eq!(
            none.message,
            "block.p50: no value in the baseline (no block receipts in the run)"
        );
        let unbased = regression(&run, None, "block.p50=10%");
        assert_eq!(unbased.message, "block.p50: no baseline to compare with");
        assert!(!none.passed && !unbased.passed);
    }

    #[test]
    fn a_request_needs_one_to_a_hundred_checks_and_a_baseline_for_regressions() {
        let refused =
            |expect: Vec<String>, regress: Vec<String>, baseline: bool| match Checks::parse(
                &expect, &regress, baseline,
            ) {
                Err(Error::BadRequest(message)) => message,
                other => panic!("{other:?}"),
            };
        assert!(refused(vec![], vec![], true).contains("at least one"));
        let many = vec!["nodes > 0".to_string(); MAX_CHECKS + 1];
        assert!(refused(many, vec![], false).contains("at most 100"));
        let long = format!("node.{}.synced < 1s", "n".repeat(MAX_CHECK_BYTES));
        assert!(refused(vec![long], vec![], false).contains("at most 1024 bytes"));
        assert_eq!(
            refused(vec![], vec!["block.p50=10%".into()], false),
            "max_regression: needs a baseline (the run to compare with)"
        );
        let parsed = Checks::parse(&["nodes > 0".into()], &["block.p50=10%".into()], true).unwrap();
        assert_eq!(
            (parsed.expectations.len(), parsed.regressions.len()),
            (1, 1)
        );
    }
}
