//! The local time zone of the operator (`DUNNING_TIMEZONE`) and the run date.
//!
//! Indonesia has observed no daylight saving time since 1964, so its three zones
//! are fixed offsets; that lets us accept the IANA names without shipping a
//! time-zone database.

use std::fmt;
use std::str::FromStr;

use time::{Date, OffsetDateTime, UtcOffset};

/// A configured time zone: a name for display and its fixed UTC offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    name: String,
    offset: UtcOffset,
}

/// The zone used when `DUNNING_TIMEZONE` is not set.
pub const DEFAULT_ZONE: &str = "Asia/Jakarta";

/// An unsupported or malformed time zone.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unsupported time zone {0:?}: use Asia/Jakarta (WIB), Asia/Makassar (WITA), Asia/Jayapura (WIT), UTC, or a fixed offset such as +07:00"
)]
pub struct ZoneError(String);

const NAMED: &[(&str, i8)] = &[
    ("Asia/Jakarta", 7),
    ("Asia/Pontianak", 7),
    ("Asia/Makassar", 8),
    ("Asia/Ujung_Pandang", 8),
    ("Asia/Jayapura", 9),
    ("WIB", 7),
    ("WITA", 8),
    ("WIT", 9),
    ("UTC", 0),
    ("Etc/UTC", 0),
    ("GMT", 0),
];

impl Zone {
    /// The fixed UTC offset of this zone.
    pub fn offset(&self) -> UtcOffset {
        self.offset
    }

    /// The zone's name as configured (or the normalised offset).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local calendar date at `now`.
    pub fn date_at(&self, now: OffsetDateTime) -> Date {
        now.to_offset(self.offset).date()
    }

    /// The local date-time at `now`.
    pub fn local(&self, now: OffsetDateTime) -> OffsetDateTime {
        now.to_offset(self.offset)
    }

    /// The short name operators read next to a local time: `WIB`, `WITA`, `WIT` for
    /// Indonesia's three offsets, else the configured name.
    pub fn abbreviation(&self) -> &str {
        match self.offset.whole_minutes() {
            420 => "WIB",
            480 => "WITA",
            540 => "WIT",
            _ => &self.name,
        }
    }

    /// The UTC instants where the local day containing `now` starts and ends.
    pub fn day_bounds(&self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        let start = self.date_at(now).midnight().assume_offset(self.offset);
        (start, start + time::Duration::days(1))
    }

    /// The UTC instants where the local calendar month containing `today` starts
    /// and ends.
    pub fn month_bounds(&self, today: Date) -> (OffsetDateTime, OffsetDateTime) {
        month_bounds(today, self.offset)
    }
}

/// The UTC instants where the local calendar month containing `today` starts and
/// ends, for a zone at `offset`.
pub fn month_bounds(today: Date, offset: UtcOffset) -> (OffsetDateTime, OffsetDateTime) {
    let start = today.replace_day(1).expect("day 1 exists");
    let (year, month) = match start.month() {
        time::Month::December => (start.year() + 1, time::Month::January),
        m => (start.year(), m.next()),
    };
    let next = Date::from_calendar_date(year, month, 1).expect("the 1st exists");
    (
        start.midnight().assume_offset(offset),
        next.midnight().assume_offset(offset),
    )
}

impl Default for Zone {
    fn default() -> Self {
        DEFAULT_ZONE.parse().expect("default zone is valid")
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, _) = self.offset.as_hms();
        write!(f, "{} (UTC{:+03}:{:02})", self.name, h, m.abs())
    }
}

impl FromStr for Zone {
    type Err = ZoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Some((name, hours)) = NAMED.iter().find(|(n, _)| n.eq_ignore_ascii_case(t)) {
            let offset = UtcOffset::from_hms(*hours, 0, 0).expect("table offsets are valid");
            return Ok(Zone {
                name: (*name).to_owned(),
                offset,
            });
        }
        parse_offset(t)
            .map(|offset| Zone {
                name: t.to_owned(),
                offset,
            })
            .ok_or_else(|| ZoneError(s.to_owned()))
    }
}

/// `+07:00`, `-03:30`, `+0700`, `+7`, `UTC+7`.
fn parse_offset(s: &str) -> Option<UtcOffset> {
    let s = s
        .strip_prefix("UTC")
        .or_else(|| s.strip_prefix("GMT"))
        .unwrap_or(s);
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1i8, &s[1..]),
        b'-' => (-1i8, &s[1..]),
        _ => return None,
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    if h.is_empty() || h.len() > 2 || m.is_empty() || m.len() > 2 {
        return None;
    }
    let h: i8 = h.parse().ok()?;
    let m: i8 = m.parse().ok()?;
    if h > 14 || m > 59 {
        return None;
    }
    UtcOffset::from_hms(sign * h, sign * m, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn jakarta_is_already_tomorrow_at_2330_utc() {
        let zone: Zone = "Asia/Jakarta".parse().unwrap();
        let now = datetime!(2025-11-14 23:30 UTC);
        assert_eq!(zone.date_at(now), date!(2025 - 11 - 15));
        let utc: Zone = "UTC".parse().unwrap();
        assert_eq!(utc.date_at(now), date!(2025 - 11 - 14));
    }

    #[test]
    fn accepts_indonesian_zones_and_offsets() {
        for (input, hours) in [
            ("Asia/Jakarta", 7),
            ("asia/makassar", 8),
            ("Asia/Jayapura", 9),
            ("UTC", 0),
            ("+07:00", 7),
            ("+0800", 8),
            ("UTC+9", 9),
        ] {
            let zone: Zone = input.parse().unwrap();
            assert_eq!(zone.offset().whole_hours(), hours, "{input}");
        }
        let odd: Zone = "-03:30".parse().unwrap();
        assert_eq!(odd.offset().whole_minutes(), -210);
    }

    #[test]
    fn month_and_day_bounds_are_local() {
        let zone = Zone::default();
        let (start, end) = zone.month_bounds(date!(2025 - 12 - 15));
        assert_eq!(start, datetime!(2025-11-30 17:00 UTC));
        assert_eq!(end, datetime!(2025-12-31 17:00 UTC));
        let (start, end) = zone.day_bounds(datetime!(2025-11-14 23:30 UTC));
        assert_eq!(start, datetime!(2025-11-14 17:00 UTC));
        assert_eq!(end, datetime!(2025-11-15 17:00 UTC));
        assert_eq!(zone.abbreviation(), "WIB");
        assert_eq!("UTC".parse::<Zone>().unwrap().abbreviation(), "UTC");
    }

    #[test]
    fn rejects_unknown_zones() {
        for bad in ["Europe/Berlin", "Jakarta", "+25:00", "+07:75", "", "7"] {
            assert!(bad.parse::<Zone>().is_err(), "{bad:?}");
        }
    }
}
