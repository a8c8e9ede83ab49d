//! The pages. Every number comes from the same `dunning_store::ops` functions the
//! CLI prints (`stats`, `failed`, `doctor`, `retry`, `resume`); handlers only
//! arrange them.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use dunning_core::config::WhatsAppDriver;
use dunning_core::mask::{mask_ledger_recipient, mask_recipient};
use dunning_core::{Channel, Stage};
use dunning_store::ops::failed::{self, Filter, Selection};
use dunning_store::ops::health::{self, MISSED_WINDOW_DAYS, STUCK_AFTER_SECS};
use dunning_store::ops::search::{self, Scope};
use dunning_store::ops::{audit, history, stats};
use dunning_store::{queue, scheduling};
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::{Date, Duration, OffsetDateTime};

use crate::auth::{Act, User};
use crate::view::{duration, render, when};
use crate::{AppError, DashboardState, chart};

const CHANNELS: [&str; 2] = ["email", "whatsapp"];
/// The ledger's channel of an escalation hook's run (`dunning_store::hooks`).
const HOOK: &str = dunning_store::hooks::HOOK_CHANNEL;
const STATUSES: [&str; 4] = ["queued", "sent", "failed", "skipped"];
/// A worker silent this long counts as dead (doctor's default `--heartbeat-max-age`).
const HEARTBEAT_MAX_AGE_SECS: i64 = 120;
/// Rows the failures page shows.
const FAILED_PAGE_ROWS: i64 = 200;
const HISTORY_DAYS: u32 = 30;

/// The channels a page shows: email and WhatsApp always, escalation hooks when they
/// are configured or the rows read have some (an ISP without hooks sees no hook row).
fn channels(state: &DashboardState, hook_rows: bool) -> Vec<&'static str> {
    let mut v = CHANNELS.to_vec();
    if state.options().hooks || hook_rows {
        v.push(HOOK);
    }
    v
}

pub(crate) fn page(
    state: &DashboardState,
    user: &User,
    name: &str,
    active: &str,
    ctx: minijinja::Value,
) -> Result<Response, AppError> {
    let me = context! {
        name => &user.name,
        role => &user.role,
        admin => user.is_admin(),
        csrf => &user.csrf,
    };
    let html = render(
        state,
        name,
        context! { me, active, zone => state.settings().zone.to_string(), ..ctx },
    )?;
    Ok(Html(html).into_response())
}

pub(crate) async fn root(_user: User) -> Redirect {
    Redirect::to("/hari-ini")
}

#[derive(Debug, Deserialize)]
pub(crate) struct TodayQuery {
    dilanjutkan: Option<String>,
    /// The next run's WhatsApp forecast was asked for (a dry scheduler run: the
    /// page's costliest read, so only on request).
    perkiraan: Option<String>,
}

/// "Hari ini": problems first, then today's reminders, queue, quota, pauses, runs,
/// workers; the next run's WhatsApp forecast on request (`?perkiraan=1`).
pub(crate) async fn today(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<TodayQuery>,
) -> Result<Response, AppError> {
    let settings = state.settings().clone();
    let (queue_name, catch_up_days) =
        (state.options().queue.clone(), state.options().catch_up_days);
    let forecast = q.perkiraan.is_some();
    let data = state
        .db(move |c| {
            let now = OffsetDateTime::now_utc();
            let today = settings.zone.date_at(now);
            let offset = settings.zone.offset();
            let last_run = health::last_run(c)?;
            let next_day = next_run_day(last_run.as_ref(), today);
            Ok((
                today,
                stats::by_channel_status(c, today, offset)?,
                stats::queue_health(c)?,
                stats::failed_total(c)?,
                scheduling::whatsapp_sent_this_month(c, today, offset)?,
                health::paused_channels(c)?,
                last_run,
                scheduling::missed_days(c, today, MISSED_WINDOW_DAYS)?,
                health::running_workers(c)?,
                health::last_worker(c)?,
                forecast
                    .then(|| {
                        whatsapp_forecast(c, &settings, next_day, today, &queue_name, catch_up_days)
                    })
                    .transpose()?,
            ))
        })
        .await?;
    let (
        today,
        by_status,
        q_health,
        failed_total,
        wa_sent,
        paused,
        last_run,
        missed,
        running,
        last_worker,
        wa_next_run,
    ) = data;
    let s = state.settings();
    let zone = &s.zone;
    let count = |ch: &str, st: &str| -> i64 {
        by_status
            .iter()
            .filter(|r| r.channel == ch && r.status == st)
            .map(|r| r.total)
            .sum()
    };
    let row = |ch: &str| {
        let counts: Vec<i64> = STATUSES.iter().map(|st| count(ch, st)).collect();
        json!({ "channel": ch, "counts": counts, "total": counts.iter().sum::<i64>() })
    };
    let rows: Vec<Value> = CHANNELS.iter().map(|ch| row(ch)).collect();
    let totals: Vec<i64> = STATUSES
        .iter()
        .map(|st| CHANNELS.iter().map(|ch| count(ch, st)).sum())
        .collect();
    // Hook runs are not messages: their own row, outside the totals.
    let hook = channels(&state, by_status.iter().any(|r| r.channel == HOOK))
        .contains(&HOOK)
        .then(|| row(HOOK));
    let quota = i64::from(s.fonnte_monthly_quota);
    let wa_left = (quota - wa_sent).max(0);
    let alive: Vec<Value> = running
        .iter()
        .filter(|w| w.silent_secs <= HEARTBEAT_MAX_AGE_SECS)
        .map(|w| {
            json!({ "host": w.hostname, "pid": w.pid, "queue": w.queue,
                    "seen": duration(w.silent_secs), "jobs": w.jobs_done })
        })
        .collect();

    // What `doctor` would mark ❌, from the same reads and thresholds.
    let mut problems: Vec<String> = Vec::new();
    match &last_run {
        None => problems.push(
            "Penjadwal belum pernah berjalan: pengingat tidak pernah diantre. Pasang cron 08:00 (lihat panduan, bagian Produksi).".into(),
        ),
        Some(_) if !missed.is_empty() => problems.push(format!(
            "Tidak ada run penjadwal pada {}: periksa cron / Task Scheduler.",
            missed.iter().map(|d| dunning_core::format::tanggal(*d)).collect::<Vec<_>>().join(", ")
        )),
        Some(_) => {}
    }
    if alive.is_empty() {
        let detail = match &last_worker {
            Some(w) if w.stopped_secs.is_some() => format!(
                "worker terakhir (di {}) berhenti dengan normal {} lalu",
                w.hostname,
                duration(w.stopped_secs.unwrap_or_default())
            ),
            Some(w) => format!(
                "detak terakhir {} lalu di {}, tanpa berhenti normal (mati, crash, atau host-nya padam)",
                duration(w.silent_secs),
                w.hostname
            ),
            None => "belum pernah ada worker yang berjalan di database ini".into(),
        };
        problems.push(format!(
            "Tidak ada worker yang hidup ({detail}): pengingat yang diantre tidak terkirim. Jalankan dunning-worker di bawah supervisor atau systemd."
        ));
    }
    if q_health.ready > 0 && q_health.oldest_ready_secs > STUCK_AFTER_SECS {
        problems.push(format!(
            "Antrean tidak bergerak: job siap tertua sudah menunggu {}.",
            duration(q_health.oldest_ready_secs)
        ));
    }
    for p in &paused {
        problems.push(format!(
            "Kanal {} dijeda sampai {}: {}",
            p.channel,
            when(zone, p.paused_until),
            p.pause_reason.as_deref().unwrap_or("tanpa alasan tercatat")
        ));
    }
    if matches!(s.whatsapp, WhatsAppDriver::Fonnte(_)) && wa_left == 0 {
        problems.push(format!(
            "Kuota WhatsApp bulan ini habis ({wa_sent} dari {quota}, FONNTE_MONTHLY_QUOTA): upgrade paket Fonnte atau tunggu reset bulanan."
        ));
    }
    if let Some(wa_next_run) = wa_next_run
        && matches!(s.whatsapp, WhatsAppDriver::Fonnte(_))
        && wa_left > 0
        && wa_next_run > wa_left
    {
        problems.push(format!(
            "Run berikutnya butuh {wa_next_run} pesan WhatsApp, tetapi kuota bulan ini tinggal {wa_left} (FONNTE_MONTHLY_QUOTA={quota}): sisanya menunggu bulan depan. Upgrade paket Fonnte."
        ));
    }
    let pauses: Vec<Value> = paused
        .iter()
        .map(|p| {
            json!({ "channel": p.channel, "until": when(zone, p.paused_until),
                    "reason": p.pause_reason })
        })
        .collect();
    let last = last_run.as_ref().map(|r| {
        json!({ "run_date": dunning_core::format::tanggal(r.run_date),
                "finished": when(zone, r.finished_at), "host": r.host,
                "dispatched": r.dispatched, "skipped": r.skipped })
    });
    let next_day = next_run_day(last_run.as_ref(), today);
    page(
        &state,
        &user,
        "today.html",
        "hari-ini",
        context! {
            today => dunning_core::format::tanggal(today),
            statuses => STATUSES,
            rows, totals, hook, problems, pauses, last, alive,
            next_run => dunning_core::format::tanggal(next_day),
            queue => json!({ "waiting": q_health.waiting, "ready": q_health.ready,
                "reserved": q_health.reserved,
                "oldest": (q_health.ready > 0).then(|| duration(q_health.oldest_ready_secs)) }),
            failed_total,
            wa => json!({ "sent": wa_sent, "quota": quota, "left": wa_left,
                "next_run": wa_next_run,
                "short": wa_next_run.map_or(0, |n| (n - wa_left).max(0)) }),
            resumed => q.dilanjutkan,
        },
    )
}

/// The day of the next scheduler run: today until today's run is done, then tomorrow.
fn next_run_day(last_run: Option<&health::LastRun>, today: Date) -> Date {
    if last_run.is_some_and(|r| r.run_date >= today) {
        today + Duration::days(1)
    } else {
        today
    }
}

/// The WhatsApp messages the next scheduler run would queue: the scheduler itself,
/// run dry (everything done, then rolled back), as `dunning-schedule --dry-run`
/// reports "this run uses N" against the quota left.
fn whatsapp_forecast(
    c: &mut diesel::PgConnection,
    settings: &dunning_core::Settings,
    run_date: Date,
    today: Date,
    queue: &str,
    catch_up_days: u32,
) -> Result<i64, dunning_store::StoreError> {
    let report = scheduling::schedule(
        c,
        &scheduling::Request {
            run_date,
            stages: &settings.stages,
            // Only today's run catches up (as for `dunning-schedule --date`).
            catch_up_days: if run_date == today { catch_up_days } else { 0 },
            queue,
            dry_run: true,
            lines: false,
            host: "dunning-web (forecast)",
            backfill: run_date != today,
            group: settings.group,
        },
    )?;
    // Messages, not invoices (DUNNING_GROUP=customer: one per customer).
    Ok(report.messages.whatsapp)
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResumeForm {
    csrf: Option<String>,
    channel: String,
}

/// "Lanjutkan": ends a channel's pause, as `dunning-schedule resume CHANNEL`.
pub(crate) async fn resume(
    Act { state, user, form }: Act<ResumeForm>,
) -> Result<Response, AppError> {
    let channel: Channel = form
        .channel
        .parse()
        .map_err(|_| AppError::bad_request("Kanal tidak dikenal: pilih email atau whatsapp."))?;
    state
        .audited(&user, "lanjutkan kanal", move |c| {
            let detail = match queue::resume_channel(c, channel)? {
                Some(r) => format!(
                    "{channel} (dijeda karena: {}); {} pesan tertahan siap dikirim",
                    r.reason, r.released
                ),
                None => format!("{channel} (tidak sedang dijeda)"),
            };
            Ok(((), detail))
        })
        .await?;
    Ok(Redirect::to(&format!("/hari-ini?dilanjutkan={channel}")).into_response())
}

/// The filter of the failures page, as typed (empty fields mean "any").
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(crate) struct FailedQuery {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    reason: String,
}

/// What the failures page reports after a retry.
#[derive(Debug, Deserialize)]
pub(crate) struct RetriedQuery {
    diulang: Option<i64>,
}

/// The typed filter: owned values a blocking task can take.
#[derive(Debug, Clone, Default)]
struct OwnedFilter {
    channel: Option<String>,
    stage: Option<String>,
    run_date: Option<Date>,
    reason: Option<String>,
}

impl OwnedFilter {
    fn parse(q: &FailedQuery) -> Result<OwnedFilter, AppError> {
        let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let channel = some(&q.channel);
        if let Some(c) = &channel
            && c != HOOK
        {
            c.parse::<Channel>().map_err(|_| {
                AppError::bad_request("Kanal tidak dikenal: pilih email, whatsapp atau hook.")
            })?;
        }
        let stage = some(&q.stage);
        if let Some(s) = &stage {
            s.parse::<Stage>().map_err(|_| {
                AppError::bad_request("Tahap tidak dikenal: tulis seperti T-7, T-3, T-1 atau T+3.")
            })?;
        }
        let run_date = some(&q.date)
            .map(|d| {
                Date::parse(
                    &d,
                    time::macros::format_description!("[year]-[month]-[day]"),
                )
                .map_err(|_| {
                    AppError::bad_request(
                        "Tanggal tidak valid: tulis YYYY-MM-DD, misalnya 2026-12-01.",
                    )
                })
            })
            .transpose()?;
        Ok(OwnedFilter {
            channel,
            stage,
            run_date,
            reason: some(&q.reason),
        })
    }

    fn as_filter(&self) -> Filter<'_> {
        Filter {
            since: None,
            channel: self.channel.as_deref(),
            stage: self.stage.as_deref(),
            run_date: self.run_date,
            reason: self.reason.as_deref(),
        }
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = &self.channel {
            parts.push(format!("kanal {c}"));
        }
        if let Some(s) = &self.stage {
            parts.push(format!("tahap {s}"));
        }
        if let Some(d) = self.run_date {
            parts.push(format!("tanggal {d}"));
        }
        if let Some(r) = &self.reason {
            parts.push(format!("alasan berisi \"{r}\""));
        }
        if parts.is_empty() {
            "semua".into()
        } else {
            parts.join(", ")
        }
    }
}

/// "Gagal": failed deliveries, filtered, with "Kirim ulang" for one or all matching.
pub(crate) async fn failed(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<FailedQuery>,
    Query(flash): Query<RetriedQuery>,
) -> Result<Response, AppError> {
    let filter = OwnedFilter::parse(&q)?;
    let f = filter.clone();
    let rows = state
        .db(move |c| failed::list_matching(c, &f.as_filter(), Some(FAILED_PAGE_ROWS + 1)))
        .await?;
    let more = rows.len() > usize::try_from(FAILED_PAGE_ROWS).unwrap_or(usize::MAX);
    let zone = &state.settings().zone;
    let items: Vec<Value> = rows
        .iter()
        .take(usize::try_from(FAILED_PAGE_ROWS).unwrap_or(usize::MAX))
        .map(|r| {
            json!({ "id": r.id, "invoice": r.invoice_number, "customer": r.customer_name,
                    "stage": r.stage, "channel": r.channel, "run_date": r.run_date.to_string(),
                    "recipient": r.recipient.as_deref()
                        .map_or_else(|| "-".to_owned(), |to| mask_ledger_recipient(&r.channel, to)),
                    "attempts": r.attempts, "error": r.error, "failed_at": when(zone, r.failed_at) })
        })
        .collect();
    let stages: Vec<String> = state
        .settings()
        .stages
        .iter()
        .map(ToString::to_string)
        .collect();
    let hook_rows = q.channel.trim() == HOOK || rows.iter().any(|r| r.channel == HOOK);
    page(
        &state,
        &user,
        "failed.html",
        "gagal",
        context! { items, more, filter => &q, stages, channels => channels(&state, hook_rows),
        retried => flash.diulang, limit => FAILED_PAGE_ROWS },
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct RetryOneForm {
    csrf: Option<String>,
    id: i64,
}

/// Puts one failed delivery back on the queue (`dunning-schedule retry ID`).
pub(crate) async fn retry_one(
    Act { state, user, form }: Act<RetryOneForm>,
) -> Result<Response, AppError> {
    let (id, queue) = (form.id, state.options().queue.clone());
    let n = state
        .audited(&user, "kirim ulang", move |c| {
            let done = failed::retry(c, Selection::Ids(&[id]), None, &queue)?;
            let detail = if done.is_empty() {
                format!("notifikasi {id}: tidak berstatus gagal, tidak diubah")
            } else {
                format!("notifikasi {id} ({}) ke antrean {queue}", done[0].channel)
            };
            Ok((done.len(), detail))
        })
        .await?;
    Ok(Redirect::to(&format!("/gagal?diulang={n}")).into_response())
}

/// The confirmation before retrying every delivery that matches the filter.
pub(crate) async fn retry_all_confirm(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<FailedQuery>,
) -> Result<Response, AppError> {
    let filter = OwnedFilter::parse(&q)?;
    let f = filter.clone();
    let ids = state
        .db(move |c| failed::ids_matching(c, &f.as_filter()))
        .await?;
    page(
        &state,
        &user,
        "confirm.html",
        "gagal",
        context! { count => ids.len(), filter => &q, described => filter.describe() },
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct RetryAllForm {
    csrf: Option<String>,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    reason: String,
}

/// Retries every failed delivery that matches the filter (`retry` with those ids).
pub(crate) async fn retry_all(
    Act { state, user, form }: Act<RetryAllForm>,
) -> Result<Response, AppError> {
    let filter = OwnedFilter::parse(&FailedQuery {
        channel: form.channel,
        stage: form.stage,
        date: form.date,
        reason: form.reason,
    })?;
    let queue = state.options().queue.clone();
    let n = state
        .audited(&user, "kirim ulang semua", move |c| {
            let ids = failed::ids_matching(c, &filter.as_filter())?;
            let done = failed::retry(c, Selection::Ids(&ids), None, &queue)?;
            let detail = format!(
                "{} pengiriman ({}) ke antrean {queue}",
                done.len(),
                filter.describe()
            );
            Ok((done.len(), detail))
        })
        .await?;
    Ok(Redirect::to(&format!("/gagal?diulang={n}")).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
}

fn invoice_json(state: &DashboardState, r: &search::InvoiceRow) -> Value {
    let zone = &state.settings().zone;
    json!({ "id": r.id, "number": r.number, "amount": r.amount,
            "due_date": dunning_core::format::tanggal(r.due_date), "status": r.status,
            "paid_at": r.paid_at.map(|t| when(zone, t)),
            "customer_id": r.customer.id, "customer": r.customer.name,
            "email": r.customer.email.as_deref().map(mask_recipient),
            "phone": r.customer.phone.as_deref().map(mask_recipient) })
}

/// "Cari": invoices by number, customer name, phone or email.
pub(crate) async fn search(
    State(state): State<DashboardState>,
    user: User,
    Query(q): Query<SearchQuery>,
) -> Result<Response, AppError> {
    let query = q.q.trim().chars().take(200).collect::<String>();
    let text = query.clone();
    let rows = state.db(move |c| search::search(c, &text, 50)).await?;
    let items: Vec<Value> = rows.iter().map(|r| invoice_json(&state, r)).collect();
    page(
        &state,
        &user,
        "search.html",
        "cari",
        context! { q => query, items },
    )
}

fn events_json(state: &DashboardState, events: &[search::Event]) -> Vec<Value> {
    let zone = &state.settings().zone;
    events
        .iter()
        .map(|e| {
            let hook = e.channel.as_deref() == Some(HOOK);
            let what = match e.kind.as_str() {
                "invoice" => "Tagihan tercatat",
                "queued" if hook => "Aksi diantre",
                "sent" if hook => "Aksi dijalankan",
                "queued" => "Pengingat diantre",
                "waiting" => "Menunggu di antrean",
                "sent" => "Terkirim",
                "failed" => "Gagal",
                "skipped" => "Dilewati",
                "paid" => "Lunas",
                other => other,
            };
            json!({ "at": when(zone, e.at), "invoice": e.invoice_number, "kind": e.kind,
                    "what": what, "stage": e.stage, "channel": e.channel,
                    "recipient": e.recipient.as_deref()
                        .map(|to| mask_ledger_recipient(e.channel.as_deref().unwrap_or_default(), to)),
                    "detail": e.detail, "attempts": e.attempts })
        })
        .collect()
}

/// One invoice's timeline.
pub(crate) async fn invoice(
    State(state): State<DashboardState>,
    user: User,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let (row, events) = state
        .db(move |c| {
            let row = search::invoice_by_id(c, id)?;
            let events = match row {
                Some(_) => search::timeline(c, Scope::Invoice(id))?,
                None => Vec::new(),
            };
            Ok((row, events))
        })
        .await?;
    let Some(row) = row else {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "Tagihan ini tidak ada.",
        ));
    };
    page(
        &state,
        &user,
        "invoice.html",
        "cari",
        context! { inv => invoice_json(&state, &row), events => events_json(&state, &events) },
    )
}

/// One customer's invoices and timeline.
pub(crate) async fn customer(
    State(state): State<DashboardState>,
    user: User,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    let (rows, events) = state
        .db(move |c| {
            Ok((
                search::customer_invoices(c, id)?,
                search::timeline(c, Scope::Customer(id))?,
            ))
        })
        .await?;
    let Some(first) = rows.first() else {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "Pelanggan ini tidak punya tagihan.",
        ));
    };
    let first = invoice_json(&state, first);
    page(
        &state,
        &user,
        "customer.html",
        "cari",
        context! {
            customer => first,
            invoices => rows.iter().map(|r| invoice_json(&state, r)).collect::<Vec<_>>(),
            events => events_json(&state, &events),
        },
    )
}

/// "Riwayat": 30 days per channel and status as charts, and recovery by stage.
pub(crate) async fn history(
    State(state): State<DashboardState>,
    user: User,
) -> Result<Response, AppError> {
    let zone = state.settings().zone.clone();
    let today = zone.date_at(OffsetDateTime::now_utc());
    let offset = zone.offset();
    // Two independent reads, each a whole index range (scripts/bench section 7): on
    // two pooled connections at once, the page waits for the slower one only.
    let (rows, recovery) = tokio::try_join!(
        state.db(move |c| history::by_day_channel_status(c, today, HISTORY_DAYS, offset)),
        state.db(move |c| history::recovery_by_stage(c, today, HISTORY_DAYS, offset)),
    )?;
    let days: Vec<Date> = (0..HISTORY_DAYS)
        .rev()
        .map(|i| today - Duration::days(i64::from(i)))
        .collect();
    let charts: Vec<Value> = channels(&state, rows.iter().any(|r| r.count.channel == HOOK))
        .iter()
        .map(|ch| {
            let c = chart::stacked(&days, |d, st| {
                rows.iter()
                    .filter(|r| r.day == d && r.count.channel == *ch && r.count.status == st)
                    .map(|r| r.count.total)
                    .sum()
            });
            json!({ "channel": ch, "chart": c })
        })
        .collect();
    let legend: Vec<Value> = chart::STATUSES
        .iter()
        .map(|(_, fill, label)| json!({ "fill": fill, "label": label }))
        .collect();
    let recovery: Vec<Value> = recovery
        .iter()
        .map(|r| {
            let pct = if r.reminded > 0 {
                r.paid * 100 / r.reminded
            } else {
                0
            };
            json!({ "stage": r.stage, "reminded": r.reminded, "paid": r.paid,
                    "amount": r.paid_amount, "pct": pct })
        })
        .collect();
    page(
        &state,
        &user,
        "history.html",
        "riwayat",
        context! { charts, legend, recovery, days => HISTORY_DAYS,
        recovery_days => history::RECOVERY_DAYS,
        first => dunning_core::format::tanggal(days[0]),
        last => dunning_core::format::tanggal(today) },
    )
}

/// "Audit": who did what, when.
pub(crate) async fn audit(
    State(state): State<DashboardState>,
    user: User,
) -> Result<Response, AppError> {
    let entries = state.db(|c| audit::recent(c, 500)).await?;
    let zone = &state.settings().zone;
    let items: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({ "at": when(zone, e.at), "actor": e.actor, "action": e.action,
                    "detail": e.detail, "ip": e.ip })
        })
        .collect();
    page(&state, &user, "audit.html", "audit", context! { items })
}

crate::auth::posted!(ResumeForm, RetryAllForm, RetryOneForm);
