//! The reminder messages customers receive, rendered from templates.
//!
//! # Built-in texts
//!
//! Stages before the due date (`T-7`, `T-3`, `T-1`, any `T-n`) use the seed's text
//! word for word; `T+0` says the invoice is due today; stages after the due date
//! (`T+3`, any `T+n`) say the invoice has passed its due date and ask for payment
//! to avoid a service interruption. The texts live in `crates/dunning-core/templates/`
//! and are the best starting point for an override.
//!
//! # Overrides (`DUNNING_TEMPLATES_DIR`)
//!
//! One file per template, named `<scope>.<channel>[.subject].txt`:
//!
//! | file | used for |
//! |---|---|
//! | `T-3.email.txt`, `T-3.whatsapp.txt` | the body for that stage only (any stage in `DUNNING_STAGES`, spelled the same way) |
//! | `T-3.email.subject.txt` | the email subject for that stage |
//! | `before_due.email.txt`, … | every stage before the due date (`T-n`) |
//! | `overdue.whatsapp.txt`, … | every stage after the due date (`T+n`, n ≥ 1) |
//! | `default.email.subject.txt`, … | every stage, `T+0` included |
//! | `grouped.email.txt`, `grouped.whatsapp.txt`, `grouped.email.subject.txt` | the one message for several invoices of a customer (`DUNNING_GROUP=customer`), with the variables in [`GROUP_VARIABLES`] |
//!
//! For one stage and channel the first existing file wins: the stage's own file, its
//! group (`before_due` / `overdue`), `default`, then the built-in text; a grouped
//! message uses its `grouped.*` file, else the built-in one. WhatsApp has
//! no subject. Hidden files, `README*` and subdirectories are ignored; any other
//! file that is not one of these names is an error (a misspelt override that is
//! silently ignored is worse than a refusal to start), and so is a stage file for a
//! stage that is not in `DUNNING_STAGES`.
//!
//! Templates are [minijinja](https://docs.rs/minijinja) (Jinja2) with the variables
//! in [`VARIABLES`]; `trim_blocks` and `lstrip_blocks` are on, so `{% if %}` lines
//! leave no blank lines behind. Files may be UTF-8 with or without a BOM and with
//! LF or CRLF line ends; trailing newlines are dropped, so a file's last line ends
//! the message. [`Templates::load`] parses every file and renders it with sample
//! facts for each stage it applies to, with unknown variables as errors, so a
//! mistake stops the program at startup with the file, line and problem.
//!
//! # Customer data
//!
//! Names and invoice numbers are data: they are not escaped (the bodies are plain
//! text), but line breaks and control characters in them become spaces and they
//! are cut at [`MAX_FIELD_CHARS`] characters, so they cannot add lines to a
//! subject or a body. Subjects are always a single line.

mod clean;
mod naming;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value, context};
use time::Date;
use time::macros::date;

use crate::channel::Channel;
use crate::format::{rupiah, tanggal};
use crate::stage::{DEFAULT_STAGES, Stage, parse_stages};

pub use clean::{
    FALLBACK_CUSTOMER_NAME, MAX_FIELD_CHARS, NO_NAME_LABEL, customer_display_name, customer_label,
};
use naming::{Key, Part, Scope};

/// The invoice facts a message is rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceFacts {
    pub customer_name: String,
    pub invoice_number: String,
    pub amount: i64,
    pub due_date: Date,
}

/// One reminder of a grouped message ([`Templates::render_group`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupItem {
    pub stage: Stage,
    pub facts: InvoiceFacts,
    pub payment_url: Option<String>,
}

/// How a grouped message words one reminder's stage: before the due date, due
/// tomorrow, due today, overdue.
fn stage_wording(stage: Stage, due_date: Date) -> String {
    let date = tanggal(due_date);
    match stage.offset_days() {
        -1 => format!("jatuh tempo besok, {date}"),
        0 => format!("jatuh tempo hari ini, {date}"),
        d if d < 0 => format!("akan jatuh tempo pada {date}"),
        _ => format!("telah melewati jatuh tempo pada {date}"),
    }
}

/// A rendered message. `subject` (one line) is used by email only; `body` is plain
/// text with `\n` line ends and no trailing newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// The variables a template can use, with an example value each.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "customer_name",
        "Budi Santoso (one line, at most 100 characters)",
    ),
    ("invoice_number", "INV-20251115-123456"),
    ("amount", "Rp 150.000"),
    ("amount_raw", "150000 (a number, for comparisons)"),
    ("due_date", "18 November 2025"),
    ("due_date_iso", "2025-11-18"),
    ("stage", "T-3"),
    ("days", "3 (days before or after the due date; 0 on T+0)"),
    (
        "overdue",
        "true from T+1 on, false before (for `{% if overdue %}`)",
    ),
    ("channel", "email or whatsapp"),
    ("company_name", "Wikarta Provider (DUNNING_COMPANY_NAME)"),
    (
        "payment_url",
        "https://billing.example.id/bayar/INV-20251115-123456 (PAYMENT_LINK; empty when there is no link, for `{% if payment_url %}`)",
    ),
];

/// The variables a `grouped.*` template can use, with an example value each.
pub const GROUP_VARIABLES: &[(&str, &str)] = &[
    (
        "customer_name",
        "Budi Santoso (one line, at most 100 characters)",
    ),
    ("count", "2 (the invoices in the message)"),
    ("total", "Rp 400.000"),
    ("total_raw", "400000 (a number, for comparisons)"),
    (
        "overdue",
        "true when one of the invoices is past its due date",
    ),
    (
        "reminders",
        "the invoices, for `{% for r in reminders %}`: r.invoice_number, r.amount, r.amount_raw, r.due_date, r.due_date_iso, r.stage, r.overdue, r.wording (\"akan jatuh tempo pada 18 November 2025\", \"jatuh tempo besok, …\", \"jatuh tempo hari ini, …\", \"telah melewati jatuh tempo pada …\"), r.payment_url (empty without a link)",
    ),
    ("channel", "email or whatsapp"),
    ("company_name", "Wikarta Provider (DUNNING_COMPANY_NAME)"),
];

/// A template that cannot be loaded or rendered. Load-time errors name the file
/// (and line, where there is one) and say how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The templates directory cannot be read.
    #[error("DUNNING_TEMPLATES_DIR={}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A template file cannot be read (or is not UTF-8).
    #[error("{}: cannot read template: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file in the templates directory that is not a template name.
    #[error(
        "{}: not a template file name; valid names are: {} (see docs/examples/templates/README.md)",
        path.display(),
        valid.join(", ")
    )]
    UnknownFile { path: PathBuf, valid: Vec<String> },
    /// A stage file for a stage that is never sent.
    #[error(
        "{}: stage {stage} is not in DUNNING_STAGES ({}), so this template would never be used",
        path.display(),
        join(configured)
    )]
    StageNotConfigured {
        path: PathBuf,
        stage: Stage,
        configured: Vec<Stage>,
    },
    /// A template that does not parse.
    #[error("{}: {detail}", at(path, *line))]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        detail: String,
    },
    /// A template that uses variables that do not exist.
    #[error(
        "{}: unknown variable {}; available variables: {}",
        at(path, *line),
        names.join(", "),
        variable_names_for(path)
    )]
    UnknownVariable {
        path: PathBuf,
        line: Option<usize>,
        names: Vec<String>,
    },
    /// A template that parses but fails or misbehaves when rendered with sample facts.
    #[error(
        "{}: {detail}; available variables: {}",
        at(path, *line),
        variable_names_for(path)
    )]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        detail: String,
    },
    /// Rendering failed for real facts (load-time validation makes this rare).
    #[error("template {origin}: {detail}")]
    Render { origin: String, detail: String },
}

fn at(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

fn join(stages: &[Stage]) -> String {
    stages
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The variables a template file may use: [`GROUP_VARIABLES`] for a `grouped.*`
/// file, [`VARIABLES`] for the others.
fn variables_of(path: &Path) -> &'static [(&'static str, &'static str)] {
    let grouped = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(Key::parse)
        .is_some_and(|k| k.scope == Scope::Grouped);
    if grouped { GROUP_VARIABLES } else { VARIABLES }
}

fn variable_names_for(path: &Path) -> String {
    variables_of(path)
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

const BUILTIN_BEFORE_DUE: &str = include_str!("../../templates/before_due.txt");
const BUILTIN_DUE_TODAY: &str = include_str!("../../templates/due_today.txt");
const BUILTIN_OVERDUE: &str = include_str!("../../templates/overdue.txt");
const BUILTIN_SUBJECT_BEFORE_DUE: &str = include_str!("../../templates/before_due.subject.txt");
const BUILTIN_SUBJECT_OVERDUE: &str = include_str!("../../templates/overdue.subject.txt");
const BUILTIN_GROUPED: &str = include_str!("../../templates/grouped.txt");
const BUILTIN_SUBJECT_GROUPED: &str = include_str!("../../templates/grouped.subject.txt");
const BUILTIN_RECEIPT: &str = include_str!("../../templates/receipt.txt");
const BUILTIN_SUBJECT_RECEIPT: &str = include_str!("../../templates/receipt.subject.txt");

/// Origin reported by [`Templates::sources`] for a built-in text.
pub const BUILT_IN: &str = "built-in";

/// The message templates in use: the built-in texts plus any overrides.
pub struct Templates {
    env: Environment<'static>,
    company_name: String,
    stages: Vec<Stage>,
    overrides: BTreeMap<Key, PathBuf>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("company_name", &self.company_name)
            .field("stages", &self.stages)
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl Templates {
    /// The built-in templates, for the default stages.
    pub fn builtin(company_name: &str) -> Self {
        let stages = parse_stages(DEFAULT_STAGES).expect("default stages parse");
        Self::with_builtins(company_name, &stages)
    }

    /// The built-in templates with the overrides found in `dir` (`DUNNING_TEMPLATES_DIR`),
    /// each one parsed and rendered with sample facts for every stage in `stages` it
    /// applies to. Without `dir`, the built-in templates only.
    pub fn load(
        company_name: &str,
        dir: Option<&Path>,
        stages: &[Stage],
    ) -> Result<Self, TemplateError> {
        let mut templates = Self::with_builtins(company_name, stages);
        let Some(dir) = dir else {
            templates.render_samples()?;
            return Ok(templates);
        };
        let files = scan(dir, &templates.stages)?;
        let mut sources = BTreeMap::new();
        for (key, path) in files {
            let raw = std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
                path: path.clone(),
                source,
            })?;
            let source = normalize(&raw);
            templates
                .env
                .add_template_owned(key.to_string(), source.clone())
                .map_err(|e| TemplateError::Syntax {
                    path: path.clone(),
                    line: e.line(),
                    detail: detail(&e),
                })?;
            templates.overrides.insert(key, path);
            sources.insert(key, source);
        }
        for (key, source) in &sources {
            templates.validate(*key, source)?;
        }
        templates.render_samples()?;
        Ok(templates)
    }

    /// Renders every configured stage on every channel with sample facts, built-in
    /// texts included: whatever serves a message has rendered once before anything
    /// is queued or sent.
    fn render_samples(&self) -> Result<(), TemplateError> {
        for &stage in &self.stages {
            for channel in Channel::ALL {
                self.render(stage, channel, &sample_facts())?;
            }
        }
        for channel in Channel::ALL {
            self.render_group(channel, "Budi Santoso", &sample_group())?;
        }
        Ok(())
    }

    fn with_builtins(company_name: &str, stages: &[Stage]) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(false);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Plain text: customer names are data, shown as written, never HTML-escaped.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        for (name, source) in [
            (builtin_name(Part::Body, -1), BUILTIN_BEFORE_DUE),
            (builtin_name(Part::Body, 0), BUILTIN_DUE_TODAY),
            (builtin_name(Part::Body, 1), BUILTIN_OVERDUE),
            (builtin_name(Part::Subject, -1), BUILTIN_SUBJECT_BEFORE_DUE),
            (builtin_name(Part::Subject, 1), BUILTIN_SUBJECT_OVERDUE),
            (RECEIPT_BODY, BUILTIN_RECEIPT),
            (GROUPED_BODY, BUILTIN_GROUPED),
            (GROUPED_SUBJECT, BUILTIN_SUBJECT_GROUPED),
            (RECEIPT_SUBJECT, BUILTIN_SUBJECT_RECEIPT),
        ] {
            env.add_template_owned(name, normalize(source))
                .expect("built-in templates parse");
        }
        let stages: BTreeSet<Stage> = stages.iter().copied().collect();
        Templates {
            env,
            company_name: clean::one_line(company_name, MAX_FIELD_CHARS),
            stages: stages.into_iter().collect(),
            overrides: BTreeMap::new(),
        }
    }

    /// Renders the message for `stage` on `channel`, without a payment link.
    pub fn render(
        &self,
        stage: Stage,
        channel: Channel,
        facts: &InvoiceFacts,
    ) -> Result<Rendered, TemplateError> {
        self.render_with_link(stage, channel, facts, None)
    }

    /// Renders the message for `stage` on `channel` with `payment_url` (the built-in
    /// texts add one line with it; without one they are exactly the seed's text).
    pub fn render_with_link(
        &self,
        stage: Stage,
        channel: Channel,
        facts: &InvoiceFacts,
        payment_url: Option<&str>,
    ) -> Result<Rendered, TemplateError> {
        let url = payment_url.map_or_else(String::new, |u| clean::one_line(u, usize::MAX));
        let ctx = self.context(stage, channel, facts, &url);
        let render = |part| {
            let (name, origin) = self.resolve(stage, channel, part);
            self.render_template(&name, origin, &ctx)
        };
        let subject = render(Part::Subject)?;
        let body = render(Part::Body)?;
        Ok(Rendered {
            subject: clean::one_line(&subject, usize::MAX),
            body: body.trim_end().to_owned(),
        })
    }

    /// The receipt sent once an invoice is paid (built-in text only): "Terima kasih,
    /// pembayaran tagihan INV-… sebesar Rp … telah kami terima."
    pub fn render_receipt(
        &self,
        channel: Channel,
        facts: &InvoiceFacts,
    ) -> Result<Rendered, TemplateError> {
        let ctx = context! {
            customer_name => customer_display_name(&facts.customer_name),
            invoice_number => clean::one_line(&facts.invoice_number, MAX_FIELD_CHARS),
            amount => rupiah(facts.amount),
            channel => channel.as_str(),
            company_name => self.company_name.as_str(),
        };
        let render = |name: &str| self.render_template(name, None, &ctx);
        Ok(Rendered {
            subject: clean::one_line(&render(RECEIPT_SUBJECT)?, usize::MAX),
            body: render(RECEIPT_BODY)?.trim_end().to_owned(),
        })
    }

    /// One message for several reminders of one customer (`DUNNING_GROUP=customer`;
    /// `grouped.*` overrides, else the built-in text): each invoice with its number,
    /// amount, due date and stage wording, its payment link if it has one, then the
    /// total. The subject names the count ("Pengingat Pembayaran 2 Tagihan").
    /// `items` in the order listed.
    pub fn render_group(
        &self,
        channel: Channel,
        customer_name: &str,
        items: &[GroupItem],
    ) -> Result<Rendered, TemplateError> {
        let ctx = self.group_context(channel, customer_name, items);
        let render = |part| {
            let key = Key::grouped(channel, part);
            let (name, origin) = match self.overrides.get(&key) {
                Some(path) => (key.to_string(), Some(path)),
                None => (
                    match part {
                        Part::Subject => GROUPED_SUBJECT,
                        Part::Body => GROUPED_BODY,
                    }
                    .to_owned(),
                    None,
                ),
            };
            self.render_template(&name, origin.map(|p| p.as_path()), &ctx)
        };
        Ok(Rendered {
            subject: clean::one_line(&render(Part::Subject)?, usize::MAX),
            body: render(Part::Body)?.trim_end().to_owned(),
        })
    }

    /// The variables of a grouped message ([`GROUP_VARIABLES`]).
    fn group_context(&self, channel: Channel, customer_name: &str, items: &[GroupItem]) -> Value {
        let reminders: Vec<Value> = items
            .iter()
            .map(|it| {
                let url = it
                    .payment_url
                    .as_deref()
                    .map_or_else(String::new, |u| clean::one_line(u, usize::MAX));
                context! {
                    invoice_number => clean::one_line(&it.facts.invoice_number, MAX_FIELD_CHARS),
                    amount => rupiah(it.facts.amount),
                    amount_raw => it.facts.amount,
                    due_date => tanggal(it.facts.due_date),
                    due_date_iso => it.facts.due_date.to_string(),
                    stage => it.stage.to_string(),
                    overdue => it.stage.is_overdue(),
                    wording => stage_wording(it.stage, it.facts.due_date),
                    payment_url => url,
                }
            })
            .collect();
        let total: i64 = items.iter().map(|it| it.facts.amount).sum();
        context! {
            customer_name => customer_display_name(customer_name),
            count => items.len(),
            total => rupiah(total),
            total_raw => total,
            overdue => items.iter().any(|it| it.stage.is_overdue()),
            reminders => reminders,
            channel => channel.as_str(),
            company_name => self.company_name.as_str(),
        }
    }

    /// What is in use for every configured stage and channel: the override file name
    /// that would apply (e.g. `T-3.email.subject.txt`) and where the text comes from,
    /// [`BUILT_IN`] or the path of the override file.
    pub fn sources(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for &stage in &self.stages {
            for (channel, part) in [
                (Channel::Email, Part::Subject),
                (Channel::Email, Part::Body),
                (Channel::WhatsApp, Part::Body),
            ] {
                let name = Key {
                    scope: Scope::Stage(stage),
                    channel,
                    part,
                }
                .to_string();
                let origin = match self.resolve(stage, channel, part).1 {
                    Some(path) => path.display().to_string(),
                    None => BUILT_IN.to_owned(),
                };
                out.push((name, origin));
            }
        }
        for (channel, part) in [
            (Channel::Email, Part::Subject),
            (Channel::Email, Part::Body),
            (Channel::WhatsApp, Part::Body),
        ] {
            let key = Key::grouped(channel, part);
            let origin = self
                .overrides
                .get(&key)
                .map_or_else(|| BUILT_IN.to_owned(), |p| p.display().to_string());
            out.push((key.to_string(), origin));
        }
        out
    }

    /// The template name in `env` for a message part, and its file if overridden.
    /// Renders template `name` (an override read from `origin`, or built in) with
    /// `ctx`; an error names the file and line, or the built-in template.
    fn render_template(
        &self,
        name: &str,
        origin: Option<&Path>,
        ctx: &Value,
    ) -> Result<String, TemplateError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| TemplateError::Render {
                origin: match (origin, e.line()) {
                    (Some(path), line) => at(path, line),
                    (None, _) => format!("{BUILT_IN} {name}"),
                },
                detail: detail(&e),
            })
    }

    fn resolve(&self, stage: Stage, channel: Channel, part: Part) -> (String, Option<&Path>) {
        Key::candidates(stage, channel, part)
            .into_iter()
            .find_map(|key| {
                self.overrides
                    .get(&key)
                    .map(|path| (key.to_string(), Some(path.as_path())))
            })
            .unwrap_or_else(|| (builtin_name(part, stage.offset_days()).to_owned(), None))
    }

    fn context(
        &self,
        stage: Stage,
        channel: Channel,
        facts: &InvoiceFacts,
        payment_url: &str,
    ) -> Value {
        context! {
            customer_name => customer_display_name(&facts.customer_name),
            invoice_number => clean::one_line(&facts.invoice_number, MAX_FIELD_CHARS),
            amount => rupiah(facts.amount),
            amount_raw => facts.amount,
            due_date => tanggal(facts.due_date),
            due_date_iso => facts.due_date.to_string(),
            stage => stage.to_string(),
            days => stage.offset_days().unsigned_abs(),
            overdue => stage.is_overdue(),
            channel => channel.as_str(),
            company_name => self.company_name.as_str(),
            payment_url => payment_url,
        }
    }

    /// Checks an override now, so that a mistake stops startup instead of the 08:00 run:
    /// every variable must exist, and the template must render, for each stage (and
    /// channel) it will be used for, to a non-empty text (a one-line one for subjects).
    fn validate(&self, key: Key, source: &str) -> Result<(), TemplateError> {
        let path = &self.overrides[&key];
        let name = key.to_string();
        let template = self
            .env
            .get_template(&name)
            .map_err(|e| TemplateError::Syntax {
                path: path.clone(),
                line: e.line(),
                detail: detail(&e),
            })?;

        let channels: &[Channel] = match key.part {
            Part::Subject => &Channel::ALL,
            Part::Body => std::slice::from_ref(&key.channel),
        };
        // What the template is tried with: each stage (and channel) it serves with
        // sample facts, or, for `grouped.*`, a sample group on each channel.
        let mut samples: Vec<(String, Value)> = Vec::new();
        if key.scope == Scope::Grouped {
            for &channel in channels {
                let ctx = self.group_context(channel, "Budi Santoso", &sample_group());
                samples.push(("a sample group of 2 invoices".to_owned(), ctx));
            }
        } else {
            let mut stages = key.stages_in(&self.stages);
            if stages.is_empty() {
                // A group with no configured stage still has to be correct when one is added.
                stages.push(Stage::from_offset(match key.scope {
                    Scope::Stage(stage) => stage.offset_days(),
                    Scope::Overdue => 3,
                    Scope::BeforeDue | Scope::Default | Scope::Grouped => -3,
                }));
            }
            for &stage in &stages {
                for &channel in channels {
                    let ctx = self.context(stage, channel, &sample_facts(), SAMPLE_URL);
                    samples.push((format!("stage {stage} with sample facts"), ctx));
                }
            }
        }

        let mut first_error = None;
        let mut outputs = Vec::new();
        for (label, ctx) in &samples {
            match template.render(ctx) {
                Ok(text) => outputs.push((label, text)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }

        let unknown =
            self.unknown_variables(&template.undeclared_variables(true), variables_of(path));
        if !unknown.is_empty() {
            // The renderer knows the exact line when it hit the variable; a variable in
            // a branch the sample facts did not take is found in the source instead.
            let line = first_error
                .as_ref()
                .filter(|e| e.kind() == ErrorKind::UndefinedError)
                .and_then(minijinja::Error::line)
                .or_else(|| unknown.iter().find_map(|name| line_of(source, name)));
            return Err(TemplateError::UnknownVariable {
                path: path.clone(),
                line,
                names: unknown,
            });
        }
        if let Some(e) = first_error {
            return Err(TemplateError::Invalid {
                path: path.clone(),
                line: e.line(),
                detail: detail(&e),
            });
        }
        for (label, text) in outputs {
            let problem = if text.trim().is_empty() {
                Some("renders to an empty text")
            } else if key.part == Part::Subject && text.trim().contains(['\n', '\r']) {
                Some("a subject must be a single line")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(TemplateError::Invalid {
                    path: path.clone(),
                    line: None,
                    detail: format!("{problem} (for {label})"),
                });
            }
        }
        Ok(())
    }

    /// Names a template looks up that are neither our variables nor minijinja's
    /// global functions (`range`, `namespace`, …), sorted. Our variables are plain
    /// text and numbers, so an attribute of one (`customer_name.first`) is unknown too.
    fn unknown_variables(
        &self,
        names: &std::collections::HashSet<String>,
        variables: &[(&str, &str)],
    ) -> Vec<String> {
        let globals: BTreeSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        let is_variable = |name: &str| variables.iter().any(|(known, _)| *known == name);
        let unknown: BTreeSet<String> = names
            .iter()
            .filter_map(|name| {
                let root = name.split('.').next().unwrap_or(name);
                if globals.contains(root) || root == "loop" {
                    None
                } else if is_variable(root) {
                    (root != name).then(|| name.clone())
                } else {
                    Some(root.to_owned())
                }
            })
            .collect();
        unknown.into_iter().collect()
    }
}

const RECEIPT_BODY: &str = "built-in/receipt.txt";
const GROUPED_BODY: &str = "built-in/grouped.txt";
const GROUPED_SUBJECT: &str = "built-in/grouped.subject.txt";
const RECEIPT_SUBJECT: &str = "built-in/receipt.subject.txt";

/// Name of a built-in template in the environment, by part and the stage's side of
/// the due date (negative: before, zero: due today, positive: overdue).
fn builtin_name(part: Part, offset_days: i32) -> &'static str {
    match (part, offset_days.signum()) {
        (Part::Subject, 1) => "built-in/overdue.subject.txt",
        (Part::Subject, _) => "built-in/before_due.subject.txt",
        (Part::Body, -1) => "built-in/before_due.txt",
        (Part::Body, 0) => "built-in/due_today.txt",
        (Part::Body, _) => "built-in/overdue.txt",
    }
}

/// The payment link overrides are test-rendered with at load time.
const SAMPLE_URL: &str = "https://billing.example.id/bayar/INV-20251115-123456";

/// The facts overrides are test-rendered with at load time.
fn sample_facts() -> InvoiceFacts {
    InvoiceFacts {
        customer_name: "Budi Santoso".into(),
        invoice_number: "INV-20251115-123456".into(),
        amount: 150_000,
        due_date: date!(2025 - 11 - 18),
    }
}

/// The group overrides are test-rendered with at load time: one invoice before its
/// due date with a payment link, one overdue without.
fn sample_group() -> Vec<GroupItem> {
    vec![
        GroupItem {
            stage: Stage::from_offset(-3),
            facts: sample_facts(),
            payment_url: Some(SAMPLE_URL.to_owned()),
        },
        GroupItem {
            stage: Stage::from_offset(3),
            facts: InvoiceFacts {
                invoice_number: "INV-20251015-654321".into(),
                amount: 250_000,
                due_date: date!(2025 - 10 - 18),
                ..sample_facts()
            },
            payment_url: None,
        },
    ]
}

/// Drops a BOM, turns CRLF/CR into LF and drops trailing newlines, so a file saved by
/// Notepad renders exactly like one saved by vim.
fn normalize(raw: &str) -> String {
    let text = raw.strip_prefix('\u{FEFF}').unwrap_or(raw);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    text.trim_end_matches('\n').to_owned()
}

/// A minijinja error's message without its own "(in name:line)" suffix, which we
/// replace by the file path.
fn detail(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// The first line (1-based) where `name` appears as a whole identifier.
fn line_of(source: &str, name: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    source
        .lines()
        .position(|line| {
            line.match_indices(name).any(|(i, _)| {
                let before = line[..i].chars().next_back();
                let after = line[i + name.len()..].chars().next();
                !before.is_some_and(|c| is_ident(c) || c == '.') && !after.is_some_and(is_ident)
            })
        })
        .map(|i| i + 1)
}

/// The override files in `dir`, checked against the names valid for `stages`.
fn scan(dir: &Path, stages: &[Stage]) -> Result<Vec<(Key, PathBuf)>, TemplateError> {
    let dir_error = |source| TemplateError::Dir {
        path: dir.to_owned(),
        source,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_error)? {
        let entry = entry.map_err(dir_error)?;
        let path = entry.path();
        if path.is_dir() {
            continue;
        }
        let file_name = entry.file_name();
        let name = file_name.to_string_lossy();
        if name.starts_with('.') || name.to_ascii_lowercase().starts_with("readme") {
            continue;
        }
        entries.push((name.into_owned(), path));
    }
    entries.sort();

    let mut files = Vec::new();
    for (name, path) in entries {
        let Some(key) = Key::parse(&name) else {
            return Err(TemplateError::UnknownFile {
                path,
                valid: Key::all_file_names(stages),
            });
        };
        if let Scope::Stage(stage) = key.scope {
            if !stages.contains(&stage) {
                return Err(TemplateError::StageNotConfigured {
                    path,
                    stage,
                    configured: stages.to_vec(),
                });
            }
        }
        files.push((key, path));
    }
    Ok(files)
}

#[cfg(test)]
mod tests;
