//! Names of override files in `DUNNING_TEMPLATES_DIR` and the order they are tried in.
//!
//! A file name is `<scope>.<channel>[.subject].txt`:
//!
//! - `<scope>` is a stage exactly as `DUNNING_STAGES` spells it (`T-7`, `T+3`, `T+0`),
//!   or a group: `before_due` (every `T-n`), `overdue` (every `T+n`, n ≥ 1) or
//!   `default` (every stage, `T+0` included); or `grouped`: the one message for
//!   several invoices of a customer (`DUNNING_GROUP=customer`), which has its own
//!   variables and falls back to its built-in text only;
//! - `<channel>` is `email` or `whatsapp`;
//! - `.subject` marks an email subject (WhatsApp messages have none).
//!
//! For one stage and channel the first file that exists wins: the stage's own file,
//! then its group's, then `default`, then the built-in text.

use std::fmt;

use crate::channel::Channel;
use crate::stage::Stage;

/// Which part of a message a template produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Part {
    Subject,
    Body,
}

/// The stages a template file applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Scope {
    Stage(Stage),
    BeforeDue,
    Overdue,
    Default,
    /// The message for several invoices of one customer (no stage fallback).
    Grouped,
}

impl Scope {
    /// The group a stage belongs to; `T+0` ("due today") belongs to none.
    pub(crate) fn group_of(stage: Stage) -> Option<Scope> {
        match stage.offset_days().signum() {
            -1 => Some(Scope::BeforeDue),
            0 => None,
            _ => Some(Scope::Overdue),
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        match s {
            "before_due" => Some(Scope::BeforeDue),
            "overdue" => Some(Scope::Overdue),
            "default" => Some(Scope::Default),
            "grouped" => Some(Scope::Grouped),
            // Only the canonical spelling: `t-3` or `T-03` would be a second name
            // for the same file, and two names for one thing is how overrides get lost.
            _ => s
                .parse::<Stage>()
                .ok()
                .filter(|stage| stage.to_string() == s)
                .map(Scope::Stage),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Stage(stage) => stage.fmt(f),
            Scope::BeforeDue => f.write_str("before_due"),
            Scope::Overdue => f.write_str("overdue"),
            Scope::Default => f.write_str("default"),
            Scope::Grouped => f.write_str("grouped"),
        }
    }
}

/// One overridable template: what it applies to, on which channel, which part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub(crate) scope: Scope,
    pub(crate) channel: Channel,
    pub(crate) part: Part,
}

impl Key {
    /// Parses an override file name; `None` for anything that is not one.
    pub(crate) fn parse(file_name: &str) -> Option<Key> {
        let stem = file_name.strip_suffix(".txt")?;
        let (scope, channel, part) = if let Some(s) = stem.strip_suffix(".email.subject") {
            (s, Channel::Email, Part::Subject)
        } else if let Some(s) = stem.strip_suffix(".email") {
            (s, Channel::Email, Part::Body)
        } else if let Some(s) = stem.strip_suffix(".whatsapp") {
            (s, Channel::WhatsApp, Part::Body)
        } else {
            return None;
        };
        Some(Key {
            scope: Scope::parse(scope)?,
            channel,
            part,
        })
    }

    /// The keys to try, most specific first, for `stage` on `channel`.
    ///
    /// Subjects are email-only, so a WhatsApp subject is looked up as the email one.
    pub(crate) fn candidates(stage: Stage, channel: Channel, part: Part) -> Vec<Key> {
        let channel = match part {
            Part::Subject => Channel::Email,
            Part::Body => channel,
        };
        [
            Some(Scope::Stage(stage)),
            Scope::group_of(stage),
            Some(Scope::Default),
        ]
        .into_iter()
        .flatten()
        .map(|scope| Key {
            scope,
            channel,
            part,
        })
        .collect()
    }

    /// The grouped message's key for `channel` and `part` (subjects are email-only,
    /// as for [`Key::candidates`]).
    pub(crate) fn grouped(channel: Channel, part: Part) -> Key {
        Key {
            scope: Scope::Grouped,
            channel: match part {
                Part::Subject => Channel::Email,
                Part::Body => channel,
            },
            part,
        }
    }

    /// The stages among `configured` this key applies to (none for `grouped`).
    pub(crate) fn stages_in(self, configured: &[Stage]) -> Vec<Stage> {
        configured
            .iter()
            .copied()
            .filter(|&stage| match self.scope {
                Scope::Stage(s) => s == stage,
                Scope::Default => true,
                Scope::Grouped => false,
                group => Scope::group_of(stage) == Some(group),
            })
            .collect()
    }

    /// Every valid file name for `stages`, in a stable order, for error messages.
    pub(crate) fn all_file_names(stages: &[Stage]) -> Vec<String> {
        let scopes = stages.iter().map(|&s| Scope::Stage(s)).chain([
            Scope::BeforeDue,
            Scope::Overdue,
            Scope::Default,
            Scope::Grouped,
        ]);
        scopes
            .flat_map(|scope| {
                [
                    (Channel::Email, Part::Body),
                    (Channel::Email, Part::Subject),
                    (Channel::WhatsApp, Part::Body),
                ]
                .map(|(channel, part)| {
                    Key {
                        scope,
                        channel,
                        part,
                    }
                    .to_string()
                })
            })
            .collect()
    }
}

/// The key's file name, e.g. `T-3.email.subject.txt`.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = match self.part {
            Part::Subject => ".subject",
            Part::Body => "",
        };
        write!(f, "{}.{}{part}.txt", self.scope, self.channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(s: &str) -> Stage {
        s.parse().unwrap()
    }

    #[test]
    fn file_names_round_trip() {
        for name in [
            "T-7.email.txt",
            "T-7.email.subject.txt",
            "T-7.whatsapp.txt",
            "T+0.whatsapp.txt",
            "T-14.email.txt",
            "before_due.email.subject.txt",
            "overdue.whatsapp.txt",
            "default.email.txt",
            "grouped.email.txt",
            "grouped.email.subject.txt",
            "grouped.whatsapp.txt",
        ] {
            let key = Key::parse(name).unwrap_or_else(|| panic!("{name} should parse"));
            assert_eq!(key.to_string(), name);
        }
    }

    #[test]
    fn rejects_other_names() {
        for name in [
            "T-3.whatsap.txt",
            "T-3.whatsapp",
            "T-3.whatsapp.txt~",
            "T-3.whatsapp.subject.txt",
            "t-3.email.txt",
            "T-03.email.txt",
            "T-0.email.txt",
            "T3.email.txt",
            "overdue.txt",
            "due_today.email.txt",
            "T-3.Email.txt",
            "README.md",
            "grouped.txt",
            "grouped.whatsapp.subject.txt",
        ] {
            assert_eq!(Key::parse(name), None, "{name} should be rejected");
        }
    }

    #[test]
    fn precedence_is_stage_then_group_then_default() {
        let names = |s: &str, channel, part| -> Vec<String> {
            Key::candidates(stage(s), channel, part)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            names("T-3", Channel::WhatsApp, Part::Body),
            [
                "T-3.whatsapp.txt",
                "before_due.whatsapp.txt",
                "default.whatsapp.txt"
            ]
        );
        assert_eq!(
            names("T+3", Channel::Email, Part::Subject),
            [
                "T+3.email.subject.txt",
                "overdue.email.subject.txt",
                "default.email.subject.txt"
            ]
        );
        assert_eq!(
            names("T+0", Channel::Email, Part::Body),
            ["T+0.email.txt", "default.email.txt"]
        );
    }
}
