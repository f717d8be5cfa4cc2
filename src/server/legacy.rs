//! The original Go server's endpoints, unchanged in shape, for nodes that were never
//! rebuilt: `POST /send` (form fields `time`, `sender`, `eventtype`, `message`,
//! answer `ACK`) and `GET /messages`.

use super::AppState;
use crate::error::Error;
use crate::event::InvalidReport;
use crate::pb::{Event, PerformanceData};
use crate::report::{Report, now_unix_nano};
use crate::store::Query;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde_json::json;

/// The form fields of `POST /send`, raw.
struct Form {
    time: String,
    sender: String,
    eventtype: String,
    message: String,
}

/// Decodes an `application/x-www-form-urlencoded` body; text that is not UTF-8
/// after percent-decoding is refused rather than stored mangled.
fn decode(body: &[u8]) -> Result<Form, Error> {
    let mut form = Form {
        time: String::new(),
        sender: String::new(),
        eventtype: String::new(),
        message: String::new(),
    };
    for pair in body
        .split(|byte| *byte == b'&')
        .filter(|pair| !pair.is_empty())
    {
        let mut halves = pair.splitn(2, |byte| *byte == b'=');
        let name = percent_decode(halves.next().unwrap_or_default());
        let value = percent_decode(halves.next().unwrap_or_default());
        let name = String::from_utf8(name)
            .map_err(|_| Error::BadRequest("form: a field name is not valid UTF-8".into()))?;
        let slot = match name.as_str() {
            "time" => &mut form.time,
            "sender" => &mut form.sender,
            "eventtype" => &mut form.eventtype,
            "message" => &mut form.message,
            _ => continue,
        };
        *slot = String::from_utf8(value)
            .map_err(|_| Error::BadRequest(format!("{name}: must be valid UTF-8")))?;
    }
    Ok(form)
}

/// Decodes `%XX` escapes and `+` (space) of a form or query value.
pub(super) fn percent_decode(text: &[u8]) -> Vec<u8> {
    let hex = |byte: u8| (byte as char).to_digit(16).map(|digit| digit as u8);
    let mut out = Vec::with_capacity(text.len());
    let mut index = 0;
    while index < text.len() {
        match text[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < text.len() => match (hex(text[index + 1]), hex(text[index + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    index += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        index += 1;
    }
    out
}

fn required(field: &'static str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(InvalidReport {
            field,
            rule: "must not be empty".into(),
        }
        .into());
    }
    Ok(())
}

/// `POST /send`: stores one report from the seed's form and answers `ACK` once it
/// is durable. Every field is required, as in the original.
pub async fn send(State(state): State<AppState>, body: Bytes) -> Result<&'static str, Error> {
    let started = std::time::Instant::now();
    let answer = store_form(&state, &body).await;
    super::observe(&state.metrics, started, &answer);
    answer
}

async fn store_form(state: &AppState, body: &[u8]) -> Result<&'static str, Error> {
    let form = decode(body)?;
    for (field, value) in [
        ("time", &form.time),
        ("sender", &form.sender),
        ("eventtype", &form.eventtype),
        ("message", &form.message),
    ] {
        required(field, value)?;
    }
    let time_unix_nano = form.time.trim().parse::<i64>().map_err(|_| {
        Error::BadRequest(format!(
            "time: must be Unix time in nanoseconds (got {:?})",
            form.time
        ))
    })?;
    let event = form
        .eventtype
        .parse::<Event>()
        .map_err(|unknown| Error::BadRequest(format!("eventtype: {unknown}")))?;
    let data = PerformanceData {
        time_unix_nano,
        sender: form.sender,
        event: event as i32,
        message: form.message,
        report_id: String::new(),
    };
    let report = Report::accept(data, now_unix_nano())?;
    state.writes.append(vec![report]).await?;
    Ok("ACK")
}

/// Reports `GET /messages` lists at most: the newest of the run. The seed listed
/// all, which at millions of reports is gigabytes in one answer; the API pages.
pub const MESSAGES_SHOWN: usize = 10_000;

/// `GET /messages`: `{"messages": [{"time", "sender", "eventtype", "message"}]}`, the
/// current run's newest [`MESSAGES_SHOWN`] reports, oldest first, in the seed's
/// string form.
pub async fn messages(State(state): State<AppState>) -> Result<Response, Error> {
    let query = Query {
        run: state.store.current_run().id,
        descending: true,
        limit: MESSAGES_SHOWN,
        ..Query::default()
    };
    let mut newest = state.store.query(query).await?;
    newest.reverse();
    let messages: Vec<_> = newest
        .iter()
        .map(|report| {
            json!({
                "time": report.time_unix_nano.to_string(),
                "sender": report.sender,
                "eventtype": report.event.to_string(),
                "message": report.message,
            })
        })
        .collect();
    super::api::answer::json(&state, &json!({ "messages": messages }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(text: &str) -> String {
        text.bytes().map(|byte| format!("%{byte:02X}")).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn any_percent_encoded_fields_decode_to_themselves(
            sender in ".{0,40}",
            message in ".{0,200}",
            plus in "[a-z ]{0,20}",
        ) {
            let body = format!(
                "sender={}&message={}&eventtype={}&time=1",
                encode(&sender),
                encode(&message),
                plus.replace(' ', "+"),
            );
            let form = decode(body.as_bytes()).unwrap();
            prop_assert_eq!(form.sender, sender);
            prop_assert_eq!(form.message, message);
            prop_assert_eq!(form.eventtype, plus);
            prop_assert_eq!(form.time, "1");
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&body);
        }
    }
}
