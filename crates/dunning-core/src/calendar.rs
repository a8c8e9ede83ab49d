//! Quiet days: the weekdays (`DUNNING_QUIET_WEEKDAYS`) and holidays
//! (`DUNNING_HOLIDAYS`) on which the scheduler queues no reminder.
//!
//! A reminder on Lebaran or on a Sunday reads badly and wastes a step of the
//! escalation ladder. A run on a quiet day queues nothing; the next working day
//! catches the quiet days up under the ordinary catch-up rule (per invoice only
//! the newest due stage, never a burst). This module decides what is quiet; the
//! holiday file is read by the caller and handed over as text.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use time::{Date, Weekday};

use crate::config::ConfigError;

/// Every variable this module reads, for documentation checks.
pub const VARIABLES: &[&str] = &["DUNNING_QUIET_WEEKDAYS", "DUNNING_HOLIDAYS"];

/// How many days before its last date `doctor` warns that a holiday file runs out.
pub const HOLIDAYS_WARN_DAYS: i64 = 60;

/// The quiet-day settings as configured (the holiday file not yet read).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CalendarSettings {
    /// `DUNNING_QUIET_WEEKDAYS`, e.g. `sun` or `sabtu,minggu`.
    pub quiet_weekdays: Vec<Weekday>,
    /// `DUNNING_HOLIDAYS`: the holiday file, relative to the working directory.
    pub holidays_file: Option<PathBuf>,
}

impl CalendarSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `lookup` (a variable name to its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| crate::config::non_blank(&lookup, name);
        let quiet_weekdays = match var("DUNNING_QUIET_WEEKDAYS") {
            None => Vec::new(),
            Some(v) => parse_weekdays(&v).map_err(|hint| ConfigError::Invalid {
                var: "DUNNING_QUIET_WEEKDAYS",
                value: v,
                hint,
            })?,
        };
        Ok(CalendarSettings {
            quiet_weekdays,
            holidays_file: var("DUNNING_HOLIDAYS").map(PathBuf::from),
        })
    }
}

const WEEKDAY_NAMES: &[(&str, Weekday)] = &[
    ("mon", Weekday::Monday),
    ("monday", Weekday::Monday),
    ("senin", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("tuesday", Weekday::Tuesday),
    ("selasa", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("wednesday", Weekday::Wednesday),
    ("rabu", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("thursday", Weekday::Thursday),
    ("kamis", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("friday", Weekday::Friday),
    ("jumat", Weekday::Friday),
    ("jum'at", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("saturday", Weekday::Saturday),
    ("sabtu", Weekday::Saturday),
    ("sun", Weekday::Sunday),
    ("sunday", Weekday::Sunday),
    ("minggu", Weekday::Sunday),
    ("ahad", Weekday::Sunday),
];

/// Parses `DUNNING_QUIET_WEEKDAYS`: a comma list of English (`sun`, `sunday`) or
/// Indonesian (`minggu`, `sabtu`) day names, any case. All seven would make every
/// day quiet, so that is refused.
pub fn parse_weekdays(list: &str) -> Result<Vec<Weekday>, String> {
    let mut days = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let lower = word.to_lowercase();
        let Some((_, day)) = WEEKDAY_NAMES.iter().find(|(n, _)| *n == lower) else {
            return Err(format!(
                "{word:?} is not a day of the week: write a comma list such as sun or sat,sun (Indonesian names work too: minggu, sabtu)"
            ));
        };
        if !days.contains(day) {
            days.push(*day);
        }
    }
    if days.len() == 7 {
        return Err(
            "every day of the week is quiet, so no reminder would ever be queued: list only the days without reminders, e.g. sun".into(),
        );
    }
    Ok(days)
}

/// The Indonesian name of a weekday (`Minggu` for Sunday).
pub fn hari(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "Senin",
        Weekday::Tuesday => "Selasa",
        Weekday::Wednesday => "Rabu",
        Weekday::Thursday => "Kamis",
        Weekday::Friday => "Jumat",
        Weekday::Saturday => "Sabtu",
        Weekday::Sunday => "Minggu",
    }
}

/// A holiday file that cannot be used: every bad line, each with its number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct HolidaysError {
    /// The file as the operator named it (for the message).
    pub file: String,
    /// `(line number, what is wrong)`; line 0 for the file as a whole.
    pub problems: Vec<(usize, String)>,
}

/// What every holiday-file error message ends with.
const HOLIDAYS_FIX: &str = "write one holiday a line as YYYY-MM-DD and its name, e.g. `2026-08-17 Proklamasi Kemerdekaan`; lines starting with # are comments (see holidays/id-2026-2027.txt)";

impl HolidaysError {
    fn render(&self) -> String {
        let mut out = String::new();
        for (i, (line, problem)) in self.problems.iter().enumerate().take(5) {
            if i > 0 {
                out.push_str("; ");
            }
            if *line == 0 {
                out.push_str(&format!("{}: {problem}", self.file));
            } else {
                out.push_str(&format!("{} line {line}: {problem}", self.file));
            }
        }
        if self.problems.len() > 5 {
            out.push_str(&format!(
                "; and {} more bad line(s)",
                self.problems.len() - 5
            ));
        }
        format!("{out}. Fix: {HOLIDAYS_FIX}")
    }
}

/// Holidays by date, each with its name (two on one day are joined with ` / `).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holidays {
    days: BTreeMap<Date, String>,
}

impl Holidays {
    /// Parses a holiday file: `YYYY-MM-DD Name` a line, `#` comments and blank
    /// lines ignored. `file` names the file in error messages. Every bad line is
    /// reported, not only the first.
    pub fn parse(file: &str, text: &str) -> Result<Holidays, HolidaysError> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let mut days: BTreeMap<Date, String> = BTreeMap::new();
        let mut problems = Vec::new();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (date, name) = line
                .split_once(char::is_whitespace)
                .map_or((line, ""), |(d, n)| (d, n.trim()));
            let Ok(date) = Date::parse(date, &format) else {
                problems.push((i + 1, format!("{date:?} is not a date (YYYY-MM-DD)")));
                continue;
            };
            if name.is_empty() {
                problems.push((i + 1, format!("{date} has no name")));
                continue;
            }
            days.entry(date)
                .and_modify(|n| {
                    if n != name {
                        n.push_str(" / ");
                        n.push_str(name);
                    }
                })
                .or_insert_with(|| name.to_owned());
        }
        if problems.is_empty() && days.is_empty() {
            problems.push((0, "the file lists no holiday".to_owned()));
        }
        if problems.is_empty() {
            Ok(Holidays { days })
        } else {
            Err(HolidaysError {
                file: file.to_owned(),
                problems,
            })
        }
    }

    /// The holiday's name on `date`, if it is one.
    pub fn get(&self, date: Date) -> Option<&str> {
        self.days.get(&date).map(String::as_str)
    }

    /// The last date the file lists.
    pub fn last(&self) -> Option<Date> {
        self.days.keys().next_back().copied()
    }

    /// How many dates the file lists.
    pub fn len(&self) -> usize {
        self.days.len()
    }

    /// True when no date is listed.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }
}

/// Why a day is quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet<'a> {
    /// A weekday listed in `DUNNING_QUIET_WEEKDAYS`.
    Weekday(Weekday),
    /// A date of the holiday file, with its name.
    Holiday(&'a str),
}

impl fmt::Display for Quiet<'_> {
    /// `Sunday (DUNNING_QUIET_WEEKDAYS)` / `holiday Idul Fitri 1447 H (DUNNING_HOLIDAYS)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quiet::Weekday(w) => write!(f, "{w} (DUNNING_QUIET_WEEKDAYS)"),
            Quiet::Holiday(name) => write!(f, "holiday {name} (DUNNING_HOLIDAYS)"),
        }
    }
}

/// The quiet weekdays and the holidays together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Calendar {
    weekdays: Vec<Weekday>,
    holidays: Holidays,
}

/// How far the calendar looks for a working day before giving up (a year).
const SEARCH_DAYS: u32 = 366;

impl Calendar {
    /// A calendar of the given quiet weekdays and holidays.
    pub fn new(weekdays: Vec<Weekday>, holidays: Holidays) -> Calendar {
        Calendar { weekdays, holidays }
    }

    /// The holidays.
    pub fn holidays(&self) -> &Holidays {
        &self.holidays
    }

    /// The quiet weekdays.
    pub fn weekdays(&self) -> &[Weekday] {
        &self.weekdays
    }

    /// Why `date` is quiet, or `None` on a working day. A holiday wins over a
    /// quiet weekday (its name says more).
    pub fn quiet(&self, date: Date) -> Option<Quiet<'_>> {
        if let Some(name) = self.holidays.get(date) {
            return Some(Quiet::Holiday(name));
        }
        let day = date.weekday();
        self.weekdays.contains(&day).then_some(Quiet::Weekday(day))
    }

    /// The catch-up window of a run on `run_date` in calendar days: the last
    /// `working_days` working days before it, and every quiet day among and right
    /// before them. So after a long Lebaran (six quiet days) the first working day
    /// still looks back past the holidays to the last working days.
    pub fn catch_up_window(&self, run_date: Date, working_days: u32) -> u32 {
        if working_days == 0 {
            return 0;
        }
        let mut counted = 0;
        let mut days = 0;
        let mut d = run_date;
        while days < working_days + SEARCH_DAYS {
            let Some(prev) = d.previous_day() else { break };
            d = prev;
            days += 1;
            if self.quiet(d).is_none() {
                counted += 1;
                if counted == working_days {
                    // Quiet days right before the oldest working day of the window
                    // were caught up (or missed) by that day's run: not ours.
                    break;
                }
            }
        }
        days
    }

    /// The quiet days in `[from, to)`.
    pub fn quiet_days(&self, from: Date, to: Date) -> Vec<Date> {
        let mut out = Vec::new();
        let mut d = from;
        while d < to {
            if self.quiet(d).is_some() {
                out.push(d);
            }
            match d.next_day() {
                Some(n) => d = n,
                None => break,
            }
        }
        out
    }

    /// The first working day after `date` (within a year).
    pub fn next_working_day(&self, date: Date) -> Option<Date> {
        let mut d = date;
        for _ in 0..SEARCH_DAYS {
            d = d.next_day()?;
            if self.quiet(d).is_none() {
                return Some(d);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn cal(weekdays: &str, holidays: &str) -> Calendar {
        Calendar::new(
            parse_weekdays(weekdays).unwrap(),
            if holidays.is_empty() {
                Holidays::default()
            } else {
                Holidays::parse("h.txt", holidays).unwrap()
            },
        )
    }

    #[test]
    fn weekdays_in_english_and_indonesian() {
        assert_eq!(parse_weekdays("sun").unwrap(), [Weekday::Sunday]);
        assert_eq!(
            parse_weekdays(" Sabtu , MINGGU,sun ").unwrap(),
            [Weekday::Saturday, Weekday::Sunday]
        );
        assert_eq!(parse_weekdays("Jum'at").unwrap(), [Weekday::Friday]);
        assert!(parse_weekdays("").unwrap().is_empty());
        let err = parse_weekdays("sun,libur").unwrap_err();
        assert!(
            err.contains("\"libur\"") && err.contains("sat,sun"),
            "{err}"
        );
        let err = parse_weekdays("mon,tue,wed,thu,fri,sat,sun").unwrap_err();
        assert!(err.contains("every day"), "{err}");
    }

    #[test]
    fn settings_name_the_variable() {
        let s = CalendarSettings::from_lookup(|k| match k {
            "DUNNING_QUIET_WEEKDAYS" => Some("minggu".into()),
            "DUNNING_HOLIDAYS" => Some(" holidays/id.txt ".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.quiet_weekdays, [Weekday::Sunday]);
        assert_eq!(s.holidays_file, Some(PathBuf::from("holidays/id.txt")));
        let err = CalendarSettings::from_lookup(|k| {
            (k == "DUNNING_QUIET_WEEKDAYS").then(|| "sunday,holiday".into())
        })
        .unwrap_err();
        assert_eq!(err.var(), "DUNNING_QUIET_WEEKDAYS");
        assert_eq!(
            CalendarSettings::from_lookup(|_| None).unwrap(),
            CalendarSettings::default()
        );
    }

    #[test]
    fn holiday_file_parses_with_comments_bom_and_crlf() {
        let h = Holidays::parse(
            "h.txt",
            "\u{feff}# Libur\r\n\r\n2026-03-21  Idul Fitri 1447 H\r\n2026-03-21 Hari Kedua\r\n2026-01-01\tTahun Baru\n",
        )
        .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(
            h.get(date!(2026 - 03 - 21)),
            Some("Idul Fitri 1447 H / Hari Kedua")
        );
        assert_eq!(h.last(), Some(date!(2026 - 03 - 21)));
    }

    #[test]
    fn every_bad_line_is_named_with_the_fix() {
        let err = Holidays::parse(
            "holidays/x.txt",
            "# ok\n2026-01-01 Tahun Baru\n2026-13-01 Salah\n17-08-2026 Merdeka\n2026-08-18\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert_eq!(
            err.problems.iter().map(|p| p.0).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert!(
            msg.contains("holidays/x.txt line 3: \"2026-13-01\" is not a date"),
            "{msg}"
        );
        assert!(msg.contains("line 5: 2026-08-18 has no name"), "{msg}");
        assert!(msg.contains("Fix: write one holiday a line"), "{msg}");
        let err = Holidays::parse("empty.txt", "# nothing\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("empty.txt: the file lists no holiday")
        );
    }

    #[test]
    fn quiet_days_and_why() {
        let c = cal("sun", "2026-03-20 Cuti Bersama Idul Fitri\n");
        // 2026-03-22 is a Sunday.
        assert_eq!(
            c.quiet(date!(2026 - 03 - 22)),
            Some(Quiet::Weekday(Weekday::Sunday))
        );
        assert_eq!(
            c.quiet(date!(2026 - 03 - 20)).unwrap().to_string(),
            "holiday Cuti Bersama Idul Fitri (DUNNING_HOLIDAYS)"
        );
        assert_eq!(c.quiet(date!(2026 - 03 - 23)), None);
        assert_eq!(
            c.next_working_day(date!(2026 - 03 - 19)),
            Some(date!(2026 - 03 - 21))
        );
        assert_eq!(
            c.quiet_days(date!(2026 - 03 - 19), date!(2026 - 03 - 23)),
            [date!(2026 - 03 - 20), date!(2026 - 03 - 22)]
        );
    }

    #[test]
    fn the_catch_up_window_reaches_past_quiet_days() {
        let none = Calendar::default();
        assert_eq!(none.catch_up_window(date!(2026 - 03 - 25), 3), 3);
        assert_eq!(none.catch_up_window(date!(2026 - 03 - 25), 0), 0);
        // Lebaran 2026: 18 (Nyepi cuti), 19, 20, 21, 22, 23, 24 March quiet; the
        // run on Wednesday 25 March with 3 working days looks back to 16 March.
        let lebaran = cal(
            "",
            "2026-03-18 a\n2026-03-19 b\n2026-03-20 c\n2026-03-21 d\n2026-03-22 e\n2026-03-23 f\n2026-03-24 g\n",
        );
        assert_eq!(lebaran.catch_up_window(date!(2026 - 03 - 25), 1), 8);
        assert_eq!(lebaran.catch_up_window(date!(2026 - 03 - 25), 3), 10);
        // Sundays only: Monday with 1 working day looks back to Saturday.
        let sundays = cal("sun", "");
        assert_eq!(sundays.catch_up_window(date!(2026 - 03 - 23), 1), 2);
    }

    #[test]
    fn the_shipped_indonesian_file_parses() {
        let text = include_str!("../../../holidays/id-2026-2027.txt");
        let h = Holidays::parse("holidays/id-2026-2027.txt", text).unwrap();
        assert_eq!(
            h.get(date!(2026 - 03 - 21)),
            Some("Hari Raya Idul Fitri 1447 H")
        );
        assert_eq!(
            h.get(date!(2026 - 03 - 23)),
            Some("Cuti Bersama Idul Fitri 1447 H")
        );
        assert_eq!(
            h.get(date!(2026 - 08 - 17))
                .map(|n| n.contains("Kemerdekaan")),
            Some(true)
        );
        // 17 national holidays and 8 cuti bersama in 2026 (SKB 1497/2/5 of 2025).
        let in_2026 = (1..=366)
            .filter_map(|n| date!(2026 - 01 - 01).checked_add(time::Duration::days(n - 1)))
            .filter(|d| d.year() == 2026 && h.get(*d).is_some())
            .count();
        assert_eq!(in_2026, 25);
        assert_eq!(h.last().map(|d| d.year()), Some(2027));
    }
}
