//! Property tests of the request path: whatever bytes arrive as a report, decoding
//! and validation never panic, and what they accept obeys every rule.

use perfstats::Event;
use perfstats::pb::PerformanceData;
use perfstats::report::Report;
use proptest::prelude::*;
use prost::Message;

fn plausible() -> impl Strategy<Value = PerformanceData> {
    (
        any::<i64>(),
        ".{0,300}",
        prop_oneof![Just(0), 60..100i32, any::<i32>()],
        prop_oneof![".{0,20}", ".{4090,4100}"],
        ".{0,70}",
    )
        .prop_map(
            |(time_unix_nano, sender, event, message, report_id)| PerformanceData {
                time_unix_nano,
                sender,
                event,
                message,
                report_id,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn random_bytes_decode_and_validate_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(data) = PerformanceData::decode(bytes.as_slice()) {
            let _ = Report::accept(data, 1);
        }
    }

    #[test]
    fn accepted_reports_obey_every_rule(data in plausible()) {
        let sent = data.clone();
        match Report::accept(data, 42) {
            Ok(report) => {
                prop_assert!((1..=256).contains(&report.sender.len()));
                prop_assert!((1..=4096).contains(&report.message.len()));
                prop_assert!((71..=87).contains(&(report.event as i32)));
                prop_assert!(report.time_unix_nano > 0 || sent.time_unix_nano == 0);
                prop_assert_eq!(report.time_unix_nano, if sent.time_unix_nano == 0 { 42 } else { sent.time_unix_nano });
                prop_assert!(!report.report_id.is_empty() && report.report_id.len() <= 64);
            }
            Err(invalid) => {
                prop_assert!(["sender", "message", "event", "time_unix_nano", "report_id"].contains(&invalid.field));
                prop_assert!(invalid.to_string().starts_with(invalid.field));
            }
        }
    }

    #[test]
    fn encoded_reports_survive_the_wire(data in plausible()) {
        let decoded = PerformanceData::decode(data.encode_to_vec().as_slice()).unwrap();
        prop_assert_eq!(decoded, data);
    }

    #[test]
    fn event_names_parse_or_refuse_without_panicking(text in ".{0,40}") {
        if let Ok(event) = text.parse::<Event>() {
            prop_assert_ne!(event, Event::Unspecified);
            prop_assert_eq!(event.to_string().parse::<Event>(), Ok(event));
        }
    }
}
