//! One OTLP log record as one report:
//!
//! | report       | taken from, first found                                                   |
//! |--------------|---------------------------------------------------------------------------|
//! | `sender`     | attribute `perfstats.sender` (record, else resource); the resource's `service.instance.id`, `host.name`, `service.name` |
//! | `event`      | `event_name` (field 12); attribute `perfstats.event`; any spelling `Event` parses |
//! | `message`    | the body when a string; the body as JSON; attribute `perfstats.message`    |
//! | time         | `time_unix_nano`; `observed_time_unix_nano`; the receive time             |
//! | `report_id`  | attribute `perfstats.report_id`; a UUID of the record's time and a hash of the resource and the record as sent |
//!
//! The result is validated by [`Report::accept`], so the limits and messages are
//! those of `PerformanceData`.

use super::{AnyValue, KeyValue, LogRecord, Resource, any_value::Value};
use crate::event::InvalidReport;
use crate::pb::{Event, PerformanceData};
use crate::report::Report;
use prost::Message;

/// The attribute naming the sender, on the record or its resource.
pub const SENDER_ATTRIBUTE: &str = "perfstats.sender";
/// The attribute naming the event when the record has no `event_name`.
pub const EVENT_ATTRIBUTE: &str = "perfstats.event";
/// The attribute holding the message when the record has no body.
pub const MESSAGE_ATTRIBUTE: &str = "perfstats.message";
/// The attribute holding the report id (else one is derived from the record).
pub const REPORT_ID_ATTRIBUTE: &str = "perfstats.report_id";
/// The resource attributes that name the sender after `perfstats.sender`, in order.
pub const SENDER_RESOURCE_ATTRIBUTES: [&str; 3] =
    ["service.instance.id", "host.name", "service.name"];

/// The namespace of the hash in derived report ids.
const REPORT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5f1e_53b2_8c4d_4a61_9d0e_7b3f_2a6c_1e84);

/// The value of attribute `key` as text: a string as it is, a number or boolean
/// written out; `None` when absent, empty or of another kind.
fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes
        .iter()
        .find(|pair| pair.key == key)?
        .value
        .as_ref()?;
    let text = match value.value.as_ref()? {
        Value::StringValue(text) => text.clone(),
        Value::IntValue(number) => number.to_string(),
        Value::DoubleValue(number) => number.to_string(),
        Value::BoolValue(flag) => flag.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// An `AnyValue` as plain JSON: maps as objects, arrays as arrays, bytes as hex.
fn plain_json(value: &AnyValue) -> serde_json::Value {
    use serde_json::Value as Json;
    match &value.value {
        // A string table index only has a meaning in profiles, not in logs.
        None | Some(Value::StringValueStrindex(_)) => Json::Null,
        Some(Value::StringValue(text)) => Json::String(text.clone()),
        Some(Value::BoolValue(flag)) => Json::Bool(*flag),
        Some(Value::IntValue(number)) => Json::from(*number),
        Some(Value::DoubleValue(number)) => Json::from(*number),
        Some(Value::ArrayValue(array)) => {
            Json::Array(array.values.iter().map(plain_json).collect())
        }
        Some(Value::KvlistValue(list)) => Json::Object(
            list.values
                .iter()
                .map(|pair| {
                    let value = pair.value.as_ref().map_or(Json::Null, plain_json);
                    (pair.key.clone(), value)
                })
                .collect(),
        ),
        Some(Value::BytesValue(bytes)) => {
            Json::String(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
        }
    }
}

fn sender(resource: &[KeyValue], record: &LogRecord) -> String {
    attribute(&record.attributes, SENDER_ATTRIBUTE)
        .or_else(|| attribute(resource, SENDER_ATTRIBUTE))
        .or_else(|| {
            SENDER_RESOURCE_ATTRIBUTES
                .iter()
                .find_map(|key| attribute(resource, key))
        })
        .unwrap_or_default()
}

fn event(record: &LogRecord) -> Result<Event, InvalidReport> {
    let name = match record.event_name.is_empty() {
        false => record.event_name.clone(),
        true => attribute(&record.attributes, EVENT_ATTRIBUTE).ok_or_else(|| InvalidReport {
            field: "event",
            rule: format!(
                "missing: set the log record's event_name or the attribute {EVENT_ATTRIBUTE}"
            ),
        })?,
    };
    name.parse()
        .map_err(|unknown: crate::event::UnknownEvent| InvalidReport {
            field: "event",
            rule: unknown.to_string(),
        })
}

fn message(record: &LogRecord) -> String {
    match record.body.as_ref().and_then(|body| body.value.as_ref()) {
        Some(Value::StringValue(text)) if !text.is_empty() => text.clone(),
        Some(Value::StringValue(_)) | None => {
            attribute(&record.attributes, MESSAGE_ATTRIBUTE).unwrap_or_default()
        }
        Some(_) => plain_json(record.body.as_ref().expect("matched a body")).to_string(),
    }
}

/// The event's time as sent, 0 for none (the server's receive time then).
fn time(record: &LogRecord) -> Result<i64, InvalidReport> {
    let sent = match record.time_unix_nano {
        0 => record.observed_time_unix_nano,
        time => time,
    };
    i64::try_from(sent).map_err(|_| InvalidReport {
        field: "time_unix_nano",
        rule: format!("must be below 2^63 nanoseconds (got {sent})"),
    })
}

/// The report id of a record that names none, derived from the resource's and the
/// record's protobuf bytes as sent (whatever encoding they came in), so an
/// exporter's retry of the same request finds its reports stored already. Laid out
/// as UUIDv7 is (RFC 9562 version 8): the record's time in milliseconds and the
/// millisecond's fraction in 12 bits, then 62 bits of the SHA-1 of those bytes
/// (UUIDv5's hash). Ids sort by time, as the Rust client's UUIDv7 do, so SQLite's
/// index of report ids grows at its end: with hashes alone, at random pages, the
/// same store took OTLP records ~5× slower.
pub fn derived_report_id(resource: Option<&Resource>, record: &LogRecord) -> String {
    let mut bytes = resource.map(Message::encode_to_vec).unwrap_or_default();
    bytes.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    record.encode(&mut bytes).expect("a Vec grows as needed");
    let hash = uuid::Uuid::new_v5(&REPORT_ID_NAMESPACE, &bytes);
    let sent = match record.time_unix_nano {
        0 => record.observed_time_unix_nano,
        time => time,
    };
    let fraction = ((sent % 1_000_000) * 4096 / 1_000_000) as u16;
    let mut id = [0u8; 16];
    id[..6].copy_from_slice(&(sent / 1_000_000).to_be_bytes()[2..]);
    id[6..8].copy_from_slice(&fraction.to_be_bytes());
    id[8..].copy_from_slice(&hash.as_bytes()[..8]);
    uuid::Uuid::new_v8(id).to_string()
}

/// The report `record` (of `resource`) stands for, validated like any report and
/// received at `received_unix_nano`; or the rule it broke.
pub fn to_report(
    resource: Option<&Resource>,
    record: &LogRecord,
    received_unix_nano: i64,
) -> Result<Report, InvalidReport> {
    let resource_attributes = resource.map_or(&[][..], |resource| &resource.attributes);
    let data = PerformanceData {
        time_unix_nano: time(record)?,
        sender: sender(resource_attributes, record),
        event: event(record)? as i32,
        message: message(record),
        report_id: attribute(&record.attributes, REPORT_ID_ATTRIBUTE)
            .unwrap_or_else(|| derived_report_id(resource, record)),
    };
    Report::accept(data, received_unix_nano)
}

#[cfg(test)]
mod tests {
    use super::super::{ArrayValue, KeyValueList};
    use super::*;

    fn value(value: Value) -> Option<AnyValue> {
        Some(AnyValue { value: Some(value) })
    }

    fn text(key: &str, text: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value(Value::StringValue(text.into())),
            ..Default::default()
        }
    }

    fn resource(pairs: &[(&str, &str)]) -> Resource {
        Resource {
            attributes: pairs.iter().map(|(key, value)| text(key, value)).collect(),
            ..Default::default()
        }
    }

    fn record(event_name: &str, body: &str) -> LogRecord {
        LogRecord {
            time_unix_nano: 1_000,
            observed_time_unix_nano: 2_000,
            event_name: event_name.into(),
            body: value(Value::StringValue(body.into())),
            ..Default::default()
        }
    }

    #[test]
    fn the_sender_comes_from_the_first_source_that_has_one() {
        let full = resource(&[
            ("service.name", "svc"),
            ("host.name", "host"),
            ("service.instance.id", "instance"),
            ("perfstats.sender", "on-resource"),
        ]);
        let mut on_record = record("83", "b");
        on_record
            .attributes
            .push(text("perfstats.sender", "on-record"));
        let sender = |resource: &Resource, record: &LogRecord| {
            to_report(Some(resource), record, 9).unwrap().sender
        };
        assert_eq!(sender(&full, &on_record), "on-record");
        assert_eq!(sender(&full, &record("83", "b")), "on-resource");
        let rest = resource(&[
            ("service.name", "svc"),
            ("host.name", "host"),
            ("service.instance.id", "id"),
        ]);
        assert_eq!(sender(&rest, &record("83", "b")), "id");
        assert_eq!(
            sender(
                &resource(&[("service.name", "svc"), ("host.name", "host")]),
                &record("83", "b")
            ),
            "host"
        );
        assert_eq!(
            sender(&resource(&[("service.name", "svc")]), &record("83", "b")),
            "svc"
        );
        let refused = to_report(Some(&resource(&[])), &record("83", "b"), 9).unwrap_err();
        assert_eq!(refused.to_string(), "sender: must not be empty");
    }

    #[test]
    fn the_event_is_the_event_name_else_the_attribute_in_any_spelling() {
        let node = resource(&[("service.instance.id", "1f")]);
        for name in [
            "new-block-received",
            "EVENT_NEW_BLOCK_RECEIVED",
            "Event_NewBlockReceived",
            "83",
        ] {
            let report = to_report(Some(&node), &record(name, "b"), 9).unwrap();
            assert_eq!(report.event, Event::NewBlockReceived, "{name}");
            let mut by_attribute = record("", "b");
            by_attribute.attributes.push(text("perfstats.event", name));
            let report = to_report(Some(&node), &by_attribute, 9).unwrap();
            assert_eq!(report.event, Event::NewBlockReceived, "{name}");
        }
        let mut numbered = record("", "b");
        numbered.attributes.push(KeyValue {
            key: "perfstats.event".into(),
            value: value(Value::IntValue(77)),
            ..Default::default()
        });
        assert_eq!(
            to_report(Some(&node), &numbered, 9).unwrap().event,
            Event::InitialSyncCompleted
        );
        let unknown = to_report(Some(&node), &record("nope", "b"), 9).unwrap_err();
        assert_eq!(unknown.field, "event");
        assert!(
            unknown.rule.starts_with("unknown event \"nope\""),
            "{unknown}"
        );
    }

    #[test]
    fn the_message_is_the_body_its_json_or_the_attribute_and_limits_apply() {
        let node = resource(&[("service.instance.id", "1f")]);
        let mut structured = record("83", "");
        structured.body = value(Value::KvlistValue(KeyValueList {
            values: vec![
                text("block", "7"),
                KeyValue {
                    key: "peers".into(),
                    value: value(Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Value::IntValue(3)),
                        }],
                    })),
                    ..Default::default()
                },
            ],
        }));
        assert_eq!(
            to_report(Some(&node), &structured, 9).unwrap().message,
            r#"{"block":"7","peers":[3]}"#
        );
        let mut no_body = record("83", "");
        no_body.body = None;
        assert_eq!(
            to_report(Some(&node), &no_body, 9).unwrap_err().to_string(),
            "message: must not be empty"
        );
        no_body
            .attributes
            .push(text("perfstats.message", "from attribute"));
        assert_eq!(
            to_report(Some(&node), &no_body, 9).unwrap().message,
            "from attribute"
        );
        let long = to_report(Some(&node), &record("83", &"m".repeat(4097)), 9).unwrap_err();
        assert_eq!(
            long.to_string(),
            "message: must be at most 4096 bytes (got 4097)"
        );
    }

    #[test]
    fn the_time_is_the_records_else_observed_else_received() {
        let node = resource(&[("service.instance.id", "1f")]);
        let mut sent = record("83", "b");
        assert_eq!(
            to_report(Some(&node), &sent, 9).unwrap().time_unix_nano,
            1_000
        );
        sent.time_unix_nano = 0;
        assert_eq!(
            to_report(Some(&node), &sent, 9).unwrap().time_unix_nano,
            2_000
        );
        sent.observed_time_unix_nano = 0;
        let report = to_report(Some(&node), &sent, 9).unwrap();
        assert_eq!((report.time_unix_nano, report.received_unix_nano), (9, 9));
        sent.time_unix_nano = u64::MAX;
        assert_eq!(
            to_report(Some(&node), &sent, 9).unwrap_err().field,
            "time_unix_nano"
        );
    }

    #[test]
    fn the_report_id_is_the_attribute_else_derived_from_the_record_as_sent() {
        let node = resource(&[("service.instance.id", "1f")]);
        let id = |record: &LogRecord| to_report(Some(&node), record, 9).unwrap().report_id;
        let sent = record("83", "b");
        assert_eq!(id(&sent), id(&sent.clone()), "a resend is a duplicate");
        assert_eq!(
            to_report(Some(&node), &sent, 12345).unwrap().report_id,
            id(&sent)
        );
        let mut later = sent.clone();
        later.time_unix_nano += 1;
        assert_ne!(id(&later), id(&sent));
        let other = resource(&[("service.instance.id", "2f")]);
        assert_ne!(
            to_report(Some(&other), &sent, 9).unwrap().report_id,
            id(&sent)
        );
        assert_eq!(id(&sent).len(), 36);
        // The time leads, as in UUIDv7: 1_000 ns is millisecond 0.
        assert!(id(&sent).starts_with("00000000-0000-8"), "{}", id(&sent));
        let mut much_later = sent.clone();
        much_later.time_unix_nano = 1_700_000_000_000_000_000;
        assert!(
            id(&much_later).starts_with("018bcfe5-6800-8"),
            "{}",
            id(&much_later)
        );
        let mut named = sent.clone();
        named.attributes.push(text("perfstats.report_id", "my-id"));
        assert_eq!(id(&named), "my-id");
        named.attributes[0] = text("perfstats.report_id", &"x".repeat(65));
        assert_eq!(
            to_report(Some(&node), &named, 9).unwrap_err().to_string(),
            "report_id: must be at most 64 bytes"
        );
    }
}
