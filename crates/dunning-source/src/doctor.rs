//! What `dunning-schedule doctor` says about the billing source: it connects, runs
//! both queries with `LIMIT 1`, names missing and extra columns, counts the rows
//! and checks the first row as a sync would.

use time::UtcOffset;

use crate::client::{Header, Source, Timeouts, Which};
use crate::config::SourceConfig;
use crate::rows;

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    pub fix: Option<String>,
}

fn fail(name: &'static str, detail: String, fix: &str) -> Finding {
    Finding {
        name,
        ok: false,
        detail,
        fix: Some(fix.to_owned()),
    }
}

const FIX_CONNECT: &str = "set BILLING_DATABASE_URL to mysql://user:password@host:3306/database (or postgres://…); a read-only user with SELECT on the billing tables is enough";
const FIX_QUERY: &str = "edit the query in the BILLING_QUERIES file (examples: docs/examples/billing.toml, docs/examples/billing-phpnuxbill.toml), then run `dunning-schedule doctor` again";

/// Checks the source; every finding, good or bad.
pub fn check(cfg: &SourceConfig, offset: UtcOffset) -> Vec<Finding> {
    let queries = match cfg.queries() {
        Ok(q) => q,
        Err(e) => return vec![fail("Billing queries", e.to_string(), FIX_QUERY)],
    };
    let mut src = match Source::connect(cfg, queries, offset, Timeouts::SYNC) {
        Ok(s) => s,
        Err(e) => return vec![fail("Billing source", e.to_string(), FIX_CONNECT)],
    };
    let mut out = vec![Finding {
        name: "Billing source",
        ok: true,
        detail: format!(
            "reachable ({}), queries from {}",
            cfg.target,
            cfg.queries_file.display()
        ),
        fix: None,
    }];
    for which in [Which::Customers, Which::Invoices] {
        out.push(query(&mut src, which));
    }
    out
}

fn query(src: &mut Source, which: Which) -> Finding {
    let name = match which {
        Which::Customers => "Billing customers query",
        Which::Invoices => "Billing invoices query",
    };
    let header = match src.header(which) {
        Ok(h) => h,
        Err(e) => return fail(name, e.to_string(), FIX_QUERY),
    };
    let missing = header.missing(which);
    let extra = header.extra(which);
    let extra_note = if extra.is_empty() {
        String::new()
    } else {
        format!("; extra columns (ignored): {}", extra.join(", "))
    };
    if !missing.is_empty() {
        return fail(
            name,
            format!(
                "missing column(s): {} (it returns: {}){extra_note}",
                missing.join(", "),
                header.names.join(", ")
            ),
            &format!(
                "add them to the SELECT with aliases, e.g. `… AS {}`; it must return {}",
                missing[0],
                which.required().join(", ")
            ),
        );
    }
    let first = match src.first(which, &header) {
        Ok(r) => r,
        Err(e) => return fail(name, e.to_string(), FIX_QUERY),
    };
    let count = match src.count(which) {
        Ok(n) => n,
        Err(e) => return fail(name, e.to_string(), FIX_QUERY),
    };
    let incremental = if header.has("updated_at") {
        "; has updated_at (incremental sync)"
    } else {
        "; no updated_at (every sync reads every row)"
    };
    match first.map(|row| first_row(which, &header, &row)) {
        Some(Err(reason)) => fail(
            name,
            format!("{count} rows; the first row would be rejected: {reason}"),
            FIX_QUERY,
        ),
        _ => Finding {
            name,
            ok: true,
            detail: format!("{count} rows{incremental}{extra_note}"),
            fix: None,
        },
    }
}

fn first_row(which: Which, h: &Header, row: &crate::client::Row) -> Result<(), String> {
    let bad = match which {
        Which::Customers => rows::customer(h, row, 1).err(),
        Which::Invoices => rows::invoice(h, row, 1).err(),
    };
    match bad {
        None => Ok(()),
        Some(b) => Err(format!("{}: {}", b.key, b.reasons.join("; "))),
    }
}
