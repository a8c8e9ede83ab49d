//! `dunning-schedule import --customers customers.csv --invoices invoices.csv`.
//!
//! Every row of both files is checked before anything is written; every bad row is
//! reported with its line number and reason. With any bad row nothing is written
//! (unless `--skip-invalid`), otherwise both files are upserted in one transaction,
//! so an import is all or nothing. Upserts are batched and idempotent: importing
//! the same files again changes nothing.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::Path;

use diesel::Connection;
use dunning_core::Settings;
use dunning_core::contact::{normalize_phone, validate_email};
use dunning_store::ops::import::{self, CustomerRow, InvoiceRow};
use dunning_store::ops::mirror;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::{self, UsageError};

/// A bad row: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bad {
    file: String,
    line: u64,
    reason: String,
}

/// Imports the given files.
pub fn run(
    settings: &Settings,
    customers: Option<&Path>,
    invoices: Option<&Path>,
    skip_invalid: bool,
) -> anyhow::Result<()> {
    if customers.is_none() && invoices.is_none() {
        return Err(UsageError(
            "nothing to import: give --customers FILE and/or --invoices FILE (examples in docs/examples/)".into(),
        )
        .into());
    }
    let mut conn = app::connect_migrated(settings)?;
    let mut bad = Vec::new();
    let customer_rows = match customers {
        Some(path) => parse_customers(path, &mut bad)?,
        None => Vec::new(),
    };
    let mut invoice_rows = match invoices {
        Some(path) => parse_invoices(path, &mut bad)?,
        None => Vec::new(),
    };
    if let Some(path) = invoices {
        // Each invoice's customer must exist: in the database or in the customers file.
        let from_file: HashSet<&str> = customer_rows
            .iter()
            .filter_map(|(_, c)| c.external_id.as_deref())
            .collect();
        let wanted: Vec<String> = invoice_rows
            .iter()
            .map(|(_, i)| i.customer_external_id.as_str())
            .filter(|id| !from_file.contains(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let known = import::existing_external_ids(&mut conn, &wanted)?;
        let name = path.display().to_string();
        invoice_rows.retain(|(line, i)| {
            let id = i.customer_external_id.as_str();
            let ok = from_file.contains(id) || known.contains(id);
            if !ok {
                bad.push(Bad {
                    file: name.clone(),
                    line: *line,
                    reason: format!(
                        "unknown customer {id:?}: no customer has this external_id (in the database or in --customers)"
                    ),
                });
            }
            ok
        });
    }
    bad.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    for b in &bad {
        println!("{}:{}: {}", b.file, b.line, b.reason);
    }
    if !bad.is_empty() && !skip_invalid {
        return Err(anyhow::anyhow!(
            "nothing imported: {} bad row(s) listed above; fix them and import again, or add --skip-invalid to import the other rows",
            bad.len()
        ));
    }
    let invoices_name = invoices
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let invoice_lines: HashMap<String, u64> = invoice_rows
        .iter()
        .map(|(line, i)| (i.number.clone(), *line))
        .collect();
    let customers: Vec<CustomerRow> = customer_rows.into_iter().map(|(_, c)| c).collect();
    let invoices: Vec<InvoiceRow> = invoice_rows.into_iter().map(|(_, i)| i).collect();
    let bar = progress((customers.len() + invoices.len()) as u64);
    let started = std::time::Instant::now();
    let (c, (i, conflicts)) = conn.transaction::<_, anyhow::Error, _>(|conn| {
        let mut tick = |n: usize| bar.inc(n as u64);
        mirror::begin(conn)?;
        let c = import::upsert_customers(conn, &customers, &mut tick)?;
        let i = import::upsert_invoices(conn, &invoices, &mut tick)?;
        Ok((c, i))
    })?;
    bar.finish_and_clear();
    for conflict in &conflicts {
        let at = invoice_lines
            .get(conflict.number.as_str())
            .map(|line| format!("{}:{line}: ", invoices_name))
            .unwrap_or_default();
        println!(
            "{at}conflict: {n} is {s} in the database but the file says unpaid; kept {s} (no reminders). If it was marked {s} by mistake, run `dunning-schedule invoice unpaid {n}`; if it is {s}, write {s} in the file",
            n = conflict.number,
            s = conflict.status
        );
    }
    if !customers.is_empty() {
        println!(
            "Customers: {} created, {} updated, {} unchanged",
            c.created, c.updated, c.unchanged
        );
    }
    if !invoices.is_empty() {
        let conflicts = if i.conflicts > 0 {
            format!(", {} conflict(s) listed above (status kept)", i.conflicts)
        } else {
            String::new()
        };
        println!(
            "Invoices: {} created, {} updated, {} unchanged{conflicts}",
            i.created, i.updated, i.unchanged
        );
    }
    println!(
        "Imported in {:.1}s{}.",
        started.elapsed().as_secs_f64(),
        if bad.is_empty() {
            String::new()
        } else {
            format!("; {} bad row(s) skipped", bad.len())
        }
    );
    Ok(())
}

/// A progress bar on stderr when it is a terminal, otherwise nothing.
fn progress(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() || total < 1_000 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} rows ({per_sec}, {eta} left)")
    {
        bar.set_style(style);
    }
    bar
}

/// The columns of a CSV file, by lower-cased header name.
struct Columns {
    index: HashMap<String, usize>,
    width: usize,
}

impl Columns {
    fn get<'r>(&self, record: &'r csv::StringRecord, name: &str) -> &'r str {
        self.index
            .get(name)
            .and_then(|&i| record.get(i))
            .map_or("", str::trim)
    }
}

/// Separators a CSV file may use: Excel writes `;` where the decimal mark is a comma
/// (Indonesian and most European locales), "Text (Tab delimited)" writes tabs.
const SEPARATORS: [(u8, &str); 3] = [(b',', "comma ','"), (b';', "semicolon ';'"), (b'\t', "tab")];

/// Opens a CSV file and checks its header. The separator is the one of
/// [`SEPARATORS`] under which the header names the most known columns.
fn open(
    path: &Path,
    required: &[&str],
    optional: &[&str],
) -> anyhow::Result<(csv::Reader<std::fs::File>, Columns)> {
    let head = sniff(path)?;
    let header_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let known = |sep: u8| {
        let mut r = csv::ReaderBuilder::new()
            .delimiter(sep)
            .flexible(true)
            .from_reader(header_line);
        r.headers().map_or(0, |h| {
            h.iter()
                .filter(|c| {
                    let c = c.trim().to_ascii_lowercase();
                    required.contains(&c.as_str()) || optional.contains(&c.as_str())
                })
                .count()
        })
    };
    // Comma wins ties: it is the format the docs and the examples use.
    let (sep, sep_name) = SEPARATORS
        .iter()
        .copied()
        .rev()
        .max_by_key(|(sep, _)| known(*sep))
        .unwrap_or(SEPARATORS[0]);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(sep)
        .flexible(true)
        .from_path(path)
        .map_err(|e| UsageError(format!("{}: cannot open: {e}", path.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| {
            UsageError(format!(
                "{}: cannot read the header line: {e}",
                path.display()
            ))
        })?
        .clone();
    let index: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().to_ascii_lowercase(), i))
        .collect();
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| !index.contains_key(*c))
        .collect();
    if !missing.is_empty() {
        let mut all = required.to_vec();
        all.extend_from_slice(optional);
        return Err(UsageError(format!(
            "{}: missing column(s) {}; the first line must name the columns, separated by commas, semicolons or tabs: {} (see docs/examples/); read with the {sep_name} as separator, the first line has: {}",
            path.display(),
            missing.join(", "),
            all.join(","),
            headers
                .iter()
                .map(|h| format!("{:?}", h.trim()))
                .collect::<Vec<_>>()
                .join(" | ")
        ))
        .into());
    }
    Ok((
        reader,
        Columns {
            index,
            width: headers.len(),
        },
    ))
}

/// The first bytes of a file (UTF-8 BOM removed), refusing the files Excel writes
/// that are not CSV UTF-8, with the way to save them right.
fn sniff(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(8192);
    std::fs::File::open(path)
        .and_then(|f| f.take(8192).read_to_end(&mut head))
        .map_err(|e| UsageError(format!("{}: cannot open: {e}", path.display())))?;
    const SAVE_AS: &str = "in Excel choose File > Save As > \"CSV UTF-8 (Comma delimited) (*.csv)\" (LibreOffice: Save As > Text CSV, character set UTF-8) and import that file";
    let kind = if head.starts_with(b"PK\x03\x04") {
        Some("an Excel workbook (.xlsx) or another zip file, not CSV")
    } else if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        Some("an old Excel workbook (.xls), not CSV")
    } else if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        Some("text saved as UTF-16 (Excel's \"Unicode Text\"), not CSV UTF-8")
    } else {
        None
    };
    if let Some(kind) = kind {
        return Err(UsageError(format!(
            "{}: this file is {kind}: {SAVE_AS}",
            path.display()
        ))
        .into());
    }
    Ok(head
        .strip_prefix(b"\xEF\xBB\xBF")
        .map_or(head.clone(), <[u8]>::to_vec))
}

/// Reads every record; unreadable records and wrong field counts become bad rows.
fn records(
    path: &Path,
    reader: &mut csv::Reader<std::fs::File>,
    cols: &Columns,
    bad: &mut Vec<Bad>,
    mut each: impl FnMut(u64, &csv::StringRecord) -> Result<(), Vec<String>>,
) -> anyhow::Result<()> {
    let name = path.display().to_string();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(0, csv::Position::line);
                if record.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                let result = if record.len() == cols.width {
                    each(line, &record)
                } else {
                    Err(vec![format!(
                        "expected {} fields, found {}",
                        cols.width,
                        record.len()
                    )])
                };
                if let Err(reasons) = result {
                    bad.push(Bad {
                        file: name.clone(),
                        line,
                        reason: reasons.join("; "),
                    });
                }
            }
            Err(e) => match e.kind() {
                csv::ErrorKind::Utf8 { pos, .. } => bad.push(Bad {
                    file: name.clone(),
                    line: pos.as_ref().map_or(0, csv::Position::line),
                    reason: "not valid UTF-8: save the file as UTF-8 (CSV UTF-8 in Excel)".into(),
                }),
                _ => {
                    return Err(anyhow::anyhow!("{name}: cannot read: {e}"));
                }
            },
        }
    }
}

fn parse_customers(path: &Path, bad: &mut Vec<Bad>) -> anyhow::Result<Vec<(u64, CustomerRow)>> {
    let (mut reader, cols) = open(path, &["name"], &["external_id", "email", "phone"])?;
    let mut rows = Vec::new();
    // First line of each key, to report duplicates.
    let mut seen: HashMap<String, u64> = HashMap::new();
    records(path, &mut reader, &cols, bad, |line, rec| {
        let mut reasons = Vec::new();
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let external_id = opt(cols.get(rec, "external_id"));
        let name = cols.get(rec, "name");
        if name.is_empty() {
            reasons.push("name is empty".to_owned());
        }
        let email = opt(cols.get(rec, "email"));
        if let Some(e) = &email
            && let Err(err) = validate_email(e)
        {
            reasons.push(format!("bad email: {err}"));
        }
        let phone = match opt(cols.get(rec, "phone")) {
            None => None,
            Some(p) => match normalize_phone(&p) {
                Ok(n) => Some(n),
                Err(err) => {
                    reasons.push(format!("bad phone: {err}"));
                    None
                }
            },
        };
        let keys: Vec<(String, String)> = match &external_id {
            Some(id) => vec![(format!("x:{id}"), format!("external_id {id:?}"))],
            None => {
                let mut k = Vec::new();
                if let Some(e) = &email {
                    k.push((format!("e:{}", e.to_lowercase()), format!("email {e:?}")));
                }
                if let Some(p) = &phone {
                    k.push((format!("p:{p}"), format!("phone {p}")));
                }
                if k.is_empty() && reasons.is_empty() {
                    reasons.push(
                        "no external_id, email or phone: nothing to find this customer by on the next import".into(),
                    );
                }
                k
            }
        };
        for (key, what) in &keys {
            if let Some(first) = seen.get(key) {
                reasons.push(format!("duplicate {what} (first on line {first})"));
            }
        }
        if !reasons.is_empty() {
            return Err(reasons);
        }
        for (key, _) in keys {
            seen.insert(key, line);
        }
        rows.push((
            line,
            CustomerRow {
                external_id,
                name: name.to_owned(),
                email,
                phone,
            },
        ));
        Ok(())
    })?;
    Ok(rows)
}

fn parse_invoices(path: &Path, bad: &mut Vec<Bad>) -> anyhow::Result<Vec<(u64, InvoiceRow)>> {
    let (mut reader, cols) = open(
        path,
        &["number", "customer_external_id", "amount", "due_date"],
        &["status"],
    )?;
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    let mut rows = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    records(path, &mut reader, &cols, bad, |line, rec| {
        let mut reasons = Vec::new();
        let number = cols.get(rec, "number");
        if number.is_empty() {
            reasons.push("number is empty".to_owned());
        } else if let Some(first) = seen.get(number) {
            reasons.push(format!("duplicate number {number} (first on line {first})"));
        }
        let customer = cols.get(rec, "customer_external_id");
        if customer.is_empty() {
            reasons.push("customer_external_id is empty".to_owned());
        }
        let amount = parse_amount(cols.get(rec, "amount")).unwrap_or_else(|e| {
            reasons.push(e);
            0
        });
        let raw_date = cols.get(rec, "due_date");
        let due_date = time::Date::parse(raw_date, &date_format).ok();
        if due_date.is_none() {
            reasons.push(format!(
                "bad date {raw_date:?}: write due_date as YYYY-MM-DD, e.g. 2025-11-18"
            ));
        }
        let status = match cols.get(rec, "status").to_ascii_lowercase().as_str() {
            "" | "unpaid" => "unpaid",
            "paid" => "paid",
            "void" => "void",
            other => {
                reasons.push(format!("bad status {other:?}: use unpaid, paid or void"));
                "unpaid"
            }
        };
        match due_date {
            Some(due_date) if reasons.is_empty() => {
                seen.insert(number.to_owned(), line);
                rows.push((
                    line,
                    InvoiceRow {
                        number: number.to_owned(),
                        customer_external_id: customer.to_owned(),
                        amount,
                        due_date,
                        status: status.to_owned(),
                        payment_url: None,
                    },
                ));
                Ok(())
            }
            _ => Err(reasons),
        }
    })?;
    Ok(rows)
}

/// Whole rupiah: digits, optionally grouped with `.` as in `150.000`.
fn parse_amount(raw: &str) -> Result<i64, String> {
    let s = raw.trim();
    if let Some(rest) = s.strip_prefix('-')
        && !rest.is_empty()
    {
        return Err(format!(
            "negative amount {s}: amounts are whole rupiah, 0 or more"
        ));
    }
    let grouped = s.contains('.')
        && s.split('.').enumerate().all(|(i, g)| {
            g.bytes().all(|b| b.is_ascii_digit())
                && (g.len() == 3 || (i == 0 && (1..=3).contains(&g.len())))
        });
    let digits: String = if grouped {
        s.replace('.', "")
    } else {
        s.to_owned()
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "bad amount {raw:?}: write whole rupiah without decimals, e.g. 150000"
        ));
    }
    digits
        .parse()
        .map_err(|_| format!("bad amount {raw:?}: too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_amount;

    #[test]
    fn amounts_are_whole_rupiah() {
        assert_eq!(parse_amount("150000"), Ok(150_000));
        assert_eq!(parse_amount("150.000"), Ok(150_000));
        assert_eq!(parse_amount("1.250.000"), Ok(1_250_000));
        assert_eq!(parse_amount("0"), Ok(0));
        assert!(
            parse_amount("-5000")
                .unwrap_err()
                .contains("negative amount")
        );
        assert!(parse_amount("150000.50").is_err());
        assert!(parse_amount("15.00").is_err());
        assert!(parse_amount("abc").is_err());
        assert!(parse_amount("").is_err());
        assert!(parse_amount("99999999999999999999").is_err());
    }
}
