//! OTLP/JSON, which is not generic protobuf JSON: trace and span ids are hex,
//! 64-bit integers may be strings or numbers, keys are lowerCamelCase, and enums
//! may be names or numbers. `opentelemetry-proto`'s serde mapping covers all but
//! the last: `severityNumber` names (`SEVERITY_NUMBER_INFO`) are turned into their
//! numbers here before it decodes.

use super::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
use serde_json::Value;

/// Decodes an OTLP/JSON `ExportLogsServiceRequest`; the error says what is wrong
/// and where.
pub fn decode_request(body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|error| format!("body: not JSON: {error}"))?;
    severity_names_to_numbers(&mut value)?;
    serde_json::from_value(value)
        .map_err(|error| format!("body: not an OTLP/JSON ExportLogsServiceRequest: {error}"))
}

/// Replaces every `severityNumber` given by name with its number.
fn severity_names_to_numbers(request: &mut Value) -> Result<(), String> {
    let Some(resource_logs) = request
        .get_mut("resourceLogs")
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    for resource in resource_logs {
        let Some(scopes) = resource.get_mut("scopeLogs").and_then(Value::as_array_mut) else {
            continue;
        };
        for scope in scopes {
            let Some(records) = scope.get_mut("logRecords").and_then(Value::as_array_mut) else {
                continue;
            };
            for record in records {
                let Some(severity) = record.get_mut("severityNumber") else {
                    continue;
                };
                if let Value::String(name) = severity {
                    let number = SeverityNumber::from_str_name(name).ok_or_else(|| {
                        format!(
                            "severityNumber: {name:?} is not a SeverityNumber name \
                             (SEVERITY_NUMBER_INFO, …) or number"
                        )
                    })?;
                    *severity = Value::from(number as i32);
                }
            }
        }
    }
    Ok(())
}

/// The answer as OTLP/JSON: `{}` for full success, else the partial success with
/// its count as a string (a 64-bit integer, as OTLP/JSON writes them).
pub fn encode_response(response: &ExportLogsServiceResponse) -> Vec<u8> {
    let body = match &response.partial_success {
        Some(partial) => serde_json::json!({
            "partialSuccess": {
                "rejectedLogRecords": partial.rejected_log_records.to_string(),
                "errorMessage": partial.error_message,
            }
        }),
        None => serde_json::json!({}),
    };
    body.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the OTLP specification's example and the SDKs' JSON exporters send.
    const REQUEST: &str = r#"{"resourceLogs":[{"resource":{"attributes":[
        {"key":"service.instance.id","value":{"stringValue":"1f"}},
        {"key":"pid","value":{"intValue":"4242"}}]},
      "scopeLogs":[{"scope":{"name":"node"},"logRecords":[
        {"timeUnixNano":"1544712660300000000","observedTimeUnixNano":1544712660300000001,
         "severityNumber":"SEVERITY_NUMBER_INFO","severityText":"Information",
         "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174",
         "eventName":"new-block-received","body":{"stringValue":"block 7"},
         "attributes":[{"key":"peers","value":{"intValue":3}}]},
        {"timeUnixNano":"1544712660400000000","severityNumber":9,
         "attributes":[{"key":"perfstats.event","value":{"stringValue":"83"}},
                       {"key":"perfstats.message","value":{"stringValue":"block 8"}}]}
      ]}]}]}"#;

    #[test]
    fn otlp_json_decodes_hex_ids_string_integers_and_enum_names() {
        let request = decode_request(REQUEST.as_bytes()).unwrap();
        let records = &request.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].time_unix_nano, 1_544_712_660_300_000_000);
        assert_eq!(
            records[0].observed_time_unix_nano,
            1_544_712_660_300_000_001
        );
        assert_eq!(records[0].severity_number, SeverityNumber::Info as i32);
        assert_eq!(records[1].severity_number, 9);
        assert_eq!(records[0].trace_id.len(), 16);
        assert_eq!(
            records[0].span_id,
            [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        );
        assert_eq!(records[0].event_name, "new-block-received");
        let mapped = super::super::map_request(&request, 1);
        assert_eq!(mapped.refused, []);
        assert_eq!(mapped.reports[1].message, "block 8");
        assert_eq!(mapped.reports[1].sender, "1f");
    }

    #[test]
    fn bad_json_names_the_problem() {
        assert!(
            decode_request(b"{")
                .unwrap_err()
                .starts_with("body: not JSON")
        );
        let unknown = REQUEST.replace("SEVERITY_NUMBER_INFO", "LOUD");
        assert!(
            decode_request(unknown.as_bytes())
                .unwrap_err()
                .starts_with("severityNumber: \"LOUD\""),
        );
        let bad_hex = REQUEST.replace("eee19b7ec3c1b174", "zz");
        assert!(
            decode_request(bad_hex.as_bytes())
                .unwrap_err()
                .contains("OTLP/JSON")
        );
    }

    #[test]
    fn the_answer_is_empty_on_success_and_counts_as_a_string() {
        let full = ExportLogsServiceResponse {
            partial_success: None,
        };
        assert_eq!(encode_response(&full), b"{}");
        let partial = ExportLogsServiceResponse {
            partial_success: Some(super::super::ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "why".into(),
            }),
        };
        let json: Value = serde_json::from_slice(&encode_response(&partial)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "why"}})
        );
    }
}
