//! Reading what `perfstats export` writes back into reports: NDJSON (one report's
//! JSON a line) or CSV (the server's header, then one row a report, quoted as the
//! server's CSV writer quotes), told apart by the file's first bytes. Each report
//! keeps its time, sender, event, message and report id; its seq, run and receive
//! time are the exporting server's and are left behind. Every report is checked
//! against the server's validation rules here, so a bad file fails naming its line
//! and field before anything is sent.

use crate::event::validate;
use crate::pb::{Event, PerformanceData};
use std::fmt;
use std::io::BufRead;

/// The header of the server's CSV export (`src/server/api/csv.rs`), without its CRLF.
pub const CSV_HEADER: &str =
    "seq,run,time_unix_nano,received_unix_nano,sender,event,message,report_id";
/// The fields of a CSV row, in the header's order.
const CSV_FIELDS: [&str; 8] = [
    "seq",
    "run",
    "time_unix_nano",
    "received_unix_nano",
    "sender",
    "event",
    "message",
    "report_id",
];
/// The longest CSV record read (a report's text, doubled quotes and all, is far
/// shorter): past it, a quote was left open.
const MAX_CSV_RECORD: usize = 64 << 10;

/// The two formats of `perfstats export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One report's JSON object a line.
    Ndjson,
    /// The server's CSV, header first.
    Csv,
}

/// Why a file is not an export: where (its line, from 1), the field if one is at
/// fault, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The line (of a CSV row spanning several, its first).
    pub line: u64,
    /// The field at fault (`time_unix_nano`, `sender`, `event`, `message`, `report_id`…).
    pub field: Option<&'static str>,
    /// What is wrong, in words.
    pub rule: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "line {}: {field}: {}", self.line, self.rule),
            None => write!(f, "line {}: {}", self.line, self.rule),
        }
    }
}

impl std::error::Error for ParseError {}

fn error(line: u64, field: Option<&'static str>, rule: impl Into<String>) -> ParseError {
    ParseError {
        line,
        field,
        rule: rule.into(),
    }
}

/// The reports of an export, one by one, in the file's order.
pub struct ExportReader<R> {
    input: R,
    format: ExportFormat,
    /// Lines read so far.
    line: u64,
    /// A failure or the end was reached: nothing more is read.
    done: bool,
}

impl<R: BufRead> ExportReader<R> {
    /// Reads an export from `input`: its format from its first bytes (`{` starts
    /// NDJSON, the server's header CSV; an empty input is an NDJSON export of no
    /// reports), and for CSV the header, which must be the server's.
    pub fn new(mut input: R) -> Result<ExportReader<R>, ParseError> {
        let start = input
            .fill_buf()
            .map_err(|failure| error(1, None, failure.to_string()))?;
        let first = start.iter().find(|byte| !byte.is_ascii_whitespace());
        let format = match first {
            None | Some(b'{') => ExportFormat::Ndjson,
            Some(_) if start.starts_with(b"seq,") => ExportFormat::Csv,
            Some(_) => {
                return Err(error(
                    1,
                    None,
                    format!(
                        "neither NDJSON (a JSON object a line) nor the CSV of `perfstats export` \
                         (header {CSV_HEADER})"
                    ),
                ));
            }
        };
        let mut reader = ExportReader {
            input,
            format,
            line: 0,
            done: false,
        };
        if format == ExportFormat::Csv {
            let (_, header) = reader.csv_record()?.unwrap_or_default();
            if header != CSV_HEADER {
                return Err(error(
                    1,
                    None,
                    format!("the CSV header must be {CSV_HEADER} (got {header:?})"),
                ));
            }
        }
        Ok(reader)
    }

    /// Which format the input is in.
    pub fn format(&self) -> ExportFormat {
        self.format
    }

    /// The next physical line with its line end, `None` at the end of the input.
    fn physical_line(&mut self, into: &mut Vec<u8>) -> Result<bool, ParseError> {
        let read = self
            .input
            .read_until(b'\n', into)
            .map_err(|failure| error(self.line + 1, None, failure.to_string()))?;
        if read > 0 {
            self.line += 1;
        }
        Ok(read > 0)
    }

    /// The next CSV record (its line end removed) and its first line, joining the
    /// lines of quoted fields that hold line breaks; `None` at the end of the input.
    fn csv_record(&mut self) -> Result<Option<(u64, String)>, ParseError> {
        let mut bytes = Vec::new();
        if !self.physical_line(&mut bytes)? {
            return Ok(None);
        }
        let first = self.line;
        // Inside quotes while an odd number of them has been read ("" counts two).
        while bytes.iter().filter(|byte| **byte == b'"').count() % 2 == 1 {
            if bytes.len() > MAX_CSV_RECORD {
                return Err(error(
                    first,
                    None,
                    format!("a quoted field runs past {MAX_CSV_RECORD} bytes (a quote left open?)"),
                ));
            }
            if !self.physical_line(&mut bytes)? {
                return Err(error(
                    first,
                    None,
                    "a quoted field is not closed before the end",
                ));
            }
        }
        let end = if bytes.ends_with(b"\r\n") {
            2
        } else {
            usize::from(bytes.ends_with(b"\n"))
        };
        bytes.truncate(bytes.len() - end);
        String::from_utf8(bytes)
            .map(|record| Some((first, record)))
            .map_err(|_| error(first, None, "not UTF-8"))
    }

    /// The next report of a CSV export, or `None` at its end.
    fn next_csv(&mut self) -> Result<Option<PerformanceData>, ParseError> {
        loop {
            let Some((line, record)) = self.csv_record()? else {
                return Ok(None);
            };
            if record.is_empty() {
                continue;
            }
            let fields = csv_fields(&record)
                .map_err(|(index, rule)| error(line, CSV_FIELDS.get(index).copied(), rule))?;
            if fields.len() != CSV_FIELDS.len() {
                return Err(error(
                    line,
                    None,
                    format!(
                        "expected {} fields ({CSV_HEADER}), got {}",
                        CSV_FIELDS.len(),
                        fields.len()
                    ),
                ));
            }
            let mut fields = fields.into_iter();
            let mut field = || fields.next().unwrap_or_default();
            let (_seq, _run, time, _received) = (field(), field(), field(), field());
            let (sender, event, message, report_id) = (field(), field(), field(), field());
            let time_unix_nano = time.parse::<i64>().map_err(|_| {
                error(
                    line,
                    Some("time_unix_nano"),
                    format!("expected an integer (got {time:?})"),
                )
            })?;
            return report(line, time_unix_nano, sender, &event, message, report_id).map(Some);
        }
    }

    /// The next report of an NDJSON export, or `None` at its end.
    fn next_ndjson(&mut self) -> Result<Option<PerformanceData>, ParseError> {
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            if !self.physical_line(&mut bytes)? {
                return Ok(None);
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = self.line;
            if let Ok(exported) = serde_json::from_slice::<ExportedReport>(&bytes) {
                let ExportedReport {
                    time_unix_nano,
                    sender,
                    event,
                    message,
                    report_id,
                } = exported;
                return report(line, time_unix_nano, sender, &event, message, report_id).map(Some);
            }
            // Not as exported: read it again field by field to say what is wrong.
            let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
                .map_err(|failure| error(line, None, format!("not a JSON object: {failure}")))?;
            let text = |field: &'static str| match object.get(field) {
                Some(serde_json::Value::String(text)) => Ok(text.clone()),
                Some(other) => Err(error(
                    line,
                    Some(field),
                    format!("expected a string (got {other})"),
                )),
                None => Err(error(line, Some(field), "missing")),
            };
            let time_unix_nano = match object.get("time_unix_nano") {
                Some(value) => value.as_i64().ok_or_else(|| {
                    error(
                        line,
                        Some("time_unix_nano"),
                        format!("expected an integer (got {value})"),
                    )
                })?,
                None => return Err(error(line, Some("time_unix_nano"), "missing")),
            };
            let (sender, event) = (text("sender")?, text("event")?);
            let (message, report_id) = (text("message")?, text("report_id")?);
            return report(line, time_unix_nano, sender, &event, message, report_id).map(Some);
        }
    }
}

impl<R: BufRead> Iterator for ExportReader<R> {
    type Item = Result<PerformanceData, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = match self.format {
            ExportFormat::Csv => self.next_csv(),
            ExportFormat::Ndjson => self.next_ndjson(),
        };
        self.done = !matches!(next, Ok(Some(_)));
        next.transpose()
    }
}

/// An NDJSON line as the server exports it (its other fields are ignored).
#[derive(serde::Deserialize)]
struct ExportedReport {
    time_unix_nano: i64,
    sender: String,
    event: String,
    message: String,
    report_id: String,
}

/// A report as read, checked as the server checks it; and, beyond that, with a
/// time and an id of its own (an export always has both: a time of 0 would be
/// stamped with the import's time, an empty id given a new one, and neither would
/// be the original's).
fn report(
    line: u64,
    time_unix_nano: i64,
    sender: String,
    event: &str,
    message: String,
    report_id: String,
) -> Result<PerformanceData, ParseError> {
    // The export's spelling first (the others are slower to match).
    let event = Event::from_str_name(event)
        .or_else(|| event.parse().ok())
        .ok_or_else(|| {
            error(
                line,
                Some("event"),
                format!("not an event name (got {event:?})"),
            )
        })?;
    let data = PerformanceData {
        time_unix_nano,
        sender,
        event: event as i32,
        message,
        report_id,
    };
    validate(&data).map_err(|invalid| error(line, Some(invalid.field), invalid.rule))?;
    if data.time_unix_nano == 0 {
        return Err(error(
            line,
            Some("time_unix_nano"),
            "must not be 0 in an export (the server would stamp it with the import's time)",
        ));
    }
    if data.report_id.is_empty() {
        return Err(error(
            line,
            Some("report_id"),
            "must not be empty in an export (a new id would make a second import store it again)",
        ));
    }
    Ok(data)
}

/// The fields of one CSV record: a field is either plain (no `"`, `,`) or quoted
/// (`"…"` with `""` for a quote inside, and anything else, line breaks included).
/// An error gives the index of the field at fault.
fn csv_fields(record: &str) -> Result<Vec<String>, (usize, String)> {
    if !record.contains('"') {
        return Ok(record.split(',').map(str::to_string).collect());
    }
    let mut fields = Vec::new();
    let mut chars = record.chars().peekable();
    loop {
        let index = fields.len();
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err((index, "a quoted field is not closed".into())),
                }
            }
            fields.push(field);
            match chars.next() {
                None => return Ok(fields),
                Some(',') => {}
                Some(c) => {
                    return Err((index, format!("{c:?} after the closing quote")));
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => {
                        return Err((index, "a quote inside a field that is not quoted".into()));
                    }
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field as the server's CSV writer writes it (`src/server/api/csv.rs`).
    fn quoted(text: &str) -> String {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_string()
        }
    }

    /// Reports as the server's CSV export writes them.
    fn csv(reports: &[PerformanceData]) -> String {
        let mut text = format!("{CSV_HEADER}\r\n");
        for (i, report) in reports.iter().enumerate() {
            text.push_str(&format!(
                "{},1,{},{},{},{},{},{}\r\n",
                i + 1,
                report.time_unix_nano,
                report.time_unix_nano + 1_000_000,
                quoted(&report.sender),
                Event::try_from(report.event).unwrap().as_str_name(),
                quoted(&report.message),
                quoted(&report.report_id),
            ));
        }
        text
    }

    /// Reports as the server's NDJSON export writes them.
    fn ndjson(reports: &[PerformanceData]) -> String {
        reports
            .iter()
            .enumerate()
            .map(|(i, report)| {
                let object = serde_json::json!({
                    "seq": i + 1, "run": 1, "time_unix_nano": report.time_unix_nano,
                    "received_unix_nano": report.time_unix_nano + 1_000_000, "sender": report.sender,
                    "event": Event::try_from(report.event).unwrap().as_str_name(),
                    "message": report.message, "report_id": report.report_id,
                });
                format!("{object}\n")
            })
            .collect()
    }

    fn read(text: &str) -> Result<Vec<PerformanceData>, ParseError> {
        ExportReader::new(text.as_bytes())?.collect()
    }

    fn tricky() -> Vec<PerformanceData> {
        let messages = [
            "block 17",
            "a, b, c",
            "say \"hi\"",
            "\"",
            "two\nlines",
            "windows\r\nline end",
            "a lone \r here",
            "ends with a newline\n",
            "\n",
            "  spaces around  ",
            "Grüße, 日本語 and 🦀",
            "\",\"\r\n\"\",,",
        ];
        messages
            .iter()
            .enumerate()
            .map(|(i, message)| PerformanceData {
                time_unix_nano: 1_723_700_000_000_000_000 + i as i64,
                sender: if i % 3 == 0 {
                    "node, \"7\"".into()
                } else {
                    format!("{i}f")
                },
                event: Event::NewBlockReceived as i32,
                message: message.to_string(),
                report_id: if i == 4 {
                    "id,with \"quotes\"".into()
                } else {
                    format!("id-{i}")
                },
            })
            .collect()
    }

    #[test]
    fn csv_and_ndjson_of_the_same_run_read_back_to_the_same_reports() {
        let reports = tricky();
        let from_csv = read(&csv(&reports)).unwrap();
        let from_ndjson = read(&ndjson(&reports)).unwrap();
        assert_eq!(from_csv, reports);
        assert_eq!(from_ndjson, reports);
        let (csv, ndjson) = (csv(&reports), ndjson(&reports));
        let reader = ExportReader::new(csv.as_bytes()).unwrap();
        assert_eq!(reader.format(), ExportFormat::Csv);
        let reader = ExportReader::new(ndjson.as_bytes()).unwrap();
        assert_eq!(reader.format(), ExportFormat::Ndjson);
    }

    #[test]
    fn empty_exports_hold_no_reports() {
        assert_eq!(read("").unwrap(), []);
        assert_eq!(read(&format!("{CSV_HEADER}\r\n")).unwrap(), []);
        assert_eq!(read("\n\n").unwrap(), []);
    }

    /// The error of reading `text`, as printed.
    fn failure(text: &str) -> String {
        read(text).unwrap_err().to_string()
    }

    #[test]
    fn a_malformed_csv_names_the_line_and_the_field() {
        // Line 1 is the header; the reports before the 7th (on line 10) include
        // two whose messages span two lines each.
        let good = csv(&tricky());
        let broken = good.replacen(",1723700000000000006,", ",17237x,", 1);
        assert_ne!(broken, good);
        assert_eq!(
            failure(&broken),
            "line 10: time_unix_nano: expected an integer (got \"17237x\")"
        );
        let row = |fields: &str| format!("{CSV_HEADER}\r\n{fields}\r\n");
        assert_eq!(
            failure(&row("1,1,5,6,1f,EVENT_NOPE,m,id")),
            "line 2: event: not an event name (got \"EVENT_NOPE\")"
        );
        assert_eq!(
            failure(&row("1,1,5,6,1f,EVENT_NEW_BLOCK_RECEIVED,,id")),
            "line 2: message: must not be empty"
        );
        assert_eq!(
            failure(&row("1,1,0,6,1f,EVENT_NEW_BLOCK_RECEIVED,m,id")),
            "line 2: time_unix_nano: must not be 0 in an export (the server would stamp it with the import's time)"
        );
        assert_eq!(
            failure(&row("1,1,5,6,1f,EVENT_NEW_BLOCK_RECEIVED,m,")),
            "line 2: report_id: must not be empty in an export (a new id would make a second import store it again)"
        );
        assert_eq!(
            failure(&row("1,1,5,6,1f,EVENT_NEW_BLOCK_RECEIVED,m")),
            format!("line 2: expected 8 fields ({CSV_HEADER}), got 7")
        );
        assert_eq!(
            failure(&row("1,1,5,6,1f,EVENT_NEW_BLOCK_RECEIVED,say \"hi\",id")),
            "line 2: message: a quote inside a field that is not quoted"
        );
        assert_eq!(
            failure(&row("1,1,5,6,1f,EVENT_NEW_BLOCK_RECEIVED,\"m\"x,id")),
            "line 2: message: 'x' after the closing quote"
        );
        assert_eq!(
            failure(&format!(
                "{CSV_HEADER}\r\n1,1,5,6,1f,EVENT_NEW_BLOCK_RECEIVED,\"open,id\r\n"
            )),
            "line 2: a quoted field is not closed before the end"
        );
        assert_eq!(
            failure("seq,run,time\r\n"),
            format!("line 1: the CSV header must be {CSV_HEADER} (got \"seq,run,time\")")
        );
        assert!(failure("hello\n").starts_with("line 1: neither NDJSON"));
    }

    #[test]
    fn a_malformed_ndjson_line_names_the_line_and_the_field() {
        let good = ndjson(&tricky()[..3]);
        let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
        lines[1] = lines[1].replace("\"sender\":\"1f\",", "");
        assert_eq!(failure(&lines.join("\n")), "line 2: sender: missing");
        lines[1] = "{\"time_unix_nano\": \"5\"}".into();
        assert_eq!(
            failure(&lines.join("\n")),
            "line 2: time_unix_nano: expected an integer (got \"5\")"
        );
        lines[1] = "{not json".into();
        assert!(failure(&lines.join("\n")).starts_with("line 2: not a JSON object: "));
        let long = "x".repeat(4097);
        lines[1] = format!(
            "{{\"time_unix_nano\":5,\"sender\":\"1f\",\"event\":\"EVENT_NEW_BLOCK_RECEIVED\",\"message\":\"{long}\",\"report_id\":\"i\"}}"
        );
        assert_eq!(
            failure(&lines.join("\n")),
            "line 2: message: must be at most 4096 bytes (got 4097)"
        );
    }
}
