//! Property tests of the request path: whatever bytes arrive as a report, decoding
//! and validation never panic; a report is accepted exactly when every rule holds,
//! and a refusal names the first rule broken. The strategies aim at the edges on
//! purpose (time 0, every length limit and its neighbours, the first and last
//! events), and most generated reports are valid, so the accept path runs often.

use perfstats::Event;
use perfstats::event::{MAX_MESSAGE_BYTES, MAX_SENDER_BYTES};
use perfstats::pb::PerformanceData;
use perfstats::report::Report;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use prost::Message;

/// Text of exactly `len` bytes: random characters (some multi-byte) while they fit,
/// then `x`s to the exact length.
fn text_of_len(len: usize) -> impl Strategy<Value = String> {
    "[a-zé✓ \u{1F600}]{0,40}".prop_map(move |start| {
        let mut text = String::new();
        for c in start.chars() {
            if text.len() + c.len_utf8() > len {
                break;
            }
            text.push(c);
        }
        while text.len() < len {
            text.push('x');
        }
        text
    })
}

/// A length: usually a valid one, often one at or next to a limit.
fn length(max: usize, valid_weight: u32) -> impl Strategy<Value = usize> {
    prop_oneof![
        valid_weight => prop_oneof![Just(1), Just(max - 1), Just(max), 1..=max],
        1 => prop_oneof![Just(0), Just(max + 1), (max + 1)..(max + 300)],
    ]
}

fn time() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => Just(0i64),
        3 => 1..=i64::MAX,
        1 => Just(i64::MAX),
        1 => Just(1i64),
        1 => Just(-1i64),
        1 => Just(i64::MIN),
        1 => i64::MIN..0,
    ]
}

fn event() -> impl Strategy<Value = i32> {
    prop_oneof![
        12 => 71..=87i32,
        1 => Just(71),
        1 => Just(87),
        1 => Just(0),
        1 => Just(70),
        1 => Just(88),
        1 => any::<i32>(),
    ]
}

fn report_id() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(String::new()),
        6 => (0usize..=64).prop_flat_map(text_of_len),
        1 => Just(63usize).prop_flat_map(text_of_len),
        1 => Just(64usize).prop_flat_map(text_of_len),
        1 => Just(65usize).prop_flat_map(text_of_len),
        1 => (65usize..200).prop_flat_map(text_of_len),
    ]
}

/// Reports near the rules' edges; about half break no rule.
fn plausible() -> impl Strategy<Value = PerformanceData> {
    (
        time(),
        length(MAX_SENDER_BYTES, 12).prop_flat_map(text_of_len),
        event(),
        length(MAX_MESSAGE_BYTES, 12).prop_flat_map(text_of_len),
        report_id(),
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

/// The rules as the README states them, in the order validation checks them: the
/// field the first broken rule names, or `None` when the report is valid.
fn first_broken_rule(data: &PerformanceData) -> Option<&'static str> {
    if data.sender.is_empty() || data.sender.len() > 256 {
        Some("sender")
    } else if data.message.is_empty() || data.message.len() > 4096 {
        Some("message")
    } else if data.time_unix_nano < 0 {
        Some("time_unix_nano")
    } else if data.report_id.len() > 64 {
        Some("report_id")
    } else if !(71..=87).contains(&data.event) {
        Some("event")
    } else {
        None
    }
}

/// Every spelling the README promises for `event`.
fn spellings(event: Event) -> Vec<String> {
    let proto = event.as_str_name(); // EVENT_NEW_BLOCK_RECEIVED
    let bare = proto.strip_prefix("EVENT_").unwrap();
    vec![
        proto.to_string(),
        proto.to_ascii_lowercase(),
        bare.to_string(),
        bare.to_ascii_lowercase().replace('_', "-"),
        event.seed_name().to_string(),
        event.to_string(),
        (event as i32).to_string(),
        format!(" {} ", event as i32),
    ]
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
    fn a_report_is_accepted_exactly_when_every_rule_holds(data in plausible()) {
        let sent = data.clone();
        match (Report::accept(data, 42), first_broken_rule(&sent)) {
            (Ok(report), None) => {
                prop_assert_eq!(&report.sender, &sent.sender);
                prop_assert_eq!(&report.message, &sent.message);
                prop_assert_eq!(report.event as i32, sent.event);
                prop_assert_eq!(report.received_unix_nano, 42);
                prop_assert_eq!(
                    report.time_unix_nano,
                    if sent.time_unix_nano == 0 { 42 } else { sent.time_unix_nano },
                    "time 0 is stamped with the receive time, any other kept"
                );
                if sent.report_id.is_empty() {
                    prop_assert!(uuid::Uuid::parse_str(&report.report_id).is_ok(), "{}", report.report_id);
                } else {
                    prop_assert_eq!(&report.report_id, &sent.report_id);
                }
            }
            (Err(invalid), Some(field)) => {
                prop_assert_eq!(invalid.field, field, "{}", invalid);
                let prefix = format!("{field}: ");
                prop_assert!(invalid.to_string().starts_with(&prefix), "{}", invalid);
            }
            (Ok(_), Some(field)) => prop_assert!(false, "accepted although {} breaks a rule", field),
            (Err(invalid), None) => prop_assert!(false, "refused a valid report: {}", invalid),
        }
    }

    #[test]
    fn encoded_reports_survive_the_wire(data in plausible()) {
        let decoded = PerformanceData::decode(data.encode_to_vec().as_slice()).unwrap();
        prop_assert_eq!(decoded, data);
    }

    #[test]
    fn every_spelling_of_every_event_parses_and_round_trips(
        index in 0usize..17,
        flips in proptest::collection::vec(any::<bool>(), 0..40),
    ) {
        let event = Event::all().nth(index).unwrap();
        for spelling in spellings(event) {
            prop_assert_eq!(spelling.parse::<Event>(), Ok(event), "{:?}", spelling);
            // Any mix of upper and lower case too.
            let mixed: String = spelling
                .chars()
                .zip(flips.iter().chain(std::iter::repeat(&false)))
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect();
            prop_assert_eq!(mixed.parse::<Event>(), Ok(event), "{:?}", mixed);
        }
        prop_assert_eq!(event.to_string().parse::<Event>(), Ok(event));
    }

    #[test]
    fn other_text_is_refused_or_names_a_defined_event(text in ".{0,40}") {
        if let Ok(event) = text.parse::<Event>() {
            prop_assert_ne!(event, Event::Unspecified);
            prop_assert_eq!(event.to_string().parse::<Event>(), Ok(event));
        }
    }
}

#[test]
fn undefined_events_and_near_misses_are_refused() {
    for text in [
        "",
        "0",
        "70",
        "88",
        "-83",
        "unspecified",
        "EVENT_UNSPECIFIED",
        "Event_Unspecified",
        "new-block",
        "new-block-received-x",
        "EVENT_",
        "83x",
    ] {
        assert!(text.parse::<Event>().is_err(), "{text:?} parsed");
    }
}

/// The strategy reaches what the properties are about: if it stopped generating
/// time 0, messages at exactly 4,096 bytes or valid reports, the properties above
/// would pass without testing them. Counts over 2,000 draws (deterministic seed);
/// each bound is a small fraction of what the weights give, and far above zero.
#[test]
fn the_strategy_reaches_every_edge() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = plausible();
    let (mut valid, mut stamped, mut message_at_limit, mut message_over) = (0, 0, 0, 0);
    let (mut sender_at_limit, mut id_at_limit, mut id_over, mut event_edges) = (0, 0, 0, 0);
    const DRAWS: usize = 2_000;
    for _ in 0..DRAWS {
        let data = strategy.new_tree(&mut runner).unwrap().current();
        let ok = first_broken_rule(&data).is_none();
        valid += ok as usize;
        stamped += (ok && data.time_unix_nano == 0) as usize;
        message_at_limit += (data.message.len() == MAX_MESSAGE_BYTES) as usize;
        message_over += (data.message.len() == MAX_MESSAGE_BYTES + 1) as usize;
        sender_at_limit += (data.sender.len() == MAX_SENDER_BYTES) as usize;
        id_at_limit += (data.report_id.len() == 64) as usize;
        id_over += (data.report_id.len() == 65) as usize;
        event_edges += (data.event == 71 || data.event == 87) as usize;
    }
    println!(
        "of {DRAWS}: {valid} valid, {stamped} valid with time 0, message 4096/4097 bytes {message_at_limit}/{message_over}, \
         sender 256 bytes {sender_at_limit}, report_id 64/65 bytes {id_at_limit}/{id_over}, event 71 or 87 {event_edges}"
    );
    assert!(valid >= DRAWS / 4, "valid reports: {valid}");
    assert!(stamped >= 50, "valid reports with time 0: {stamped}");
    for (what, count) in [
        ("message at 4096", message_at_limit),
        ("message at 4097", message_over),
        ("sender at 256", sender_at_limit),
        ("report_id at 64", id_at_limit),
        ("report_id at 65", id_over),
        ("event 71 or 87", event_edges),
    ] {
        assert!(count >= 20, "{what}: {count}");
    }
}
