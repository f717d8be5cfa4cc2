//! Reports as CSV rows, for `/api/export?format=csv`.

use crate::report::Report;

/// The CSV header row, in the order of [`csv_row`].
pub const CSV_HEADER: &str =
    "seq,run,time_unix_nano,received_unix_nano,sender,event,message,report_id\r\n";

/// One report as a CSV row.
pub fn csv_row(report: &Report, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "{},{},{},{},{},{},{},{}\r\n",
        report.seq,
        report.run,
        report.time_unix_nano,
        report.received_unix_nano,
        csv_field(&report.sender),
        report.event.as_str_name(),
        csv_field(&report.message),
        csv_field(&report.report_id),
    );
}

fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}
