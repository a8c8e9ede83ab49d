//! Indonesian (id-ID) formatting of amounts and dates, as customers read them, and
//! lengths of time in any language's units ([`duration_in`]).

use time::{Date, Month};

/// Formats an amount in rupiah with `.` as the thousands separator: `Rp 1.250.000`.
///
/// Negative amounts (credit notes) keep their sign: `-Rp 5.000`.
pub fn rupiah(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + 4);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(ch);
    }
    if amount < 0 {
        format!("-Rp {grouped}")
    } else {
        format!("Rp {grouped}")
    }
}

/// A length of time in its two largest units, `units` naming seconds, minutes, hours
/// and days: with `[" detik", " menit", " jam", " hari"]` `95` reads `1 menit 35
/// detik`, with `["s", "m", "h", "d"]` `1m 35s`. A negative length reads as zero
/// seconds.
pub fn duration_in(secs: i64, units: [&str; 4]) -> String {
    let [sec, min, hour, day] = units;
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}{sec}"),
        60..3600 => format!("{}{min} {}{sec}", s / 60, s % 60),
        3600..86400 => format!("{}{hour} {}{min}", s / 3600, s % 3600 / 60),
        _ => format!("{}{day} {}{hour}", s / 86400, s % 86400 / 3600),
    }
}

/// The Indonesian name of a month (`Agustus`, `November`).
pub fn month_name(month: Month) -> &'static str {
    match month {
        Month::January => "Januari",
        Month::February => "Februari",
        Month::March => "Maret",
        Month::April => "April",
        Month::May => "Mei",
        Month::June => "Juni",
        Month::July => "Juli",
        Month::August => "Agustus",
        Month::September => "September",
        Month::October => "Oktober",
        Month::November => "November",
        Month::December => "Desember",
    }
}

/// A date as written in Indonesian letters: `18 November 2025`, `1 Agustus 2026`.
pub fn tanggal(date: Date) -> String {
    format!(
        "{} {} {}",
        date.day(),
        month_name(date.month()),
        date.year()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn formats_rupiah() {
        assert_eq!(rupiah(0), "Rp 0");
        assert_eq!(rupiah(999), "Rp 999");
        assert_eq!(rupiah(1_000), "Rp 1.000");
        assert_eq!(rupiah(150_000), "Rp 150.000");
        assert_eq!(rupiah(1_250_000), "Rp 1.250.000");
        assert_eq!(rupiah(1_000_000_000), "Rp 1.000.000.000");
        assert_eq!(rupiah(-5_000), "-Rp 5.000");
        assert_eq!(rupiah(i64::MAX), "Rp 9.223.372.036.854.775.807");
        assert_eq!(rupiah(i64::MIN), "-Rp 9.223.372.036.854.775.808");
    }

    #[test]
    fn formats_dates_with_indonesian_months() {
        assert_eq!(tanggal(date!(2025 - 11 - 18)), "18 November 2025");
        assert_eq!(tanggal(date!(2026 - 08 - 01)), "1 Agustus 2026");
        let names: Vec<&str> = (1..=12u8)
            .map(|m| month_name(Month::try_from(m).unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                "Januari",
                "Februari",
                "Maret",
                "April",
                "Mei",
                "Juni",
                "Juli",
                "Agustus",
                "September",
                "Oktober",
                "November",
                "Desember"
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn rupiah_round_trips(amount in proptest::num::i64::ANY) {
            let text = rupiah(amount);
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            let back: i128 = digits.parse().unwrap();
            let expected = i128::from(amount).abs();
            proptest::prop_assert_eq!(back, expected);
            // Groups are exactly three digits after the first.
            let number = text.trim_start_matches('-').trim_start_matches("Rp ");
            for group in number.split('.').skip(1) {
                proptest::prop_assert_eq!(group.len(), 3);
            }
        }
    }
}
