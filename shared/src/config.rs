//! Settings read from the environment once per cold start. A missing setting stops the function
//! at init with a message naming it, rather than failing on the first request.

use std::env;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `inventory-management`: one item per product and warehouse.
    pub stock_table: String,
    /// `inventory-reservations`: one item per hold.
    pub reservations_table: String,
    /// `inventory-requests`: idempotency records of holds and admin writes (TTL: a day or two).
    pub requests_table: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("missing required environment variable {0}")]
pub struct MissingSetting(pub &'static str);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingError {
    #[error(transparent)]
    Missing(#[from] MissingSetting),
    #[error("environment variable {name} must be {expected}, not {value:?}")]
    Invalid { name: &'static str, expected: &'static str, value: String },
}

/// A required setting other than the tables (e.g. `ALERTS_TOPIC_ARN`).
pub fn required(name: &'static str) -> Result<String, MissingSetting> {
    env::var(name).ok().filter(|value| !value.trim().is_empty()).ok_or(MissingSetting(name))
}

/// How long a hold lasts (`HOLD_SECONDS`, the template's HoldSeconds parameter).
pub fn hold_seconds() -> Result<i64, SettingError> {
    hold_seconds_from(|name| env::var(name).ok())
}

fn hold_seconds_from(lookup: impl Fn(&str) -> Option<String>) -> Result<i64, SettingError> {
    number_from(lookup, "HOLD_SECONDS", 1..=24 * 3600, "a number of seconds from 1 to 86400")
}

/// Whether holds need a signed-in shopper (`HOLDS_REQUIRE_SIGN_IN`, the template's HoldsRequireSignIn).
pub fn holds_require_sign_in() -> Result<bool, SettingError> {
    flag_from(|name| env::var(name).ok(), "HOLDS_REQUIRE_SIGN_IN")
}

fn flag_from(lookup: impl Fn(&str) -> Option<String>, name: &'static str) -> Result<bool, SettingError> {
    match lookup(name).ok_or(MissingSetting(name))?.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(SettingError::Invalid { name, expected: "true or false", value: other.to_owned() }),
    }
}

/// The quiet period after an alert (`ALERT_QUIET_SECONDS`, the template's AlertQuietSeconds):
/// crossings caused by holds wait for its end (`alerts::decide`); 0 turns damping off.
pub fn alert_policy() -> Result<crate::alerts::AlertPolicy, SettingError> {
    alert_policy_from(|name| env::var(name).ok())
}

fn alert_policy_from(lookup: impl Fn(&str) -> Option<String>) -> Result<crate::alerts::AlertPolicy, SettingError> {
    let quiet_seconds =
        number_from(lookup, "ALERT_QUIET_SECONDS", 0..=24 * 3600, "a number of seconds from 0 to 86400")?;
    Ok(crate::alerts::AlertPolicy { quiet_seconds })
}

/// How long the audit trail keeps an entry (`HISTORY_RETENTION_DAYS`, the template's parameter).
pub fn history_retention_seconds() -> Result<i64, SettingError> {
    let days =
        number_from(|name| env::var(name).ok(), "HISTORY_RETENTION_DAYS", 7..=3650, "a number of days from 7 to 3650")?;
    Ok(days * 24 * 3600)
}

fn number_from(
    lookup: impl Fn(&str) -> Option<String>,
    name: &'static str,
    range: std::ops::RangeInclusive<i64>,
    expected: &'static str,
) -> Result<i64, SettingError> {
    let value = lookup(name).ok_or(MissingSetting(name))?;
    value.trim().parse().ok().filter(|number| range.contains(number)).ok_or(SettingError::Invalid {
        name,
        expected,
        value,
    })
}

impl Config {
    pub fn from_env() -> Result<Self, MissingSetting> {
        Self::from_lookup(|name| env::var(name).ok())
    }

    /// The same as [`Config::from_env`] with the environment passed in, so tests need not mutate
    /// the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, MissingSetting> {
        let required =
            |name: &'static str| lookup(name).filter(|value| !value.trim().is_empty()).ok_or(MissingSetting(name));
        Ok(Self {
            stock_table: required("STOCK_TABLE")?,
            reservations_table: required("RESERVATIONS_TABLE")?,
            requests_table: required("REQUESTS_TABLE")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tables() {
        let config = Config::from_lookup(|name| Some(format!("{name}-value"))).unwrap();
        assert_eq!(config.stock_table, "STOCK_TABLE-value");
        assert_eq!(config.reservations_table, "RESERVATIONS_TABLE-value");
        assert_eq!(config.requests_table, "REQUESTS_TABLE-value");
    }

    #[test]
    fn names_the_missing_setting() {
        let err = Config::from_lookup(|name| (name != "RESERVATIONS_TABLE").then(|| "t".into())).unwrap_err();
        assert_eq!(err, MissingSetting("RESERVATIONS_TABLE"));
        assert_eq!(err.to_string(), "missing required environment variable RESERVATIONS_TABLE");
    }

    #[test]
    fn hold_seconds_must_be_a_sane_number() {
        assert_eq!(hold_seconds_from(|_| Some("900".into())), Ok(900));
        assert_eq!(hold_seconds_from(|_| None), Err(SettingError::Missing(MissingSetting("HOLD_SECONDS"))));
        for bad in ["0", "-5", "15m", "", "86401"] {
            assert!(matches!(hold_seconds_from(|_| Some(bad.into())), Err(SettingError::Invalid { .. })), "{bad}");
        }
    }

    #[test]
    fn the_quiet_period_is_zero_to_a_day() {
        assert_eq!(alert_policy_from(|_| Some("900".into())).map(|p| p.quiet_seconds), Ok(900));
        assert_eq!(alert_policy_from(|_| Some("0".into())).map(|p| p.quiet_seconds), Ok(0));
        for bad in ["-1", "15m", "", "86401"] {
            assert!(matches!(alert_policy_from(|_| Some(bad.into())), Err(SettingError::Invalid { .. })), "{bad}");
        }
    }

    #[test]
    fn a_flag_is_true_or_false() {
        assert_eq!(flag_from(|_| Some("true".into()), "F"), Ok(true));
        assert_eq!(flag_from(|_| Some("false".into()), "F"), Ok(false));
        assert_eq!(flag_from(|_| None, "F"), Err(SettingError::Missing(MissingSetting("F"))));
        assert!(matches!(flag_from(|_| Some("yes".into()), "F"), Err(SettingError::Invalid { .. })));
    }

    #[test]
    fn blank_counts_as_missing() {
        let err = Config::from_lookup(|_| Some("  ".into())).unwrap_err();
        assert_eq!(err, MissingSetting("STOCK_TABLE"));
    }
}
