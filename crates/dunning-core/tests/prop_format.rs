//! Issue 9 property tests not already in the crate: date formatting round trip,
//! masking, stage list and send window parsing (no panic; round trips).

use dunning_core::config::SendWindow;
use dunning_core::format::{month_name, tanggal};
use dunning_core::mask::{mask_email, mask_phone, mask_recipient};
use dunning_core::stage::parse_stages;
use proptest::prelude::*;
use time::{Date, Month};

proptest! {
    #[test]
    fn tanggal_round_trips(julian in 1_721_426i32..5_373_484) {
        let d = Date::from_julian_day(julian).unwrap();
        let text = tanggal(d);
        let parts: Vec<&str> = text.splitn(3, ' ').collect();
        prop_assert_eq!(parts.len(), 3);
        let day: u8 = parts[0].parse().unwrap();
        let month = (1..=12u8)
            .map(|m| Month::try_from(m).unwrap())
            .find(|m| month_name(*m) == parts[1])
            .expect("an Indonesian month name");
        let year: i32 = parts[2].parse().unwrap();
        prop_assert_eq!(Date::from_calendar_date(year, month, day).unwrap(), d);
    }

    #[test]
    fn masking_never_panics_and_hides_the_middle(s in "\\PC{0,40}") {
        let m = mask_recipient(&s);
        let _ = (mask_phone(&s), mask_email(&s));
        // A phone-like value never shows more than 8 of its characters.
        if !s.contains('@') && s.chars().count() > 8 {
            let chars: Vec<char> = m.chars().collect();
            prop_assert_eq!(chars.len(), 12);
            prop_assert_eq!(chars[4..8].iter().collect::<String>(), "****");
        }
    }

    #[test]
    fn masked_phones_keep_the_ends(rest in "[0-9]{8,11}") {
        let phone = format!("08{rest}");
        let m = mask_phone(&phone);
        prop_assert!(m.starts_with(&phone[..4]) && m.ends_with(&phone[phone.len() - 4..]));
        prop_assert_eq!(m.len(), 12);
    }

    #[test]
    fn stage_lists_never_panic_and_round_trip(s in "\\PC{0,30}", offsets in proptest::collection::vec(-60i32..=60, 1..6)) {
        let _ = parse_stages(&s);
        let list: Vec<String> = offsets.iter().map(|o| dunning_core::Stage::from_offset(*o).to_string()).collect();
        if let Ok(stages) = parse_stages(&list.join(",")) {
            for s in &stages {
                prop_assert!(offsets.contains(&s.offset_days()));
            }
        }
    }

    #[test]
    fn send_windows_never_panic_and_round_trip(s in "\\PC{0,16}", a in 0u8..24, b in 0u8..60, c in 0u8..24, d in 0u8..60) {
        let _ = s.parse::<SendWindow>();
        let text = format!("{a:02}:{b:02}-{c:02}:{d:02}");
        let w: SendWindow = text.parse().unwrap();
        prop_assert_eq!(w.to_string(), text);
    }
}
