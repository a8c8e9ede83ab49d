//! "Balasan" (customers' WhatsApp replies) and "Jeda" (pauses and opt-outs): the
//! same `dunning_store` functions as `dunning-schedule replies`, `pauses`, `pause`,
//! `unpause`, `optout` and `optin`.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use dunning_core::Channel;
use dunning_core::mask::mask_recipient;
use dunning_store::holds::{self, Target};
use dunning_store::inbound;
use dunning_store::ops::{audit, replies};
use minijinja::context;
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Date, OffsetDateTime};

use crate::auth::{Act, User};
use crate::pages::page;
use crate::view::when;
use crate::{AppError, DashboardState};

/// Handled and unflagged replies shown below the open ones.
const REPLIES_PAGE_ROWS: i64 = 200;
/// The longest reason kept for a pause or an opt-out typed in the dashboard.
const MAX_REASON_CHARS: usize = 500;

/// Who acted, in `created_by` / `handled_by` (the CLI writes `cli`).
fn by(login: &str) -> String {
    format!("web:{login}")
}

fn intent_label(intent: &str) -> &str {
    match intent {
        "opt_out" => "berhenti (STOP)",
        "opt_in" => "mulai lagi",
        "paid_claim" => "mengaku sudah bayar",
        "promise" => "janji bayar",
        "promise_unclear" => "janji bayar (tanggal tidak jelas)",
        "other" => "lainnya",
        other => other,
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RepliesQuery {
    ditangani: Option<i64>,
}

/// "Balasan": replies that need an answer first (as `dunning-schedule replies`),
/// then the latest others.
pub(crate) async fn replies(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<RepliesQuery>,
) -> Result<Response, AppError> {
    let rows = state.db(|c| replies::listing(c, REPLIES_PAGE_ROWS)).await?;
    let zone = &state.settings().zone;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({ "id": r.id, "sender": mask_recipient(&r.sender),
                    "sender_name": r.sender_name, "customer": r.customer,
                    "customer_id": r.customer_id, "message": r.message,
                    "intent": intent_label(&r.intent), "flagged": r.flagged,
                    "open": r.flagged && r.handled_at.is_none(),
                    "received": when(zone, r.received_at),
                    "handled": r.handled_at.map(|t| when(zone, t)),
                    "handled_by": r.handled_by })
        })
        .collect();
    let open = rows
        .iter()
        .filter(|r| r.flagged && r.handled_at.is_none())
        .count();
    page(
        &state,
        &user,
        "replies.html",
        "balasan",
        context! { items, open, handled => q.ditangani },
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct HandledForm {
    csrf: Option<String>,
    id: i64,
}

/// "Tandai sudah ditangani": `dunning-schedule replies --done ID`, audited.
pub(crate) async fn mark_handled(
    Act { state, user, form }: Act<HandledForm>,
) -> Result<Response, AppError> {
    let (handled_by, id) = (by(&user.name), form.id);
    let n = state
        .audited(&user, "tandai balasan ditangani", move |c| {
            let n = inbound::mark_handled(c, &[id], &handled_by)?;
            let detail = if n == 0 {
                format!("balasan {id}: sudah ditangani atau tidak ada, tidak diubah")
            } else {
                format!("balasan {id}")
            };
            Ok((n, detail))
        })
        .await?;
    Ok(Redirect::to(&format!("/balasan?ditangani={n}")).into_response())
}

fn today(state: &DashboardState) -> Date {
    state.settings().zone.date_at(OffsetDateTime::now_utc())
}

/// `customer X (name)` / `invoice N` of `holds::current`, in Indonesian.
fn target_label(target: &str) -> String {
    if let Some(rest) = target.strip_prefix("customer ") {
        format!("pelanggan {rest}")
    } else if let Some(rest) = target.strip_prefix("invoice ") {
        format!("tagihan {rest}")
    } else {
        target.to_owned()
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct HoldsQuery {
    ok: Option<String>,
}

/// "Jeda": pauses in force and opt-outs (as `dunning-schedule pauses`), with forms
/// to add a pause or an opt-out, and buttons to end a pause or opt a customer in.
pub(crate) async fn holds_page(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<HoldsQuery>,
) -> Result<Response, AppError> {
    let today = today(&state);
    let rows = state.db(move |c| holds::current(c, today)).await?;
    let zone = &state.settings().zone;
    let item = |r: &holds::HoldListing| {
        json!({ "target": target_label(&r.target), "channel": r.channel,
                "until": r.until.map(dunning_core::format::tanggal),
                "reason": r.reason, "by": r.created_by, "at": when(zone, r.created_at),
                "customer_id": r.customer_id, "invoice_id": r.invoice_id })
    };
    let pauses: Vec<Value> = rows
        .iter()
        .filter(|r| r.kind == "pause")
        .map(item)
        .collect();
    let opt_outs: Vec<Value> = rows
        .iter()
        .filter(|r| r.kind != "pause")
        .map(item)
        .collect();
    let done = q.ok.as_deref().and_then(|ok| {
        let (kind, n) = ok.split_once('-')?;
        let n: usize = n.parse().ok()?;
        Some(match kind {
            "jeda" => format!("{n} jeda ditambahkan."),
            "akhiri" => {
                format!("{n} jeda diakhiri; run penjadwal berikutnya mengantre yang jatuh tempo.")
            }
            "optout" => format!("{n} kanal dihentikan."),
            "optin" => format!("{n} kanal dikirimi lagi."),
            _ => return None,
        })
    });
    page(
        &state,
        &user,
        "holds.html",
        "jeda",
        context! { pauses, opt_outs, done,
        today => today.to_string(), max_until => holds::max_until(today).to_string() },
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct PauseForm {
    csrf: Option<String>,
    /// `pelanggan` or `tagihan`.
    #[serde(default)]
    kind: String,
    /// The customer's external id or phone number, or the invoice number.
    #[serde(default)]
    key: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    reason: String,
}

fn reason(text: &str) -> Result<String, AppError> {
    let r = text.trim();
    if r.is_empty() {
        return Err(AppError::bad_request(
            "Alasan kosong: tulis alasannya, misalnya \"janji bayar ke CS\".",
        ));
    }
    if r.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::bad_request(format!(
            "Alasan terlalu panjang: paling banyak {MAX_REASON_CHARS} karakter."
        )));
    }
    Ok(r.to_owned())
}

/// The customers a key names (external id, else phone number), as the CLI finds them.
fn customers(c: &mut diesel::PgConnection, key: &str) -> Result<Vec<holds::CustomerRef>, AppError> {
    let found = holds::find_customers(c, key)?;
    if found.is_empty() {
        return Err(AppError::bad_request(
            "Tidak ada pelanggan dengan ID pelanggan atau nomor telepon itu: periksa di aplikasi billing.",
        ));
    }
    Ok(found)
}

fn customer_label(c: &holds::CustomerRef) -> String {
    match &c.external_id {
        Some(x) => format!("pelanggan {x} ({})", c.name),
        None => format!("pelanggan #{} ({})", c.id, c.name),
    }
}

/// Runs `f` in a transaction on a pooled connection; an `AppError` (a refusal for
/// the operator) rolls it back and is shown as it is.
async fn act<T, F>(state: &DashboardState, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut diesel::PgConnection) -> Result<T, AppError> + Send + 'static,
{
    state
        .db(move |c| Ok(diesel::Connection::transaction::<_, AppError, _>(c, f)))
        .await?
}

/// "Tambah jeda": `dunning-schedule pause customer|invoice … --until --reason`.
pub(crate) async fn add_pause(
    Act { state, user, form }: Act<PauseForm>,
) -> Result<Response, AppError> {
    let today = today(&state);
    let until = Date::parse(
        form.until.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| {
        AppError::bad_request(
            "Tanggal 'sampai' tidak valid: tulis YYYY-MM-DD, misalnya 2026-12-31.",
        )
    })?;
    if until < today {
        return Err(AppError::bad_request(format!(
            "Tanggal 'sampai' ({until}) sudah lewat: isi hari terakhir pengingat ditahan, paling awal hari ini ({today})."
        )));
    }
    if until > holds::max_until(today) {
        return Err(AppError::bad_request(
            "Tanggal 'sampai' lebih dari setahun lagi: untuk pelanggan yang tidak boleh diingatkan lagi, pakai \"Berhenti kirim\" (opt-out).",
        ));
    }
    let why = reason(&form.reason)?;
    let key = form.key.trim().to_owned();
    if key.is_empty() {
        return Err(AppError::bad_request(
            "Isi ID pelanggan, nomor telepon, atau nomor tagihan yang dijeda.",
        ));
    }
    let invoice = match form.kind.as_str() {
        "tagihan" => true,
        "pelanggan" => false,
        _ => {
            return Err(AppError::bad_request(
                "Pilih yang dijeda: pelanggan atau tagihan.",
            ));
        }
    };
    let (name, ip) = (user.name.clone(), user.client.ip.clone());
    let done = act(&state, move |c| {
        let mut labels = Vec::new();
        if invoice {
            let inv = holds::find_invoice(c, &key)?.ok_or_else(|| {
                AppError::bad_request(
                    "Tidak ada tagihan dengan nomor itu: periksa ejaannya, misalnya INV-20251115-123456.",
                )
            })?;
            holds::pause(c, Target::Invoice(inv.id), today, until, &why, &by(&name))?;
            labels.push(format!("tagihan {}", inv.number));
        } else {
            for cust in customers(c, &key)? {
                holds::pause(c, Target::Customer(cust.id), today, until, &why, &by(&name))?;
                labels.push(customer_label(&cust));
            }
        }
        let detail = format!("{} sampai {until}: {why}", labels.join(", "));
        audit::record(c, &name, "tambah jeda", &detail, Some(&ip))?;
        Ok(labels.len())
    })
    .await?;
    Ok(Redirect::to(&format!("/jeda?ok=jeda-{done}")).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct EndPauseForm {
    csrf: Option<String>,
    customer_id: Option<i64>,
    invoice_id: Option<i64>,
}

/// "Akhiri": `dunning-schedule unpause customer|invoice …`.
pub(crate) async fn end_pause(
    Act { state, user, form }: Act<EndPauseForm>,
) -> Result<Response, AppError> {
    let target = match (form.invoice_id, form.customer_id) {
        (Some(i), _) => Target::Invoice(i),
        (None, Some(c)) => Target::Customer(c),
        (None, None) => {
            return Err(AppError::bad_request(
                "Jeda mana yang diakhiri? Muat ulang halaman Jeda lalu klik Akhiri di barisnya.",
            ));
        }
    };
    let today = today(&state);
    let (name, ip) = (user.name.clone(), user.client.ip.clone());
    let n = act(&state, move |c| {
        let n = holds::unpause(c, target, today)?;
        let what = match target {
            Target::Invoice(i) => format!("tagihan id {i}"),
            Target::Customer(c) => format!("pelanggan id {c}"),
        };
        audit::record(
            c,
            &name,
            "akhiri jeda",
            &format!("{what}: {n} jeda berakhir"),
            Some(&ip),
        )?;
        Ok(n)
    })
    .await?;
    Ok(Redirect::to(&format!("/jeda?ok=akhiri-{n}")).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct OptForm {
    csrf: Option<String>,
    /// For an opt-out: the customer's external id or phone number.
    #[serde(default)]
    key: String,
    /// For an opt-in: the customer's id from the list.
    customer_id: Option<i64>,
    /// `whatsapp`, `email` or (opt-out only) `all`.
    #[serde(default)]
    channel: String,
    #[serde(default)]
    reason: String,
}

fn opt_channels(name: &str, all_allowed: bool) -> Result<Vec<Channel>, AppError> {
    match name {
        "all" if all_allowed => Ok(Channel::ALL.to_vec()),
        other => other.parse::<Channel>().map(|c| vec![c]).map_err(|_| {
            AppError::bad_request("Kanal tidak dikenal: pilih whatsapp, email atau semua.")
        }),
    }
}

/// "Berhenti kirim": `dunning-schedule optout customer … --channel …`.
pub(crate) async fn opt_out(Act { state, user, form }: Act<OptForm>) -> Result<Response, AppError> {
    let channels = opt_channels(&form.channel, true)?;
    let why = reason(&form.reason)?;
    let key = form.key.trim().to_owned();
    if key.is_empty() {
        return Err(AppError::bad_request(
            "Isi ID pelanggan atau nomor telepon pelanggan yang berhenti dikirimi.",
        ));
    }
    let (name, ip) = (user.name.clone(), user.client.ip.clone());
    let n = act(&state, move |c| {
        let mut n = 0;
        for cust in customers(c, &key)? {
            for ch in &channels {
                if holds::opt_out(c, cust.id, *ch, &why, &by(&name))? {
                    n += 1;
                    audit::record(
                        c,
                        &name,
                        "berhenti kirim",
                        &format!("{} kanal {ch}: {why}", customer_label(&cust)),
                        Some(&ip),
                    )?;
                }
            }
        }
        Ok(n)
    })
    .await?;
    Ok(Redirect::to(&format!("/jeda?ok=optout-{n}")).into_response())
}

/// "Kirim lagi": `dunning-schedule optin customer … --channel …`.
pub(crate) async fn opt_in(Act { state, user, form }: Act<OptForm>) -> Result<Response, AppError> {
    let channels = opt_channels(&form.channel, false)?;
    let Some(customer) = form.customer_id else {
        return Err(AppError::bad_request(
            "Pelanggan mana? Muat ulang halaman Jeda lalu klik Kirim lagi di barisnya.",
        ));
    };
    let (name, ip) = (user.name.clone(), user.client.ip.clone());
    let n = act(&state, move |c| {
        let mut n = 0;
        for ch in channels {
            if holds::opt_in(c, customer, ch)? {
                n += 1;
                audit::record(
                    c,
                    &name,
                    "kirim lagi",
                    &format!("pelanggan id {customer} kanal {ch}"),
                    Some(&ip),
                )?;
            }
        }
        Ok(n)
    })
    .await?;
    Ok(Redirect::to(&format!("/jeda?ok=optin-{n}")).into_response())
}

crate::auth::posted!(EndPauseForm, HandledForm, OptForm, PauseForm);
