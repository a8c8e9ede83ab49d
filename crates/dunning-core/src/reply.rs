//! Customers' WhatsApp replies: what a reply asks for, and what we answer.
//!
//! Pure: [`Keywords::parse`] turns a message into an [`Intent`] given today's local
//! date; [`reply_text`] renders the Indonesian confirmation for a [`ReplyKind`].
//! Matching ignores case, spacing and punctuation (`Stop!`, ` s t o p` does not
//! count: words must be whole). Opt-out and opt-in keywords must be the whole
//! message (`STOP`, `berhenti.`), so "jangan stop layanan saya" never opts anyone
//! out; the paid-claim and promise phrases may appear anywhere in the message.

use time::{Date, Duration, Month};

use crate::config::ConfigError;
use crate::format::tanggal;

/// What a customer's message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Stop WhatsApp reminders (`STOP`, `BERHENTI`).
    OptOut,
    /// Start WhatsApp reminders again (`MULAI`).
    OptIn,
    /// "I have paid" (`SUDAH BAYAR`, `LUNAS`, `SUDAH TRANSFER`).
    PaidClaim,
    /// A promise to pay on a date: hold reminders through `until` (already capped
    /// at `DUNNING_PROMISE_MAX_DAYS`); `promised` is the date the customer named.
    Promise { promised: Date, until: Date },
    /// A promise keyword without a date we understand, or with a past date.
    PromiseUnclear,
    /// Anything else: stored and flagged "perlu dibalas", no automatic reply.
    Other,
}

impl Intent {
    /// The name stored in `whatsapp_replies.intent`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Intent::OptOut => "opt_out",
            Intent::OptIn => "opt_in",
            Intent::PaidClaim => "paid_claim",
            Intent::Promise { .. } => "promise",
            Intent::PromiseUnclear => "promise_unclear",
            Intent::Other => "other",
        }
    }

    /// True when the operator should read the reply (a claim to verify, or a
    /// message no keyword answers).
    pub fn flagged(&self) -> bool {
        matches!(
            self,
            Intent::PaidClaim | Intent::PromiseUnclear | Intent::Other
        )
    }
}

/// The automatic answer to a reply, queued as a WhatsApp message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    OptedOut,
    OptedIn,
    /// Reminders held through this date while the payment is checked.
    PaidClaim {
        until: Date,
    },
    /// Reminders held through this date.
    Promise {
        until: Date,
    },
    /// Ask for the promise date again, in the format we understand.
    AskFormat,
}

impl ReplyKind {
    /// The answer an intent gets (`None`: no automatic answer).
    pub fn for_intent(intent: &Intent, paid_claim_until: Date) -> Option<ReplyKind> {
        match *intent {
            Intent::OptOut => Some(ReplyKind::OptedOut),
            Intent::OptIn => Some(ReplyKind::OptedIn),
            Intent::PaidClaim => Some(ReplyKind::PaidClaim {
                until: paid_claim_until,
            }),
            Intent::Promise { until, .. } => Some(ReplyKind::Promise { until }),
            Intent::PromiseUnclear => Some(ReplyKind::AskFormat),
            Intent::Other => None,
        }
    }

    /// The value stored in the ledger's `stage` column for this answer.
    pub fn stage_label(&self) -> &'static str {
        match self {
            ReplyKind::OptedOut => "reply:opt_out",
            ReplyKind::OptedIn => "reply:opt_in",
            ReplyKind::PaidClaim { .. } => "reply:paid_claim",
            ReplyKind::Promise { .. } => "reply:promise",
            ReplyKind::AskFormat => "reply:ask_format",
        }
    }
}

/// The reply keywords and limits (`DUNNING_REPLY_*`, `DUNNING_PAID_CLAIM_DAYS`,
/// `DUNNING_PROMISE_MAX_DAYS`, `WHATSAPP_FALLBACK`, `FONNTE_WEBHOOK_SECRET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplySettings {
    pub keywords: Keywords,
    /// Days a "sudah bayar" reply holds the customer's reminders.
    pub paid_claim_days: u32,
    /// The longest a promise to pay holds reminders.
    pub promise_max_days: u32,
    /// `WHATSAPP_FALLBACK=email`: an invalid or expired WhatsApp reminder goes out by email.
    pub fallback_email: bool,
    /// `FONNTE_WEBHOOK_SECRET`: required by every Fonnte webhook.
    pub webhook_secret: crate::config::Secret,
}

/// Every variable [`ReplySettings`] reads, for documentation checks.
pub const VARIABLES: &[&str] = &[
    "FONNTE_WEBHOOK_SECRET",
    "WHATSAPP_FALLBACK",
    "DUNNING_PAID_CLAIM_DAYS",
    "DUNNING_PROMISE_MAX_DAYS",
    "DUNNING_REPLY_STOP",
    "DUNNING_REPLY_START",
    "DUNNING_REPLY_PAID",
    "DUNNING_REPLY_PROMISE",
];

/// Default keywords (comma-separated phrases), Indonesian first.
pub const DEFAULT_STOP: &str = "STOP,BERHENTI";
pub const DEFAULT_START: &str = "MULAI";
pub const DEFAULT_PAID: &str = "SUDAH BAYAR,LUNAS,SUDAH TRANSFER";
pub const DEFAULT_PROMISE: &str = "JANJI BAYAR,BAYAR TGL,BAYAR TANGGAL";

impl ReplySettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `lookup` (a variable name to its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| crate::config::non_blank(&lookup, name);
        let phrases =
            |name: &'static str, default: &str| -> Result<Vec<Vec<String>>, ConfigError> {
                let raw = var(name).unwrap_or_else(|| default.to_owned());
                let list: Vec<Vec<String>> = raw
                    .split(',')
                    .map(tokens)
                    .filter(|t| !t.is_empty())
                    .collect();
                if list.is_empty() {
                    return Err(ConfigError::Invalid {
                        var: name,
                        value: raw,
                        hint: format!("a comma-separated list of words or phrases, e.g. {default}"),
                    });
                }
                Ok(list)
            };
        let days = |name: &'static str, default: u32, max: u32| -> Result<u32, ConfigError> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|d| (1..=max).contains(d))
                    .ok_or_else(|| ConfigError::Invalid {
                        var: name,
                        value: v,
                        hint: format!("a whole number of days from 1 to {max}, e.g. {default}"),
                    }),
            }
        };
        let fallback_email = match var("WHATSAPP_FALLBACK").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "email" => true,
            Some(v) if v == "none" => false,
            Some(v) => {
                return Err(ConfigError::Invalid {
                    var: "WHATSAPP_FALLBACK",
                    value: v,
                    hint: "use email (re-send an undeliverable WhatsApp reminder by email) or none"
                        .into(),
                });
            }
        };
        Ok(ReplySettings {
            keywords: Keywords {
                stop: phrases("DUNNING_REPLY_STOP", DEFAULT_STOP)?,
                start: phrases("DUNNING_REPLY_START", DEFAULT_START)?,
                paid: phrases("DUNNING_REPLY_PAID", DEFAULT_PAID)?,
                promise: phrases("DUNNING_REPLY_PROMISE", DEFAULT_PROMISE)?,
            },
            paid_claim_days: days("DUNNING_PAID_CLAIM_DAYS", 2, 60)?,
            promise_max_days: days("DUNNING_PROMISE_MAX_DAYS", 30, 365)?,
            fallback_email,
            webhook_secret: crate::config::Secret::new(
                var("FONNTE_WEBHOOK_SECRET").unwrap_or_default(),
            ),
        })
    }

    /// Parses a message received on `today` (local date).
    pub fn parse(&self, message: &str, today: Date) -> Intent {
        self.keywords.parse(message, today, self.promise_max_days)
    }

    /// The last day a "sudah bayar" reply received on `today` holds reminders.
    pub fn paid_claim_until(&self, today: Date) -> Date {
        today + Duration::days(i64::from(self.paid_claim_days))
    }
}

/// Keyword phrases, each already split into lowercase words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keywords {
    pub stop: Vec<Vec<String>>,
    pub start: Vec<Vec<String>>,
    pub paid: Vec<Vec<String>>,
    pub promise: Vec<Vec<String>>,
}

impl Default for Keywords {
    fn default() -> Self {
        let split = |s: &str| s.split(',').map(tokens).collect();
        Keywords {
            stop: split(DEFAULT_STOP),
            start: split(DEFAULT_START),
            paid: split(DEFAULT_PAID),
            promise: split(DEFAULT_PROMISE),
        }
    }
}

/// Splits text into lowercase words: letters and digits; `/`, `-` and `.` between
/// digits are kept as `/` (dates such as `25/12`, `25-12-2026`); everything else
/// separates words.
pub fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            cur.extend(c.to_lowercase());
        } else if matches!(c, '/' | '-' | '.')
            && cur.chars().last().is_some_and(|p| p.is_ascii_digit())
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit())
        {
            cur.push('/');
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The position just after the first occurrence of `phrase` in `words`.
fn find(words: &[String], phrase: &[String]) -> Option<usize> {
    if phrase.is_empty() || phrase.len() > words.len() {
        return None;
    }
    words
        .windows(phrase.len())
        .position(|w| w == phrase)
        .map(|i| i + phrase.len())
}

impl Keywords {
    /// What `message`, received on `today`, asks for. A promised date later than
    /// `max_days` from today is capped there.
    pub fn parse(&self, message: &str, today: Date, max_days: u32) -> Intent {
        let words = tokens(message);
        if words.is_empty() {
            return Intent::Other;
        }
        if self.stop.contains(&words) {
            return Intent::OptOut;
        }
        if self.start.contains(&words) {
            return Intent::OptIn;
        }
        if self.paid.iter().any(|p| find(&words, p).is_some()) {
            return Intent::PaidClaim;
        }
        let Some(after) = self.promise.iter().find_map(|p| find(&words, p)) else {
            return Intent::Other;
        };
        match promised_date(&words[after..], today) {
            Some(promised) if promised >= today => {
                let cap = today + Duration::days(i64::from(max_days));
                Intent::Promise {
                    promised,
                    until: promised.min(cap),
                }
            }
            _ => Intent::PromiseUnclear,
        }
    }

    /// The first word of the first phrase of a list, upper-case, for texts.
    fn first(list: &[Vec<String>], fallback: &str) -> String {
        list.first()
            .map(|p| p.join(" ").to_uppercase())
            .unwrap_or_else(|| fallback.to_owned())
    }
}

fn month_from_word(w: &str) -> Option<Month> {
    let m = match w {
        "januari" | "jan" => Month::January,
        "februari" | "feb" | "pebruari" => Month::February,
        "maret" | "mar" => Month::March,
        "april" | "apr" => Month::April,
        "mei" => Month::May,
        "juni" | "jun" => Month::June,
        "juli" | "jul" => Month::July,
        "agustus" | "agu" | "agt" | "ags" | "agus" => Month::August,
        "september" | "sep" | "sept" => Month::September,
        "oktober" | "okt" => Month::October,
        "november" | "nov" | "nop" => Month::November,
        "desember" | "des" => Month::December,
        _ => return None,
    };
    Some(m)
}

/// The date named right after a promise phrase: `25`, `25 desember`, `25 des 2026`,
/// `25/12`, `25/12/2026`, `25-12-26`, optionally after `tgl`/`tanggal`/`pada`.
/// A day alone means its next occurrence (this month or the next); a day and month
/// without a year mean this year, or next year when this year's is more than half a
/// year ago (`5 januari` written in late December). `None`: no date we understand.
fn promised_date(words: &[String], today: Date) -> Option<Date> {
    let mut it = words
        .iter()
        .map(String::as_str)
        .skip_while(|w| matches!(*w, "tgl" | "tanggal" | "pada" | "tg" | "hari" | "on"));
    let first = it.next()?;
    let parts: Vec<&str> = first.split('/').collect();
    let num = |s: &str| -> Option<i32> {
        if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (day, month, year) = match parts.as_slice() {
        [d] => {
            let day = num(d)?;
            let next = it.next();
            match next.and_then(month_from_word) {
                Some(m) => {
                    let year = it.next().and_then(num);
                    (day, Some(m), year)
                }
                None => (day, None, None),
            }
        }
        [d, m] => (
            num(d)?,
            Some(Month::try_from(u8::try_from(num(m)?).ok()?).ok()?),
            None,
        ),
        [d, m, y] => (
            num(d)?,
            Some(Month::try_from(u8::try_from(num(m)?).ok()?).ok()?),
            Some(num(y)?),
        ),
        _ => return None,
    };
    let day = u8::try_from(day).ok().filter(|d| (1..=31).contains(d))?;
    let year = year.map(|y| if y < 100 { 2000 + y } else { y });
    match (month, year) {
        (Some(m), Some(y)) => Date::from_calendar_date(y, m, day).ok(),
        (Some(m), None) => {
            let this = Date::from_calendar_date(today.year(), m, day).ok()?;
            if this < today && (today - this).whole_days() > 183 {
                Date::from_calendar_date(today.year() + 1, m, day).ok()
            } else {
                Some(this)
            }
        }
        (None, _) => {
            // The next time the month has that day: this month, else the following ones.
            let mut y = today.year();
            let mut m = today.month();
            for _ in 0..3 {
                match Date::from_calendar_date(y, m, day) {
                    Ok(d) if d >= today => return Some(d),
                    _ => {}
                }
                if m == Month::December {
                    y += 1;
                }
                m = m.next();
            }
            None
        }
    }
}

/// The Indonesian text of an automatic answer. `keywords` supplies the words the
/// customer is told to send; `max_days` the promise limit named in the format help.
pub fn reply_text(kind: &ReplyKind, company: &str, settings: &ReplySettings) -> String {
    let kw = &settings.keywords;
    let stop = Keywords::first(&kw.stop, "STOP");
    let start = Keywords::first(&kw.start, "MULAI");
    let promise = Keywords::first(&kw.promise, "JANJI BAYAR");
    let body = match kind {
        ReplyKind::OptedOut => format!(
            "Baik, Anda tidak akan menerima pengingat tagihan lewat WhatsApp lagi. \
             Pengingat lewat email tetap kami kirim.\n\
             Untuk menerima pengingat lewat WhatsApp lagi, balas {start}."
        ),
        ReplyKind::OptedIn => format!(
            "Baik, pengingat tagihan lewat WhatsApp aktif kembali.\n\
             Untuk berhenti, balas {stop}."
        ),
        ReplyKind::PaidClaim { until } => format!(
            "Terima kasih, konfirmasi pembayaran Anda sudah kami terima dan akan kami periksa. \
             Sampai {} kami tidak mengirim pengingat.\n\
             Jika ada kendala, tim kami akan menghubungi Anda.",
            tanggal(*until)
        ),
        ReplyKind::Promise { until } => format!(
            "Terima kasih, janji pembayaran Anda sudah kami catat. \
             Kami tidak mengirim pengingat sampai {}.",
            tanggal(*until)
        ),
        ReplyKind::AskFormat => format!(
            "Maaf, tanggal pembayaran tidak kami pahami atau sudah lewat.\n\
             Balas dengan format: {promise} <tanggal>, contoh: {promise} 25 atau {promise} 25/12 \
             (paling lama {} hari dari hari ini).",
            settings.promise_max_days
        ),
    };
    format!("{body}\n\nSalam,\nTim {company}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn settings() -> ReplySettings {
        ReplySettings::from_lookup(|_| None).unwrap()
    }

    fn parse(s: &str) -> Intent {
        settings().parse(s, date!(2026 - 12 - 01))
    }

    #[test]
    fn stop_and_start_need_the_whole_message() {
        assert_eq!(parse("STOP"), Intent::OptOut);
        assert_eq!(parse("  stop!! "), Intent::OptOut);
        assert_eq!(parse("Berhenti."), Intent::OptOut);
        assert_eq!(parse("mulai"), Intent::OptIn);
        assert_eq!(parse("jangan stop layanan saya"), Intent::Other);
        assert_eq!(parse("stopkontak rusak"), Intent::Other);
    }

    #[test]
    fn paid_claims_anywhere_in_the_message() {
        assert_eq!(parse("SUDAH BAYAR"), Intent::PaidClaim);
        assert_eq!(parse("sudah   bayar ya kak"), Intent::PaidClaim);
        assert_eq!(parse("Lunas."), Intent::PaidClaim);
        assert_eq!(
            parse("pak, saya sudah transfer tadi pagi"),
            Intent::PaidClaim
        );
        assert_eq!(parse("sudahbayar"), Intent::Other);
    }

    #[test]
    fn promises_resolve_dates_relative_to_today() {
        let p = |promised: Date| Intent::Promise {
            promised,
            until: promised,
        };
        assert_eq!(parse("JANJI BAYAR 25"), p(date!(2026 - 12 - 25)));
        assert_eq!(parse("bayar tgl 25 desember"), p(date!(2026 - 12 - 25)));
        assert_eq!(parse("saya bayar tanggal 25/12"), p(date!(2026 - 12 - 25)));
        assert_eq!(parse("janji bayar 5-12-2026"), p(date!(2026 - 12 - 05)));
        assert_eq!(parse("janji bayar tgl 1"), p(date!(2026 - 12 - 01)));
        // the 25th of a month that has passed this year: late December writes January
        let late = settings().parse("bayar tgl 5 januari", date!(2026 - 12 - 28));
        assert_eq!(late, p(date!(2027 - 01 - 05)));
        // a day number already past this month means next month's
        let next = settings().parse("janji bayar 3", date!(2026 - 12 - 10));
        assert_eq!(next, p(date!(2027 - 01 - 03)));
    }

    #[test]
    fn promises_are_capped_and_past_or_unclear_dates_ask_for_the_format() {
        assert_eq!(
            parse("janji bayar 15/02/2027"),
            Intent::Promise {
                promised: date!(2027 - 02 - 15),
                until: date!(2026 - 12 - 31),
            }
        );
        assert_eq!(parse("janji bayar 20/11"), Intent::PromiseUnclear);
        assert_eq!(parse("janji bayar 2025-12-01"), Intent::PromiseUnclear);
        assert_eq!(parse("janji bayar besok"), Intent::PromiseUnclear);
        assert_eq!(parse("janji bayar 32"), Intent::PromiseUnclear);
        assert_eq!(parse("janji bayar 31/02"), Intent::PromiseUnclear);
        assert_eq!(parse("janji bayar"), Intent::PromiseUnclear);
    }

    #[test]
    fn other_messages_are_flagged_without_an_answer() {
        let i = parse("internet saya mati dari kemarin");
        assert_eq!(i, Intent::Other);
        assert!(i.flagged());
        assert_eq!(ReplyKind::for_intent(&i, date!(2026 - 12 - 03)), None);
        assert_eq!(parse(""), Intent::Other);
        assert_eq!(parse("🙏🙏"), Intent::Other);
    }

    #[test]
    fn keywords_are_configurable() {
        let s = ReplySettings::from_lookup(|k| match k {
            "DUNNING_REPLY_STOP" => Some("unsubscribe, keluar".into()),
            "DUNNING_REPLY_PROMISE" => Some("akan bayar".into()),
            _ => None,
        })
        .unwrap();
        let today = date!(2026 - 12 - 01);
        assert_eq!(s.parse("Keluar", today), Intent::OptOut);
        assert_eq!(s.parse("STOP", today), Intent::Other);
        assert!(matches!(
            s.parse("akan bayar 10", today),
            Intent::Promise { .. }
        ));
        let text = reply_text(&ReplyKind::OptedIn, "Wikarta Provider", &s);
        assert!(text.contains("balas UNSUBSCRIBE"), "{text}");
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let e =
            ReplySettings::from_lookup(|k| (k == "DUNNING_PROMISE_MAX_DAYS").then(|| "0".into()))
                .unwrap_err();
        assert_eq!(e.var(), "DUNNING_PROMISE_MAX_DAYS");
        let e = ReplySettings::from_lookup(|k| (k == "WHATSAPP_FALLBACK").then(|| "sms".into()))
            .unwrap_err();
        assert!(e.to_string().contains("use email"), "{e}");
        let e = ReplySettings::from_lookup(|k| (k == "DUNNING_REPLY_STOP").then(|| " , ".into()))
            .unwrap_err();
        assert_eq!(e.var(), "DUNNING_REPLY_STOP");
    }

    #[test]
    fn the_operator_guide_quotes_the_texts_customers_get() {
        let guide = include_str!("../../../docs/panduan.md");
        let s = settings();
        for kind in [
            ReplyKind::OptedOut,
            ReplyKind::OptedIn,
            ReplyKind::PaidClaim {
                until: date!(2026 - 12 - 03),
            },
            ReplyKind::Promise {
                until: date!(2026 - 12 - 25),
            },
            ReplyKind::AskFormat,
        ] {
            let full = reply_text(&kind, "X", &s);
            let body = full.split("\n\nSalam,").next().unwrap().replace('\n', " ");
            assert!(guide.contains(&body), "docs/panduan.md lacks {body:?}");
        }
    }

    #[test]
    fn texts_are_indonesian_and_name_the_way_back() {
        let s = settings();
        let out = reply_text(&ReplyKind::OptedOut, "Wikarta Provider", &s);
        assert!(out.contains("balas MULAI"), "{out}");
        assert!(out.ends_with("Salam,\nTim Wikarta Provider"), "{out}");
        let p = reply_text(
            &ReplyKind::Promise {
                until: date!(2026 - 12 - 25),
            },
            "Wikarta Provider",
            &s,
        );
        assert!(p.contains("sampai 25 Desember 2026"), "{p}");
        let a = reply_text(&ReplyKind::AskFormat, "Wikarta Provider", &s);
        assert!(
            a.contains("JANJI BAYAR 25/12") && a.contains("30 hari"),
            "{a}"
        );
    }
}
