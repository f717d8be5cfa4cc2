//! Event names in every spelling users type, and the validation rules every report
//! passes before it is stored (the same rules for gRPC and the legacy HTTP form).

use crate::pb::{Event, PerformanceData};
use std::fmt;
use std::str::FromStr;

/// Longest accepted `sender`, in bytes.
pub const MAX_SENDER_BYTES: usize = 256;
/// Longest accepted `message`, in bytes (4 KiB).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Every defined event with the name the original Go package printed for it.
const SEED_NAMES: [(Event, &str); 17] = [
    (Event::Libp2pNodeIdKnown, "Event_Libp2pNodeIDKnown"),
    (Event::FirstPeerConnected, "Event_FirstPeerConnected"),
    (Event::NewPeerConnected, "Event_NewPeerConnected"),
    (Event::RaConnected, "Event_RAConnected"),
    (
        Event::InitialSyncChaindbReceived,
        "Event_InitialSyncChaindbReceived",
    ),
    (
        Event::InitialSyncChaindbVerified,
        "Event_InitialSyncChaindbVerified",
    ),
    (Event::InitialSyncCompleted, "Event_InitialSyncCompleted"),
    (Event::SimtaskReceived, "Event_SimtaskReceived"),
    (Event::TransactionReceived, "Event_TransactionReceived"),
    (Event::MinerCommitReceived, "Event_MinerCommitReceived"),
    (Event::RaCommitRevealed, "Event_RACommitRevealed"),
    (Event::BlockWinnerFound, "Event_BlockWinnerFound"),
    (Event::NewBlockReceived, "Event_NewBlockReceived"),
    (Event::RaNewProblemSent, "Event_RANewProblemSent"),
    (Event::RaNewBlockSent, "Event_RANewBlockSent"),
    (Event::RaCommitRevealSent, "Event_RACommitRevealSent"),
    (
        Event::RaReceivedSimulationData,
        "Event_RAReceivedSimulationData",
    ),
];

impl Event {
    /// Every defined event (all but `Unspecified`), in number order.
    pub fn all() -> impl Iterator<Item = Event> {
        SEED_NAMES.iter().map(|(event, _)| *event)
    }

    /// The name the original Go package printed, e.g. `Event_NewBlockReceived`.
    pub fn seed_name(self) -> &'static str {
        SEED_NAMES
            .iter()
            .find(|(event, _)| *event == self)
            .map_or("Event_Unspecified", |(_, name)| name)
    }

    /// The defined, non-zero event with this number, if any.
    pub fn from_number(number: i32) -> Option<Event> {
        Event::try_from(number)
            .ok()
            .filter(|event| *event != Event::Unspecified)
    }

    /// The short label of a sync phase, as the dashboard heads its column
    /// (`synced` for `InitialSyncCompleted`); `None` for an event that is not one of
    /// the analysis's sync phases (`analysis::SYNC_PHASES`, whose test holds the
    /// two together). `GET /api/events` lists both.
    pub fn phase_label(self) -> Option<&'static str> {
        match self {
            Event::Libp2pNodeIdKnown => Some("id known"),
            Event::FirstPeerConnected => Some("first peer"),
            Event::RaConnected => Some("ra connected"),
            Event::InitialSyncChaindbReceived => Some("chaindb received"),
            Event::InitialSyncChaindbVerified => Some("chaindb verified"),
            Event::InitialSyncCompleted => Some("synced"),
            _ => None,
        }
    }
}

/// Shows the seed's name (`Event_NewBlockReceived`), as the Go package's `String()` did.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.seed_name())
    }
}

/// The text given was not the name or number of a defined event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEvent(pub String);

impl fmt::Display for UnknownEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown event {:?}: use a name such as new-block-received, NEW_BLOCK_RECEIVED, \
             EVENT_NEW_BLOCK_RECEIVED, Event_NewBlockReceived, or a number from 71 to 87",
            self.0
        )
    }
}

impl std::error::Error for UnknownEvent {}

/// Upper case with the `EVENT` prefix, `_` and `-` removed: the spelling-free key.
fn spelling_key(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("EVENT").unwrap_or(&upper);
    bare.chars().filter(|c| *c != '_' && *c != '-').collect()
}

/// Accepts `new-block-received`, `NEW_BLOCK_RECEIVED`, `EVENT_NEW_BLOCK_RECEIVED`,
/// `Event_NewBlockReceived` (any case) or the number `83`; never `Unspecified`.
impl FromStr for Event {
    type Err = UnknownEvent;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownEvent(text.to_string());
        if let Ok(number) = text.trim().parse::<i32>() {
            return Event::from_number(number).ok_or_else(unknown);
        }
        let key = spelling_key(text);
        Event::all()
            .find(|event| spelling_key(event.as_str_name()) == key)
            .ok_or_else(unknown)
    }
}

/// Why a report was refused: the field and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidReport {
    /// The offending field, as named in the proto (`sender`, `event`, …).
    pub field: &'static str,
    /// The rule it broke, in words.
    pub rule: String,
}

impl fmt::Display for InvalidReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

impl std::error::Error for InvalidReport {}

fn invalid(field: &'static str, rule: impl Into<String>) -> InvalidReport {
    InvalidReport {
        field,
        rule: rule.into(),
    }
}

/// Checks a report against the rules of the wire contract: sender and message
/// non-empty, sender ≤ 256 bytes, message ≤ 4 KiB, a defined non-zero event, a
/// non-negative time, a report id of at most 64 bytes. Returns the event.
pub fn validate(report: &PerformanceData) -> Result<Event, InvalidReport> {
    if report.sender.is_empty() {
        return Err(invalid("sender", "must not be empty"));
    }
    if report.sender.len() > MAX_SENDER_BYTES {
        return Err(invalid(
            "sender",
            format!(
                "must be at most {MAX_SENDER_BYTES} bytes (got {})",
                report.sender.len()
            ),
        ));
    }
    if report.message.is_empty() {
        return Err(invalid("message", "must not be empty"));
    }
    if report.message.len() > MAX_MESSAGE_BYTES {
        return Err(invalid(
            "message",
            format!(
                "must be at most {MAX_MESSAGE_BYTES} bytes (got {})",
                report.message.len()
            ),
        ));
    }
    if report.time_unix_nano < 0 {
        return Err(invalid(
            "time_unix_nano",
            "must not be negative (0 means: use the server's time)",
        ));
    }
    if report.report_id.len() > 64 {
        return Err(invalid("report_id", "must be at most 64 bytes"));
    }
    Event::from_number(report.event).ok_or_else(|| {
        invalid(
            "event",
            format!(
                "must be a defined event from 71 to 87 (got {})",
                report.event
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_to_the_same_event() {
        for text in [
            "new-block-received",
            "NEW_BLOCK_RECEIVED",
            "EVENT_NEW_BLOCK_RECEIVED",
            "Event_NewBlockReceived",
            "83",
        ] {
            assert_eq!(text.parse::<Event>(), Ok(Event::NewBlockReceived), "{text}");
        }
        assert_eq!(
            "Event_Libp2pNodeIDKnown".parse(),
            Ok(Event::Libp2pNodeIdKnown)
        );
        assert_eq!("ra-connected".parse(), Ok(Event::RaConnected));
    }

    #[test]
    fn unspecified_and_unknown_names_are_refused() {
        for text in [
            "0",
            "unspecified",
            "EVENT_UNSPECIFIED",
            "70",
            "88",
            "",
            "nope",
        ] {
            assert!(text.parse::<Event>().is_err(), "{text}");
        }
    }

    #[test]
    fn display_round_trips_and_numbers_match_the_seed() {
        let events: Vec<Event> = Event::all().collect();
        assert_eq!(events.len(), 17);
        for (offset, event) in events.iter().enumerate() {
            assert_eq!(*event as i32, 71 + offset as i32);
            assert_eq!(event.to_string().parse::<Event>(), Ok(*event));
            assert!(event.to_string().starts_with("Event_"));
        }
        assert_eq!(
            Event::RaReceivedSimulationData.to_string(),
            "Event_RAReceivedSimulationData"
        );
    }

    fn report(sender: &str, event: i32, message: &str) -> PerformanceData {
        PerformanceData {
            time_unix_nano: 1,
            sender: sender.into(),
            event,
            message: message.into(),
            report_id: String::new(),
        }
    }

    #[test]
    fn validation_names_the_field_and_the_rule() {
        let field = |r: PerformanceData| validate(&r).unwrap_err().field;
        assert_eq!(field(report("", 83, "m")), "sender");
        assert_eq!(field(report(&"s".repeat(257), 83, "m")), "sender");
        assert_eq!(field(report("s", 83, "")), "message");
        assert_eq!(field(report("s", 83, &"m".repeat(4097))), "message");
        assert_eq!(field(report("s", 0, "m")), "event");
        assert_eq!(field(report("s", 88, "m")), "event");
        let mut negative = report("s", 83, "m");
        negative.time_unix_nano = -1;
        assert_eq!(field(negative), "time_unix_nano");
        assert_eq!(
            validate(&report(&"s".repeat(256), 83, &"m".repeat(4096))),
            Ok(Event::NewBlockReceived)
        );
        assert_eq!(
            validate(&report("s", 83, &"m".repeat(4097)))
                .unwrap_err()
                .to_string(),
            "message: must be at most 4096 bytes (got 4097)"
        );
    }
}
