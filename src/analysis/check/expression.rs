//! The grammar: `METRIC OP VALUE` expectations and `KIND.STAT=P%` regressions,
//! parsed into what [`super::Checks`] evaluates; errors name the text and the rule.

use super::metric::{METRICS, Metric, Stat, Unit};
use crate::analysis::RoundKind;
use crate::error::Error;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// Longest first, so that `<=` is not read as `<`.
    const ALL: [(&'static str, Op); 6] = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];

    /// How it is written.
    pub fn symbol(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .expect("every op")
            .0
    }

    /// Whether `value OP bound`.
    pub fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Op::Lt => value < bound,
            Op::Le => value <= bound,
            Op::Gt => value > bound,
            Op::Ge => value >= bound,
            Op::Eq => value == bound,
            Op::Ne => value != bound,
        }
    }
}

/// One parsed `METRIC OP VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// As given, trimmed.
    pub text: String,
    /// What it measures.
    pub metric: Metric,
    /// How the value must compare.
    pub op: Op,
    /// VALUE, in the metric's unit (times in ms).
    pub bound: f64,
}

/// One parsed `KIND.STAT=P%`.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxRegression {
    /// As given, trimmed.
    pub text: String,
    /// Which latencies.
    pub kind: RoundKind,
    /// Which quantile (p50, p90 or p99).
    pub stat: Stat,
    /// The rise allowed, percent of the baseline's value.
    pub percent: f64,
}

/// A non-negative decimal number (`12`, `0.05`), without sign or exponent.
fn number(text: &str) -> Option<f64> {
    let plain = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.chars().any(|c| c.is_ascii_digit());
    text.parse().ok().filter(|_| plain)
}

/// Where the operator of `text` begins: for `node.NAME.synced`, after the first
/// `.synced` that an operator follows (a name may hold any character).
fn operator_at(text: &str) -> Option<usize> {
    let is_op = |c: char| "<>=!".contains(c);
    if text.starts_with("node.") {
        for (at, marker) in text.match_indices(".synced") {
            let rest = &text[at + marker.len()..];
            if rest.trim_start().starts_with(is_op) {
                return Some(text.len() - rest.trim_start().len());
            }
        }
    }
    text.find(is_op)
}

impl Expectation {
    /// Parses `METRIC OP VALUE`; the error names the expression and the rule.
    pub fn parse(given: &str) -> Result<Expectation, Error> {
        let text = given.trim();
        let bad = |rule: String| Error::BadRequest(format!("expect {text:?}: {rule}"));
        if text.is_empty() {
            return Err(bad("empty: the form is METRIC OP VALUE".into()));
        }
        let at = operator_at(text).ok_or_else(|| {
            bad("no operator: the form is METRIC OP VALUE, OP one of < <= > >= == !=".into())
        })?;
        let (name, rest) = (text[..at].trim(), &text[at..]);
        let (symbol, op) = Op::ALL
            .iter()
            .find(|(symbol, _)| rest.starts_with(symbol))
            .ok_or_else(|| {
                bad("the operator must be one of < <= > >= == != (= alone is not one)".into())
            })?;
        let metric = Metric::parse(name)
            .ok_or_else(|| bad(format!("unknown metric {name:?}: metrics are {METRICS}")))?;
        let value = rest[symbol.len()..].trim();
        let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let (amount, unit) = (digits.trim_end(), &value[digits.len()..]);
        let amount = number(amount).ok_or_else(|| {
            bad(format!(
                "{value:?} is not a value: VALUE is a number, with ms or s for a time"
            ))
        })?;
        let bound = match (metric.unit(), unit) {
            (Unit::Ms, "ms") => amount,
            (Unit::Ms, "s") => amount * 1_000.0,
            (Unit::Ms, "") => {
                return Err(bad(format!(
                    "{name} is a time: give VALUE with a unit, ms or s (e.g. 200ms)"
                )));
            }
            (Unit::Ms, other) => {
                return Err(bad(format!("unknown unit {other:?}: a time takes ms or s")));
            }
            (Unit::Count, "") if amount.fract() == 0.0 => amount,
            (Unit::Count, "") => {
                return Err(bad(format!("{name} is a count: VALUE is a whole number")));
            }
            (Unit::Count, _) => {
                return Err(bad(format!(
                    "{name} is a count: give VALUE as a bare number, without a unit"
                )));
            }
        };
        Ok(Expectation {
            text: text.to_string(),
            metric,
            op: *op,
            bound,
        })
    }
}

impl MaxRegression {
    /// Parses `KIND.STAT=P%`; the error names the text and the rule.
    pub fn parse(given: &str) -> Result<MaxRegression, Error> {
        let text = given.trim();
        let bad = |rule: String| Error::BadRequest(format!("max_regression {text:?}: {rule}"));
        let form = "the form is KIND.STAT=P% (e.g. block.p50=10%)";
        let (name, percent) = text.split_once('=').ok_or_else(|| bad(form.into()))?;
        let (name, percent) = (name.trim(), percent.trim());
        let (kind, stat) = match Metric::parse(name) {
            Some(Metric::Latency(_, Stat::Max)) => {
                return Err(bad(
                    "max has no regression check: a bootstrap resample never exceeds the \
                     largest value seen, so its interval cannot tell a real rise from one \
                     slow receipt; use p99"
                        .into(),
                ));
            }
            Some(Metric::Latency(kind, stat)) if stat.fraction().is_some() => (kind, stat),
            _ => {
                return Err(bad(format!(
                    "{name:?} has no regression check: only KIND.p50, KIND.p90 and KIND.p99 \
                     (KIND problem, block or reveal) do"
                )));
            }
        };
        let percent = percent
            .strip_suffix('%')
            .and_then(|amount| number(amount.trim_end()))
            .ok_or_else(|| bad(format!("P must be a percentage, e.g. 10% ({form})")))?;
        Ok(MaxRegression {
            text: text.to_string(),
            kind,
            stat,
            percent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Expectation {
        Expectation::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn refused(text: &str) -> String {
        match Expectation::parse(text) {
            Err(Error::BadRequest(message)) => message,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn expectations_parse_with_or_without_spaces_and_times_become_ms() {
        for (text, metric, op, bound) in [
            (
                "block.p99 < 200ms",
                Metric::Latency(RoundKind::Block, Stat::P99),
                Op::Lt,
                200.0,
            ),
            (
                "problem.p50<=0.05s",
                Metric::Latency(RoundKind::Problem, Stat::P50),
                Op::Le,
                50.0,
            ),
            (
                "  reveal.max>1.5 s ",
                Metric::Latency(RoundKind::Reveal, Stat::Max),
                Op::Gt,
                1500.0,
            ),
            (
                "block.count >= 1000",
                Metric::Latency(RoundKind::Block, Stat::Count),
                Op::Ge,
                1000.0,
            ),
            ("rounds_flagged == 0", Metric::RoundsFlagged, Op::Eq, 0.0),
            (
                "winners_disagreeing != 3",
                Metric::WinnersDisagreeing,
                Op::Ne,
                3.0,
            ),
            ("nodes >= 20", Metric::Nodes, Op::Ge, 20.0),
            ("synced.max < 5s", Metric::Synced(Stat::Max), Op::Lt, 5000.0),
            ("synced.p50 < 2s", Metric::Synced(Stat::P50), Op::Lt, 2000.0),
            (
                "synced.count == 6",
                Metric::Synced(Stat::Count),
                Op::Eq,
                6.0,
            ),
            (
                "node.n07.synced < 3s",
                Metric::NodeSynced("n07".into()),
                Op::Lt,
                3000.0,
            ),
            // A name may hold dots, operators and ".synced" itself.
            (
                "node.a.b<=c.synced.synced<=1ms",
                Metric::NodeSynced("a.b<=c.synced".into()),
                Op::Le,
                1.0,
            ),
        ] {
            let expectation = parsed(text);
            assert_eq!(
                (&expectation.metric, expectation.op, expectation.bound),
                (&metric, op, bound),
                "{text}"
            );
            assert_eq!(expectation.text, text.trim());
            assert_eq!(
                Metric::parse(&metric.name()),
                Some(metric.clone()),
                "{text}: its name reads back"
            );
        }
    }

    #[test]
    fn bad_expectations_name_the_expression_and_the_rule() {
        for (text, rule) in [
            ("", "empty: the form is METRIC OP VALUE"),
            ("block.p99 200ms", "no operator"),
            ("nodes = 20", "= alone is not one"),
            ("nodes =< 20", "= alone is not one"),
            (
                "blok.p99 < 200ms",
                "unknown metric \"blok.p99\": metrics are KIND.STAT",
            ),
            ("block.p95 < 200ms", "unknown metric \"block.p95\""),
            ("node..synced < 1s", "unknown metric \"node..synced\""),
            ("< 200ms", "unknown metric \"\""),
            (
                "block.p99 < 200",
                "block.p99 is a time: give VALUE with a unit, ms or s",
            ),
            ("synced.max < 5", "synced.max is a time"),
            ("node.n07.synced < 3", "node.n07.synced is a time"),
            ("block.p99 < 2m", "unknown unit \"m\": a time takes ms or s"),
            (
                "nodes >= 20ms",
                "nodes is a count: give VALUE as a bare number, without a unit",
            ),
            ("block.count > 1000s", "block.count is a count"),
            (
                "rounds_flagged == 0.5",
                "rounds_flagged is a count: VALUE is a whole number",
            ),
            ("block.p99 < ms", "\"ms\" is not a value"),
            ("block.p99 <", "\"\" is not a value"),
            ("block.p99 < -5ms", "\"-5ms\" is not a value"),
            ("block.p99 < 1e3ms", "\"1e3ms\" is not a value"),
            ("block.p99 < 1.2.3ms", "\"1.2.3ms\" is not a value"),
            ("block.p99 < 200ms < 300ms", "is not a value"),
        ] {
            let message = refused(text);
            assert!(
                message.starts_with(&format!("expect {:?}: ", text.trim())),
                "{text}: names the expression: {message}"
            );
            assert!(message.contains(rule), "{text}: {message}");
        }
    }

    #[test]
    fn regressions_parse_for_latency_quantiles_only() {
        let parsed = MaxRegression::parse(" block.p50 = 10% ").unwrap();
        assert_eq!(
            (
                parsed.kind,
                parsed.stat,
                parsed.percent,
                parsed.text.as_str()
            ),
            (RoundKind::Block, Stat::P50, 10.0, "block.p50 = 10%")
        );
        assert_eq!(
            MaxRegression::parse("problem.p99=2.5%").unwrap().percent,
            2.5
        );
        assert_eq!(
            MaxRegression::parse("reveal.p90=0%").unwrap().stat,
            Stat::P90
        );
        for (text, rule) in [
            ("block.p50", "the form is KIND.STAT=P%"),
            ("block.p50=10", "P must be a percentage"),
            ("block.p50=-10%", "P must be a percentage"),
            ("block.p50=%", "P must be a percentage"),
            ("block.max=10%", "max has no regression check"),
            ("block.count=10%", "\"block.count\" has no regression check"),
            ("synced.p50=10%", "\"synced.p50\" has no regression check"),
            ("nodes=10%", "has no regression check"),
        ] {
            match MaxRegression::parse(text) {
                Err(Error::BadRequest(message)) => {
                    assert!(
                        message.starts_with(&format!("max_regression {text:?}: ")),
                        "{message}"
                    );
                    assert!(message.contains(rule), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_operator_compares_as_written() {
        for (op, below, equal, above) in [
            (Op::Lt, true, false, false),
            (Op::Le, true, true, false),
            (Op::Gt, false, false, true),
            (Op::Ge, false, true, true),
            (Op::Eq, false, true, false),
            (Op::Ne, true, false, true),
        ] {
            assert_eq!(
                (op.holds(1.0, 2.0), op.holds(2.0, 2.0), op.holds(3.0, 2.0)),
                (below, equal, above),
                "{}",
                op.symbol()
            );
            assert_eq!(parsed(&format!("nodes {} 2", op.symbol())).op, op);
        }
    }
}
