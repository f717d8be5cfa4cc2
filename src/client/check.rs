//! `perfstats check`, the CI gate's client side: asks `/api/check`, prints the
//! outcomes (a table, or the API's JSON), optionally writes them as JUnit XML, and
//! says which exit code the command ends with.

use super::http::{HttpClient, encode_query};
use std::io::Write;
use std::path::Path;

/// What `check` asks the server.
#[derive(Debug, Clone, Default)]
pub struct CheckRequest {
    /// The run checked (id or name).
    pub run: String,
    /// The run regressions are measured against (id or name).
    pub baseline: Option<String>,
    /// `METRIC OP VALUE` expectations.
    pub expect: Vec<String>,
    /// `KIND.STAT=P%` regressions.
    pub max_regression: Vec<String>,
}

impl CheckRequest {
    /// `/api/check?…` for this request.
    pub fn path(&self) -> String {
        let mut pairs = vec![("run", self.run.as_str())];
        pairs.extend(
            self.baseline
                .as_deref()
                .map(|baseline| ("baseline", baseline)),
        );
        pairs.extend(self.expect.iter().map(|text| ("expect", text.as_str())));
        pairs.extend(
            self.max_regression
                .iter()
                .map(|text| ("max_regression", text.as_str())),
        );
        let query: Vec<String> = pairs
            .iter()
            .map(|(name, value)| format!("{name}={}", encode_query(value)))
            .collect();
        format!("/api/check?{}", query.join("&"))
    }
}

/// How `check` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckFormat {
    /// One line per check.
    Table,
    /// The API's JSON answer.
    Json,
}

/// Why `check` could not give a verdict, and the exit code that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError {
    /// 2: a bad check or an unknown run (the server's 400 or 404); 1: anything
    /// else (unreachable, refused, a file not written).
    pub exit_code: u8,
    /// What went wrong, with the server's message.
    pub message: String,
}

impl CheckError {
    fn failed(message: impl Into<String>) -> CheckError {
        CheckError {
            exit_code: 1,
            message: message.into(),
        }
    }
}

/// Asks the server to evaluate `request`, prints the outcomes to `out` and, with
/// `junit`, writes them there as JUnit XML. `Ok(true)` when every check passed,
/// `Ok(false)` when one failed (exit 1).
pub async fn check(
    http: &HttpClient,
    request: &CheckRequest,
    format: CheckFormat,
    junit: Option<&Path>,
    out: &mut impl Write,
) -> Result<bool, CheckError> {
    let body = http
        .get(&request.path(), &[])
        .await
        .map_err(|error| CheckError {
            exit_code: if matches!(error.status, Some(400 | 404)) {
                2
            } else {
                1
            },
            message: error.message,
        })?;
    let text = body.text().await.map_err(CheckError::failed)?;
    let answer: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| CheckError::failed(format!("/api/check: {error}")))?;
    if let Some(path) = junit {
        std::fs::write(path, junit_xml(&answer))
            .map_err(|error| CheckError::failed(format!("--junit {}: {error}", path.display())))?;
    }
    let printed = match format {
        CheckFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&answer)
                .map_err(|error| CheckError::failed(error.to_string()))?
        ),
        CheckFormat::Table => table(&answer),
    };
    match out.write_all(printed.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        // A closed pipe (`| head`) does not change the verdict.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(error) => return Err(CheckError::failed(format!("stdout: {error}"))),
    }
    Ok(answer["passed"] == true)
}

fn outcomes(answer: &serde_json::Value) -> &[serde_json::Value] {
    answer["outcomes"].as_array().map_or(&[], Vec::as_slice)
}

/// A value in its unit: `12.34 ms`, `7`, or `no value`.
fn shown(value: &serde_json::Value, unit: &serde_json::Value, signed: bool) -> String {
    match (value.as_f64(), unit.as_str()) {
        (None, _) => "no value".into(),
        (Some(ms), Some("ms")) if signed => format!("{ms:+.2} ms"),
        (Some(ms), Some("ms")) => format!("{ms:.2} ms"),
        (Some(count), _) => format!("{count}"),
    }
}

/// One line per check, `VERDICT  CHECK  VALUE  BOUND`, failures followed by why,
/// then the count of failures.
pub fn table(answer: &serde_json::Value) -> String {
    let mut table = format!(
        "run {}{}\n",
        answer["run"]["name"].as_str().unwrap_or_default(),
        match answer["baseline"]["name"].as_str() {
            Some(baseline) => format!(", baseline {baseline}"),
            None => String::new(),
        }
    );
    table.push_str(&format!(
        "{:<7} {:<32} {:>34} {:>22}\n",
        "verdict", "check", "value", "bound"
    ));
    for outcome in outcomes(answer) {
        let regression = outcome["rule"] == "max_regression";
        let mut value = shown(&outcome["value"], &outcome["unit"], regression);
        if let Some([low, high]) = outcome["interval_ms"]
            .as_array()
            .and_then(|ends| Some([ends.first()?.as_f64()?, ends.get(1)?.as_f64()?]))
        {
            value.push_str(&format!(" [{low:+.2}, {high:+.2}]"));
        }
        let bound = match outcome["bound"].is_null() {
            true => "-".into(),
            false => format!(
                "{} {}",
                outcome["op"].as_str().unwrap_or_default(),
                shown(&outcome["bound"], &outcome["unit"], regression)
            ),
        };
        let passed = outcome["passed"] == true;
        table.push_str(&format!(
            "{:<7} {:<32} {:>34} {:>22}\n",
            if passed { "PASS" } else { "FAIL" },
            outcome["check"].as_str().unwrap_or_default(),
            value,
            bound
        ));
        if !passed {
            table.push_str(&format!(
                "        {}\n",
                outcome["message"].as_str().unwrap_or_default()
            ));
        }
    }
    table.push_str(&format!(
        "{} of {} checks failed\n",
        answer["failed"], answer["total"]
    ));
    table
}

/// `text` safe in XML text and attribute values: the five markup characters as
/// entities, and characters XML 1.0 cannot hold (controls but tab and newlines) as
/// U+FFFD.
pub fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => escaped.push('\u{fffd}'),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The outcomes as JUnit XML: one `<testsuite>` (named after the run, with
/// `tests` and `failures`), one `<testcase>` per check named by its text, a
/// `<failure>` with the message for each that failed.
pub fn junit_xml(answer: &serde_json::Value) -> String {
    let run = xml_escape(answer["run"]["name"].as_str().unwrap_or_default());
    let all = outcomes(answer);
    let failures = all
        .iter()
        .filter(|outcome| outcome["passed"] != true)
        .count();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  \
         <testsuite name=\"perfstats check {run}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">\n",
        all.len()
    );
    for outcome in all {
        let name = xml_escape(outcome["check"].as_str().unwrap_or_default());
        let class = format!(
            "perfstats.check.{}",
            outcome["rule"].as_str().unwrap_or_default()
        );
        if outcome["passed"] == true {
            xml.push_str(&format!(
                "    <testcase name=\"{name}\" classname=\"{class}\"/>\n"
            ));
        } else {
            let message = xml_escape(outcome["message"].as_str().unwrap_or_default());
            xml.push_str(&format!(
                "    <testcase name=\"{name}\" classname=\"{class}\">\n      \
                 <failure message=\"{message}\" type=\"FAIL\">{message}</failure>\n    \
                 </testcase>\n"
            ));
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> serde_json::Value {
        serde_json::json!({
            "run": {"name": "r&d <1>"},
            "baseline": null,
            "passed": false,
            "total": 2,
            "failed": 1,
            "outcomes": [
                {"check": "block.p99 < 200ms", "rule": "expect", "metric": "block.p99",
                 "unit": "ms", "value": 120.5, "op": "<", "bound": 200.0,
                 "interval_ms": null, "baseline": null, "passed": true,
                 "message": "block.p99 = 120.50 ms, < 200.00 ms"},
                {"check": "node.a\"<b>'&\u{1}.synced < 1s", "rule": "expect",
                 "metric": "node.x.synced", "unit": "ms", "value": null, "op": "<",
                 "bound": 1000.0, "interval_ms": null, "baseline": null, "passed": false,
                 "message": "node.x.synced: no value (no node x in the run)"},
            ],
        })
    }

    #[test]
    fn the_request_encodes_every_check_as_its_own_parameter() {
        let request = CheckRequest {
            run: "run 1".into(),
            baseline: Some("base".into()),
            expect: vec!["block.p99 < 200ms".into(), "nodes >= 2".into()],
            max_regression: vec!["block.p50=10%".into()],
        };
        assert_eq!(
            request.path(),
            "/api/check?run=run%201&baseline=base&expect=block.p99%20%3C%20200ms\
             &expect=nodes%20%3E%3D%202&max_regression=block.p50%3D10%25"
        );
    }

    #[test]
    fn the_table_has_a_line_per_check_and_says_why_one_failed() {
        let table = table(&answer());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "run r&d <1>");
        assert!(lines[2].starts_with("PASS    block.p99 < 200ms"), "{table}");
        assert!(
            lines[2].contains("120.50 ms") && lines[2].ends_with("< 200.00 ms"),
            "{table}"
        );
        assert!(
            lines[3].starts_with("FAIL") && lines[3].contains("no value"),
            "{table}"
        );
        assert_eq!(
            lines[4].trim(),
            "node.x.synced: no value (no node x in the run)"
        );
        assert_eq!(lines[5], "1 of 2 checks failed");
    }

    #[test]
    fn xml_escapes_markup_and_drops_what_xml_cannot_hold() {
        assert_eq!(xml_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(xml_escape("x\u{1}y\tz\n"), "x\u{fffd}y\tz\n");
        let xml = junit_xml(&answer());
        assert!(
            xml.contains("name=\"perfstats check r&amp;d &lt;1&gt;\" tests=\"2\" failures=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains("name=\"node.a&quot;&lt;b&gt;&apos;&amp;\u{fffd}.synced &lt; 1s\""),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 2);
        assert_eq!(xml.matches("<failure ").count(), 1);
    }
}
