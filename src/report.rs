//! The stored report type and the time helpers, shared by the store, the analysis
//! and the client (none of which needs the others for it).

use crate::pb::Event;
use serde::{Serialize, Serializer};

/// One stored report, as the HTTP API shows it (`event` as its proto name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Position in the store, from 1; assigned when stored.
    pub seq: u64,
    /// The id of the run it belongs to; assigned when stored.
    pub run: u64,
    /// When the event happened (the server's receive time when the node sent 0).
    pub time_unix_nano: i64,
    /// When the server received it.
    pub received_unix_nano: i64,
    /// The reporting node.
    pub sender: String,
    /// What happened.
    #[serde(serialize_with = "event_name")]
    pub event: Event,
    /// Free text about the event.
    pub message: String,
    /// The client's idempotency key (or one the server chose).
    pub report_id: String,
}

/// Lets code over reports take `&[Report]` and `&[Arc<Report>]` alike.
impl AsRef<Report> for Report {
    fn as_ref(&self) -> &Report {
        self
    }
}

fn event_name<S: Serializer>(event: &Event, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(event.as_str_name())
}

impl Report {
    /// Validates a wire report and turns it into one ready to store: a zero time is
    /// stamped with `received_unix_nano`, an empty `report_id` gets a fresh UUIDv7.
    pub fn accept(
        data: crate::pb::PerformanceData,
        received_unix_nano: i64,
    ) -> Result<Report, crate::event::InvalidReport> {
        let event = crate::event::validate(&data)?;
        Ok(Report {
            seq: 0,
            run: 0,
            time_unix_nano: if data.time_unix_nano == 0 {
                received_unix_nano
            } else {
                data.time_unix_nano
            },
            received_unix_nano,
            sender: data.sender,
            event,
            message: data.message,
            report_id: if data.report_id.is_empty() {
                uuid::Uuid::now_v7().to_string()
            } else {
                data.report_id
            },
        })
    }
}

/// Now, in nanoseconds since the Unix epoch.
pub fn now_unix_nano() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as i64)
}
