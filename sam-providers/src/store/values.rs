//! Domain values as stored, and back.

use sam_core::domain::Timestamp;
use sam_core::lifecycle::WorkspaceStatus;
use sam_core::ports::{StoreError, StoreErrorKind};

/// Nanoseconds since the epoch, as stored.
pub(crate) fn ts(t: Timestamp) -> Result<i64, StoreError> {
    i64::try_from(t.unix_timestamp_nanos())
        .map_err(|_| StoreError::new(StoreErrorKind::Other, "timestamp outside the storable range (1677-2262)"))
}

/// A stored timestamp back.
pub(crate) fn from_ts(nanos: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_timestamp_nanos(i128::from(nanos))
        .map_err(|_| StoreError::new(StoreErrorKind::Corrupt, "stored timestamp out of range"))
}

/// A stored value that does not parse into its domain type.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, format!("stored {what} is invalid"))
}

/// Parses a stored text column into a domain type.
pub(crate) fn parse<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, StoreError> {
    value.parse().map_err(|_| corrupt(what))
}

/// A comma-framed status list (`,pending,running,`) for the portable
/// `$n LIKE '%,' || status || ',%'` filter; empty means every status.
pub(crate) fn status_list(statuses: &[WorkspaceStatus]) -> String {
    if statuses.is_empty() {
        return String::new();
    }
    let mut out = String::from(",");
    for s in statuses {
        out.push_str(s.as_str());
        out.push(',');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_with_nanoseconds() {
        let t = Timestamp::from_unix_timestamp_nanos(1_767_225_600_123_456_789).unwrap();
        assert_eq!(from_ts(ts(t).unwrap()).unwrap(), t);
    }

    #[test]
    fn status_lists_are_comma_framed() {
        assert_eq!(status_list(&[]), "");
        assert_eq!(status_list(&[WorkspaceStatus::Pending, WorkspaceStatus::Error]), ",pending,error,");
    }
}
