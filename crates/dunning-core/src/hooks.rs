//! Escalation hooks (`DUNNING_HOOKS`, default `hooks.toml` next to `.env`): which
//! action runs on which event. Parsing and checking only; running them is
//! `dunning_channels::hooks`.
//!
//! ```toml
//! "T+7" = { action = "isolir", message = false }   # a stage: act, send no reminder
//! paid = "lapor-billing"                           # an invoice turned paid
//! optout = "lapor-billing"                         # a customer opted out of a channel
//!
//! [actions.isolir]
//! command = ["/etc/dunning/mikrotik.sh", "isolir"]  # JSON on stdin, exit 0 = done
//! restore = "buka-isolir"                           # run once when the invoice is paid
//!
//! [actions.buka-isolir]
//! command = ["/etc/dunning/mikrotik.sh", "buka"]
//!
//! [actions.lapor-billing]
//! url = "https://billing.example/dunning-hook"      # POST, signed X-Dunning-Signature
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::Stage;

/// The variables this module reads.
pub const VARIABLES: &[&str] = &[
    "DUNNING_HOOKS",
    "DUNNING_HOOK_TIMEOUT",
    "DUNNING_HOOK_SECRET",
];

/// The event names that are not stages.
pub const PAID: &str = "paid";
pub const OPTOUT: &str = "optout";

/// The ledger's stage of a restore of the action run at `event` (`restore:T+7`).
pub fn restore_stage(event: &str) -> String {
    format!("restore:{event}")
}

/// The ledger's stage of an opt-out hook for `channel` (`optout:whatsapp`).
pub fn optout_stage(channel: &str) -> String {
    format!("{OPTOUT}:{channel}")
}

/// What an action does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A program and its arguments (no shell): the event as JSON on stdin.
    Command(Vec<String>),
    /// An HTTP POST of the event as JSON, signed with `DUNNING_HOOK_SECRET`.
    Url(String),
}

/// One named action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub name: String,
    pub target: Target,
    /// The action that undoes this one, run once when the invoice is paid.
    pub restore: Option<String>,
}

/// A stage with a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageHook {
    pub stage: Stage,
    pub action: String,
    /// False: the stage sends no reminder, it only acts.
    pub message: bool,
}

/// The parsed and checked hooks file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub stages: Vec<StageHook>,
    pub paid: Option<String>,
    pub optout: Option<String>,
    pub actions: BTreeMap<String, Action>,
}

/// A hooks file that cannot be used: names the file, the line and the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}{}: {problem}. Fix: {fix}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct HooksError {
    pub file: String,
    pub line: Option<usize>,
    pub problem: String,
    pub fix: String,
}

impl Hooks {
    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty() && self.paid.is_none() && self.optout.is_none()
    }

    /// The action named `name`.
    pub fn action(&self, name: &str) -> Option<&Action> {
        self.actions.get(name)
    }

    /// True when an action posts to a URL (then `DUNNING_HOOK_SECRET` is required).
    pub fn posts(&self) -> bool {
        self.actions
            .values()
            .any(|a| matches!(a.target, Target::Url(_)))
    }

    /// Stages whose hook says `message = false`: no reminder goes out on them.
    pub fn silent_stages(&self) -> Vec<Stage> {
        self.stages
            .iter()
            .filter(|h| !h.message)
            .map(|h| h.stage)
            .collect()
    }

    /// Parses the text of the hooks file `file` (named in errors).
    pub fn parse(file: &str, text: &str) -> Result<Hooks, HooksError> {
        let err = |key: Option<&str>, problem: String, fix: &str| HooksError {
            file: file.to_owned(),
            line: key.and_then(|k| line_of(text, k)),
            problem,
            fix: fix.to_owned(),
        };
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            HooksError {
                file: file.to_owned(),
                line,
                problem: format!("not valid TOML ({})", e.message()),
                fix: "write one event a line, e.g. `\"T+7\" = { action = \"isolir\", message = false }` (quote stage names: + and - need quotes), and each action as an `[actions.NAME]` table with `command = [\"program\", \"arg\"]` or `url = \"https://…\"`".to_owned(),
            }
        })?;
        let mut hooks = Hooks::default();
        for (key, value) in &table {
            if key == "actions" {
                let toml::Value::Table(actions) = value else {
                    return Err(err(
                        Some(key),
                        "`actions` is not a table".into(),
                        "define each action as `[actions.NAME]` with `command` or `url`",
                    ));
                };
                for (name, body) in actions {
                    let action = parse_action(name, body).map_err(|(problem, fix)| {
                        err(Some(&format!("[actions.{name}]")), problem, &fix)
                    })?;
                    hooks.actions.insert(name.clone(), action);
                }
                continue;
            }
            let (action, message) = match value {
                toml::Value::String(s) => (s.clone(), true),
                toml::Value::Table(t) => {
                    let action = match t.get("action") {
                        Some(toml::Value::String(s)) => s.clone(),
                        _ => {
                            return Err(err(
                                Some(key),
                                format!("event {key:?} names no action"),
                                "write `action = \"NAME\"` inside the braces",
                            ));
                        }
                    };
                    let message = match t.get("message") {
                        None => true,
                        Some(toml::Value::Boolean(b)) => *b,
                        Some(_) => {
                            return Err(err(
                                Some(key),
                                format!("event {key:?}: `message` is not true or false"),
                                "write `message = false` (the stage only acts) or leave it out",
                            ));
                        }
                    };
                    if let Some(other) = t.keys().find(|k| *k != "action" && *k != "message") {
                        return Err(err(
                            Some(key),
                            format!("event {key:?}: unknown setting `{other}`"),
                            "an event takes `action` and `message` only; `restore` belongs in the action's [actions.NAME] table",
                        ));
                    }
                    (action, message)
                }
                _ => {
                    return Err(err(
                        Some(key),
                        format!("event {key:?} is neither an action name nor a table"),
                        "write `EVENT = \"ACTION\"` or `EVENT = { action = \"ACTION\", message = false }`",
                    ));
                }
            };
            match key.as_str() {
                PAID | OPTOUT if !message => {
                    return Err(err(
                        Some(key),
                        format!("`message = false` on {key:?}: only a stage sends a reminder"),
                        "remove `message = false` from this event",
                    ));
                }
                PAID => hooks.paid = Some(action),
                OPTOUT => hooks.optout = Some(action),
                stage => {
                    let stage: Stage = stage.parse().map_err(|_| {
                        err(
                            Some(key),
                            format!("unknown event {key:?}"),
                            "use a stage such as \"T+7\" or \"T-3\" (in quotes), `paid` or `optout`",
                        )
                    })?;
                    if hooks.stages.iter().any(|h| h.stage == stage) {
                        return Err(err(
                            Some(key),
                            format!("stage {stage} has two hooks"),
                            "keep one line per stage",
                        ));
                    }
                    hooks.stages.push(StageHook {
                        stage,
                        action,
                        message,
                    });
                }
            }
        }
        let named = hooks
            .stages
            .iter()
            .map(|h| (h.stage.to_string(), h.action.clone()))
            .chain(hooks.paid.iter().map(|a| (PAID.to_owned(), a.clone())))
            .chain(hooks.optout.iter().map(|a| (OPTOUT.to_owned(), a.clone())));
        let defined = hooks.actions.keys().cloned().collect::<Vec<_>>().join(", ");
        for (event, action) in named {
            if !hooks.actions.contains_key(&action) {
                return Err(err(
                    Some(&event),
                    format!("event {event} runs action {action:?}, which is not defined"),
                    &format!(
                        "add an `[actions.{action}]` table with `command` or `url`, or use a defined action ({})",
                        if defined.is_empty() {
                            "none yet"
                        } else {
                            &defined
                        }
                    ),
                ));
            }
        }
        for a in hooks.actions.values() {
            if let Some(r) = &a.restore
                && !hooks.actions.contains_key(r)
            {
                return Err(err(
                    Some(&format!("[actions.{}]", a.name)),
                    format!(
                        "action {:?} restores with {r:?}, which is not defined",
                        a.name
                    ),
                    &format!("add an `[actions.{r}]` table, or remove `restore`"),
                ));
            }
        }
        hooks.stages.sort_by_key(|h| h.stage);
        Ok(hooks)
    }
}

/// One `[actions.NAME]` table; the error is (problem, fix).
fn parse_action(name: &str, body: &toml::Value) -> Result<Action, (String, String)> {
    let toml::Value::Table(t) = body else {
        return Err((
            format!("action {name:?} is not a table"),
            format!("write `[actions.{name}]` and under it `command = [...]` or `url = \"...\"`"),
        ));
    };
    if let Some(other) = t
        .keys()
        .find(|k| !["command", "url", "restore"].contains(&k.as_str()))
    {
        return Err((
            format!("action {name:?}: unknown setting `{other}`"),
            "an action takes `command` or `url`, and optionally `restore`".to_owned(),
        ));
    }
    let target = match (t.get("command"), t.get("url")) {
        (Some(_), Some(_)) => {
            return Err((
                format!("action {name:?} has both `command` and `url`"),
                "keep one: a command runs here, a url is POSTed to".to_owned(),
            ));
        }
        (Some(toml::Value::String(s)), None) if !s.trim().is_empty() => {
            Target::Command(vec![s.clone()])
        }
        (Some(toml::Value::Array(a)), None)
            if !a.is_empty() && a.iter().all(|v| v.as_str().is_some_and(|s| !s.is_empty())) =>
        {
            Target::Command(
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            )
        }
        (Some(_), None) => {
            return Err((
                format!("action {name:?}: `command` is empty or not text"),
                "write `command = [\"/path/to/program\", \"argument\"]` (no shell: one list item per argument)".to_owned(),
            ));
        }
        (None, Some(toml::Value::String(u)))
            if u.starts_with("http://") || u.starts_with("https://") =>
        {
            Target::Url(u.clone())
        }
        (None, Some(_)) => {
            return Err((
                format!("action {name:?}: `url` is not an http:// or https:// address"),
                "write `url = \"https://host/path\"`".to_owned(),
            ));
        }
        (None, None) => {
            return Err((
                format!("action {name:?} has neither `command` nor `url`"),
                "add `command = [\"/path/to/program\"]` or `url = \"https://…\"`".to_owned(),
            ));
        }
    };
    let restore = match t.get("restore") {
        None => None,
        Some(toml::Value::String(r)) if r != name => Some(r.clone()),
        Some(_) => {
            return Err((
                format!("action {name:?}: `restore` is not the name of another action"),
                "write `restore = \"NAME\"` naming the action that undoes this one".to_owned(),
            ));
        }
    };
    Ok(Action {
        name: name.to_owned(),
        target,
        restore,
    })
}

/// The 1-based line where `key` is defined (as a bare or quoted key, or a table header).
fn line_of(text: &str, key: &str) -> Option<usize> {
    let quoted = format!("\"{key}\"");
    let header = key.replace('.', "\\.");
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            if key.starts_with('[') {
                let compact: String = l.chars().filter(|c| !c.is_whitespace()).collect();
                return compact.starts_with(key) || compact.starts_with(&header);
            }
            let rest = l
                .strip_prefix(&quoted)
                .or_else(|| l.strip_prefix(&format!("'{key}'")))
                .or_else(|| l.strip_prefix(key));
            rest.is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The hook settings from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSettings {
    /// `DUNNING_HOOKS`: the file, relative to the folder of `.env`.
    pub file: PathBuf,
    /// True when `DUNNING_HOOKS` was set (then the file must exist).
    pub explicit: bool,
    /// `DUNNING_HOOK_TIMEOUT`: a command's time before it is killed, a POST's timeout.
    pub timeout: Duration,
    /// `DUNNING_HOOK_SECRET`: the key of `X-Dunning-Signature`.
    pub secret: Option<crate::config::Secret>,
}

/// The default hooks file.
pub const DEFAULT_FILE: &str = "hooks.toml";

impl HookSettings {
    /// Reads `DUNNING_HOOKS`, `DUNNING_HOOK_TIMEOUT` and `DUNNING_HOOK_SECRET`.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// [`HookSettings::from_env`] over any source of variables.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::config::ConfigError> {
        let file = var("DUNNING_HOOKS");
        let timeout = match var("DUNNING_HOOK_TIMEOUT") {
            None => Duration::from_secs(30),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(s) if (1..=3600).contains(&s) => Duration::from_secs(s),
                _ => {
                    return Err(crate::config::ConfigError::Invalid {
                        var: "DUNNING_HOOK_TIMEOUT",
                        value: v,
                        hint: "use whole seconds from 1 to 3600, e.g. 30 (the default)".to_owned(),
                    });
                }
            },
        };
        Ok(HookSettings {
            explicit: file.is_some(),
            file: PathBuf::from(file.unwrap_or_else(|| DEFAULT_FILE.to_owned())),
            timeout,
            secret: var("DUNNING_HOOK_SECRET").map(crate::config::Secret::new),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
"T+7" = { action = "isolir", message = false }
paid = "lapor"
optout = { action = "lapor" }

[actions.isolir]
command = ["/bin/isolir", "on"]
restore = "buka"

[actions.buka]
command = "/bin/buka"

[actions.lapor]
url = "https://billing.example/hook"
"#;

    #[test]
    fn a_good_file_reads_into_events_and_actions() {
        let h = Hooks::parse("hooks.toml", GOOD).unwrap();
        assert_eq!(h.stages.len(), 1);
        assert_eq!(h.stages[0].stage.to_string(), "T+7");
        assert!(!h.stages[0].message);
        assert_eq!(h.paid.as_deref(), Some("lapor"));
        assert_eq!(h.optout.as_deref(), Some("lapor"));
        assert_eq!(h.action("isolir").unwrap().restore.as_deref(), Some("buka"));
        assert_eq!(
            h.action("buka").unwrap().target,
            Target::Command(vec!["/bin/buka".into()])
        );
        assert!(h.posts());
        assert_eq!(h.silent_stages().len(), 1);
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../../docs/examples/hooks/hooks.toml");
        let h = Hooks::parse("hooks.toml", text).unwrap();
        assert_eq!(
            h.action("isolir").unwrap().restore.as_deref(),
            Some("buka-isolir")
        );
        assert_eq!(h.silent_stages().len(), 1);
    }

    #[test]
    fn bad_files_name_the_line_and_the_fix() {
        for (text, line, needle) in [
            ("T+7 = \"x\"\n", 1, "quote stage names"),
            (
                "\n\"T+9x\" = \"a\"\n[actions.a]\ncommand = \"/x\"\n",
                2,
                "unknown event",
            ),
            ("paid = \"nope\"\n", 1, "add an `[actions.nope]`"),
            (
                "paid = \"a\"\n[actions.a]\ncomand = \"/x\"\n",
                2,
                "unknown setting `comand`",
            ),
            (
                "paid = \"a\"\n[actions.a]\nurl = \"ftp://x\"\n",
                2,
                "http://",
            ),
            (
                "paid = \"a\"\n\n[actions.a]\ncommand = \"/x\"\nrestore = \"b\"\n",
                3,
                "restores with \"b\"",
            ),
            (
                "paid = { action = \"a\", message = false }\n[actions.a]\ncommand = \"/x\"\n",
                1,
                "only a stage",
            ),
        ] {
            let e = Hooks::parse("hooks.toml", text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text}: {e}");
            let shown = e.to_string();
            assert!(shown.contains(needle) && shown.contains("Fix:"), "{shown}");
        }
    }

    #[test]
    fn settings_default_and_reject_bad_timeouts() {
        let s = HookSettings::from_vars(|_| None).unwrap();
        assert_eq!(s.file, PathBuf::from("hooks.toml"));
        assert!(!s.explicit);
        assert_eq!(s.timeout, Duration::from_secs(30));
        let e = HookSettings::from_vars(|n| (n == "DUNNING_HOOK_TIMEOUT").then(|| "0".into()))
            .unwrap_err();
        assert!(e.to_string().contains("DUNNING_HOOK_TIMEOUT"), "{e}");
    }
}
