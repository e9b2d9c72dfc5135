//! Time as the service stores it (whole epoch seconds: DynamoDB TTL's unit) and shows it (RFC 3339).

use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};

pub type EpochSeconds = i64;

pub fn now() -> EpochSeconds {
    DateTime::from(std::time::SystemTime::now()).secs()
}

/// `2026-11-26T03:20:00Z`: lexically ordered, so the latest of several is their maximum.
pub fn rfc3339(at: EpochSeconds) -> String {
    DateTime::from_secs(at).fmt(DateTimeFormat::DateTime).unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_whole_seconds_in_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
