//! `pause`, `unpause`, `optout`, `optin`, `pauses` and `replies`: holds on
//! reminders, and the customers' WhatsApp replies that need an answer.

use diesel::pg::PgConnection;
use dunning_core::{Channel, Settings};
use dunning_store::holds::{self, CustomerRef, Target};
use dunning_store::inbound;
use serde_json::json;
use time::OffsetDateTime;

use crate::app::{self, UsageError};
use crate::cli::{HoldTarget, OptTarget, PauseArgs, PauseTarget};

/// Who the command line acts as, in `created_by` / `handled_by`.
const BY: &str = "cli";

fn today(settings: &Settings) -> time::Date {
    settings.zone.date_at(OffsetDateTime::now_utc())
}

/// The customers `key` names (external id, else phone number); an error naming the
/// fix when none does.
fn customers(conn: &mut PgConnection, key: &str) -> anyhow::Result<Vec<CustomerRef>> {
    let found = holds::find_customers(conn, key)?;
    if found.is_empty() {
        return Err(UsageError(format!(
            "no customer has the external id or phone number {key:?}: check it with the billing application (or the customers CSV of `import`)"
        ))
        .into());
    }
    Ok(found)
}

fn label(c: &CustomerRef) -> String {
    match &c.external_id {
        Some(x) => format!("customer {x} ({})", c.name),
        None => format!("customer #{} ({})", c.id, c.name),
    }
}

fn invoice(conn: &mut PgConnection, number: &str) -> anyhow::Result<holds::InvoiceRef> {
    holds::find_invoice(conn, number)?.ok_or_else(|| {
        UsageError(format!(
            "no invoice has the number {number:?}: check the spelling, e.g. INV-20251115-123456"
        ))
        .into()
    })
}

/// `pause customer|invoice … --until DATE --reason TEXT`.
pub fn pause(settings: &Settings, target: &PauseTarget) -> anyhow::Result<()> {
    let (args, what): (&PauseArgs, _) = match target {
        PauseTarget::Customer { customer, hold } => (hold, Err(customer.as_str())),
        PauseTarget::Invoice { number, hold } => (hold, Ok(number.as_str())),
    };
    let today = today(settings);
    let until = app::parse_date("--until", &args.until)?;
    if until < today {
        return Err(UsageError(format!(
            "--until {until} is before today ({today}): give the last day reminders should be held"
        ))
        .into());
    }
    if until > holds::max_until(today) {
        return Err(UsageError(format!(
            "--until {until} is more than a year away: for a customer who should never be reminded use `dunning-schedule optout customer … --channel all`"
        ))
        .into());
    }
    let reason = args.reason.trim();
    if reason.is_empty() {
        return Err(UsageError(
            "--reason is empty: say why, e.g. --reason \"janji bayar ke CS\"".into(),
        )
        .into());
    }
    let mut conn = app::connect_migrated(settings)?;
    match what {
        Ok(number) => {
            let inv = invoice(&mut conn, number)?;
            holds::pause(&mut conn, Target::Invoice(inv.id), today, until, reason, BY)?;
            println!(
                "invoice {}: reminders held through {until} ({reason})",
                inv.number
            );
        }
        Err(key) => {
            for c in customers(&mut conn, key)? {
                holds::pause(&mut conn, Target::Customer(c.id), today, until, reason, BY)?;
                println!("{}: reminders held through {until} ({reason})", label(&c));
            }
        }
    }
    Ok(())
}

/// `unpause customer|invoice …`.
pub fn unpause(settings: &Settings, target: &HoldTarget) -> anyhow::Result<()> {
    let today = today(settings);
    let mut conn = app::connect_migrated(settings)?;
    let ended = |n: usize| {
        if n == 0 {
            "was not paused".to_owned()
        } else {
            format!("{n} pause(s) ended; the next scheduler run queues what is due")
        }
    };
    match target {
        HoldTarget::Invoice { number } => {
            let inv = invoice(&mut conn, number)?;
            let n = holds::unpause(&mut conn, Target::Invoice(inv.id), today)?;
            println!("invoice {}: {}", inv.number, ended(n));
        }
        HoldTarget::Customer { customer } => {
            for c in customers(&mut conn, customer)? {
                let n = holds::unpause(&mut conn, Target::Customer(c.id), today)?;
                println!("{}: {}", label(&c), ended(n));
            }
        }
    }
    Ok(())
}

fn channels(name: &str) -> Vec<Channel> {
    match name {
        "all" => Channel::ALL.to_vec(),
        "email" => vec![Channel::Email],
        _ => vec![Channel::WhatsApp],
    }
}

/// `optout customer … --channel whatsapp|email|all` (`opt_in` false) and `optin …`.
pub fn opt(settings: &Settings, target: &OptTarget, opt_in: bool) -> anyhow::Result<()> {
    let OptTarget::Customer { customer, channel } = target;
    let mut conn = app::connect_migrated(settings)?;
    for c in customers(&mut conn, customer)? {
        for ch in channels(channel) {
            let changed = if opt_in {
                holds::opt_in(&mut conn, c.id, ch)?
            } else {
                holds::opt_out(
                    &mut conn,
                    c.id,
                    ch,
                    "operator (dunning-schedule optout)",
                    BY,
                )?
            };
            let what = match (opt_in, changed) {
                (false, true) => "opted out: no more reminders",
                (false, false) => "was already opted out",
                (true, true) => "opted in: reminders resume",
                (true, false) => "was not opted out",
            };
            println!("{}: {ch} {what}", label(&c));
        }
    }
    Ok(())
}

/// The start of a listing: with `json_out` prints `rows` as a JSON array (each row
/// by `to_json`), else with no rows prints `none`. True: the listing is complete.
fn listed<T>(
    rows: &[T],
    json_out: bool,
    none: &str,
    to_json: impl Fn(&T) -> serde_json::Value,
) -> anyhow::Result<bool> {
    if json_out {
        let v: Vec<_> = rows.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(true);
    }
    if rows.is_empty() {
        println!("{none}");
        return Ok(true);
    }
    Ok(false)
}

/// `pauses`: what is held now.
pub fn list(settings: &Settings, json_out: bool) -> anyhow::Result<()> {
    let today = today(settings);
    let mut conn = app::connect_migrated(settings)?;
    let rows = holds::current(&mut conn, today)?;
    let none = "No pauses or opt-outs: every unpaid invoice is reminded.";
    let listed = listed(&rows, json_out, none, |r| {
        json!({
            "kind": r.kind, "target": r.target, "channel": r.channel,
            "until": r.until.map(|d| d.to_string()), "reason": r.reason,
            "created_by": r.created_by, "created_at": r.created_at.to_string(),
        })
    })?;
    if listed {
        return Ok(());
    }
    for r in &rows {
        let when = match (r.kind.as_str(), r.until) {
            ("pause", Some(u)) if u < today => format!("ended {u}"),
            ("pause", Some(u)) => format!("held through {u}"),
            _ => format!("opted out of {}", r.channel),
        };
        println!("{}: {when} — {} (by {})", r.target, r.reason, r.created_by);
    }
    Ok(())
}

/// `replies [--done ID…]`: flagged replies nobody answered yet.
pub fn replies(settings: &Settings, done: &[i64], json_out: bool) -> anyhow::Result<()> {
    let mut conn = app::connect_migrated(settings)?;
    if !done.is_empty() {
        let n = inbound::mark_handled(&mut conn, done, BY)?;
        println!("{n} of {} reply(ies) marked answered", done.len());
        return Ok(());
    }
    let rows = dunning_store::ops::replies::open(&mut conn)?;
    let listed = listed(&rows, json_out, "No replies waiting for an answer.", |r| {
        json!({
            "id": r.id, "sender": r.sender, "customer": r.customer,
            "message": r.message, "intent": r.intent,
            "received_at": r.received_at.to_string(),
        })
    })?;
    if listed {
        return Ok(());
    }
    let local = |t: OffsetDateTime| settings.zone.local(t);
    for r in &rows {
        let t = local(r.received_at);
        println!(
            "#{} {:04}-{:02}-{:02} {:02}:{:02} {} ({}) [{}]: {}",
            r.id,
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            r.sender,
            r.customer.as_deref().unwrap_or("not a customer"),
            r.intent,
            r.message.chars().take(300).collect::<String>()
        );
    }
    println!("\nAnswer them from the WhatsApp device, then: dunning-schedule replies --done <id>…");
    Ok(())
}

/// `stats`: what pauses and opt-outs hold today, and why (empty when nothing is held).
pub(super) fn held_text(h: &holds::HeldCounts, m: crate::output::Marks) -> String {
    if *h == holds::HeldCounts::default() {
        return String::new();
    }
    format!(
        "{} Held: {} unpaid invoice(s) paused today; opted out: {} customer(s) of WhatsApp, {} of email (`dunning-schedule pauses` lists them)\n",
        m.skip, h.paused_invoices, h.whatsapp_opt_outs, h.email_opt_outs
    )
}

/// `stats --json`: the same as [`held_text`].
pub(super) fn held_json(h: &holds::HeldCounts) -> serde_json::Value {
    json!({
        "paused_invoices": h.paused_invoices,
        "opted_out": { "whatsapp": h.whatsapp_opt_outs, "email": h.email_opt_outs },
    })
}
