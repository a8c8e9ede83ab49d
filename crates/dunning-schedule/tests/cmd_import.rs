//! `import` as a process: validation with line numbers, all or nothing, idempotence.

mod cmd_support;

use std::path::Path;

use cmd_support::{Env, expect_code, ok, stderr};

fn examples() -> (std::path::PathBuf, std::path::PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples");
    (root.join("customers.csv"), root.join("invoices.csv"))
}

fn snapshot(env: &Env) -> String {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    use diesel::prelude::*;
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT concat_ws('|', 'c', id, external_id, name, email, phone, updated_at) AS row FROM customers
         UNION ALL
         SELECT concat_ws('|', 'i', id, number, customer_id, amount, due_date, status, paid_at, updated_at) FROM invoices
         ORDER BY 1",
    )
    .load(&mut env.conn())
    .unwrap();
    rows.into_iter().map(|r| r.row + "\n").collect()
}

#[test]
fn the_example_files_import_and_a_reimport_changes_nothing() {
    let env = Env::new();
    let (c, i) = examples();
    let args = [
        "import",
        "--customers",
        c.to_str().unwrap(),
        "--invoices",
        i.to_str().unwrap(),
    ];
    let text = ok(&env.run(&args));
    assert!(
        text.contains("Customers: 4 created, 0 updated, 0 unchanged"),
        "{text}"
    );
    assert!(
        text.contains("Invoices: 4 created, 0 updated, 0 unchanged"),
        "{text}"
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM customers WHERE external_id = 'C-1002' AND phone = '6281234567890'"),
        1,
        "phones are stored normalised"
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM invoices WHERE number = 'INV-20251110-345678' AND amount = 175000"),
        1
    );
    assert_eq!(
        env.count(
            "SELECT count(*) AS n FROM invoices WHERE status = 'paid' AND paid_at IS NOT NULL"
        ),
        1
    );
    let before = snapshot(&env);
    let again = ok(&env.run(&args));
    assert!(
        again.contains("Customers: 0 created, 0 updated, 4 unchanged"),
        "{again}"
    );
    assert!(
        again.contains("Invoices: 0 created, 0 updated, 4 unchanged"),
        "{again}"
    );
    assert_eq!(snapshot(&env), before, "a re-import must not touch any row");
}

#[test]
fn changed_rows_are_updated_and_a_paid_invoice_is_a_conflict_not_reopened() {
    let env = Env::new();
    let c = env.file(
        "c.csv",
        "external_id,name,email,phone\nC-1,Budi,budi@email.com,085707211646\nC-2,Ani,ani@email.com,\n",
    );
    let i = env.file(
        "i.csv",
        "number,customer_external_id,amount,due_date,status\nINV-1,C-1,1000,2025-11-18,unpaid\nINV-2,C-2,2000,2025-11-18,unpaid\n",
    );
    let (c, i) = (c.to_str().unwrap(), i.to_str().unwrap());
    ok(&env.run(&["import", "--customers", c, "--invoices", i]));
    ok(&env.run(&["invoice", "paid", "INV-2"]));
    env.file(
        "c.csv",
        "external_id,name,email,phone\nC-1,Budi Santoso,budi@email.com,085707211646\nC-2,Ani,ani@email.com,\n",
    );
    env.file(
        "i.csv",
        "number,customer_external_id,amount,due_date,status\nINV-1,C-1,1500,2025-11-18,unpaid\nINV-2,C-2,2000,2025-11-18,unpaid\n",
    );
    let text = ok(&env.run(&["import", "--customers", c, "--invoices", i]));
    assert!(
        text.contains("Customers: 0 created, 1 updated, 1 unchanged"),
        "{text}"
    );
    // INV-2 is paid in the database, unpaid in the file: a conflict with its fix, on
    // its own line, not "unchanged".
    assert!(
        text.contains("Invoices: 0 created, 1 updated, 0 unchanged, 1 conflict(s)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{i}:3: conflict: INV-2 is paid in the database but the file says unpaid; kept paid"
        )),
        "{text}"
    );
    assert!(
        text.contains("dunning-schedule invoice unpaid INV-2"),
        "{text}"
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM invoices WHERE number = 'INV-2' AND status = 'paid'"),
        1
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM invoices WHERE number = 'INV-1' AND amount = 1500"),
        1
    );
}

#[test]
fn every_bad_row_is_reported_with_its_line_and_nothing_is_written() {
    let env = Env::new();
    env.exec("INSERT INTO customers (external_id, name) VALUES ('C-DB', 'Already Here')");
    let c = env.file(
        "customers.csv",
        "external_id,name,email,phone\n\
         C-1,Budi,budi@email.com,085707211646\n\
         C-2,Ani,ani-at-email.com,\n\
         C-3,Cici,,021 555 1234\n\
         C-1,Budi Again,,\n\
         C-4,Dedi,dedi@email.com,0813 1111 2222\n",
    );
    let i = env.file(
        "invoices.csv",
        "number,customer_external_id,amount,due_date,status\n\
         INV-1,C-1,150000,2025-11-18,unpaid\n\
         INV-2,C-1,150000,18/11/2025,unpaid\n\
         INV-3,C-1,-5000,2025-11-18,unpaid\n\
         INV-4,C-404,1000,2025-11-18,unpaid\n\
         INV-1,C-4,1000,2025-11-18,unpaid\n\
         INV-5,C-DB,1000,2025-11-18,unpaid\n\
         INV-6,C-4,1000,2025-11-18,lunas\n",
    );
    let out = env.run(&[
        "import",
        "--customers",
        c.to_str().unwrap(),
        "--invoices",
        i.to_str().unwrap(),
    ]);
    let text = expect_code(&out, 1);
    let cf = c.display().to_string();
    let inf = i.display().to_string();
    let expected = [
        (format!("{cf}:3: "), "bad email"),
        (format!("{cf}:4: "), "bad phone"),
        (
            format!("{cf}:5: "),
            "duplicate external_id \"C-1\" (first on line 2)",
        ),
        (format!("{inf}:3: "), "bad date \"18/11/2025\""),
        (format!("{inf}:4: "), "negative amount -5000"),
        (format!("{inf}:5: "), "unknown customer \"C-404\""),
        (
            format!("{inf}:6: "),
            "duplicate number INV-1 (first on line 2)",
        ),
        (format!("{inf}:8: "), "bad status \"lunas\""),
    ];
    for (prefix, reason) in &expected {
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix.as_str()))
            .unwrap_or_else(|| panic!("no report for {prefix} in\n{text}"));
        assert!(line.contains(reason), "{line} should say {reason}");
    }
    let reported = text
        .lines()
        .filter(|l| l.starts_with(&cf) || l.starts_with(&inf))
        .count();
    assert_eq!(reported, expected.len(), "{text}");
    assert!(
        stderr(&out).contains("nothing imported: 8 bad row(s)"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--skip-invalid"), "{}", stderr(&out));
    assert_eq!(env.count("SELECT count(*) AS n FROM customers"), 1);
    assert_eq!(env.count("SELECT count(*) AS n FROM invoices"), 0);

    // --skip-invalid imports the good rows and still reports the bad ones.
    let out = env.run(&[
        "import",
        "--customers",
        c.to_str().unwrap(),
        "--invoices",
        i.to_str().unwrap(),
        "--skip-invalid",
    ]);
    let text = ok(&out);
    assert!(text.contains("Customers: 2 created"), "{text}");
    assert!(text.contains("Invoices: 2 created"), "{text}");
    assert!(text.contains("8 bad row(s) skipped"), "{text}");
    assert_eq!(
        env.count("SELECT count(*) AS n FROM invoices WHERE number IN ('INV-1', 'INV-5')"),
        2
    );
}

#[test]
fn a_file_without_the_required_columns_is_a_usage_error() {
    let env = Env::new();
    let i = env.file("i.csv", "nomor,jumlah\nINV-1,1000\n");
    let out = env.run(&["import", "--invoices", i.to_str().unwrap()]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("missing column(s) number, customer_external_id, amount, due_date"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn customers_without_external_id_are_matched_by_email_or_phone() {
    let env = Env::new();
    env.exec(
        "INSERT INTO customers (name, email, phone) VALUES ('Old Name', 'budi@email.com', NULL)",
    );
    let c = env.file(
        "c.csv",
        "name,email,phone\nBudi Santoso,BUDI@email.com,085707211646\nAni,,0813 1111 2222\n",
    );
    let c = c.to_str().unwrap();
    let text = ok(&env.run(&["import", "--customers", c]));
    assert!(
        text.contains("Customers: 1 created, 1 updated, 0 unchanged"),
        "{text}"
    );
    let again = ok(&env.run(&["import", "--customers", c]));
    assert!(
        again.contains("Customers: 0 created, 0 updated, 2 unchanged"),
        "{again}"
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM customers"), 2);
}

/// Excel with an Indonesian locale saves `;`; "Text (Tab delimited)" saves tabs; both
/// import like the comma file, with a BOM too.
#[test]
fn semicolon_and_tab_separated_files_import() {
    let env = Env::new();
    let c = env.file(
        "c.csv",
        "\u{FEFF}external_id;name;email;phone\r\nC-1;\"Budi; Santoso\";budi@email.com;085707211646\r\n",
    );
    let i = env.file(
        "i.tsv",
        "number\tcustomer_external_id\tamount\tdue_date\tstatus\nINV-1\tC-1\t150.000\t2025-11-18\tunpaid\n",
    );
    let text = ok(&env.run(&[
        "import",
        "--customers",
        c.to_str().unwrap(),
        "--invoices",
        i.to_str().unwrap(),
    ]));
    assert!(text.contains("Customers: 1 created"), "{text}");
    assert!(text.contains("Invoices: 1 created"), "{text}");
    assert_eq!(
        env.count("SELECT count(*) AS n FROM customers WHERE name = 'Budi; Santoso' AND phone = '6285707211646'"),
        1
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM invoices WHERE number = 'INV-1' AND amount = 150000"),
        1
    );
}

/// A header that no separator makes sense of names the separator it was read with.
#[test]
fn a_header_without_the_columns_names_the_separator() {
    let env = Env::new();
    let c = env.file("c.csv", "id|nama|surel\n1|Budi|budi@email.com\n");
    let out = env.run(&["import", "--customers", c.to_str().unwrap()]);
    expect_code(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("missing column(s) name"), "{err}");
    assert!(err.contains("comma ','"), "{err}");
    assert!(err.contains("semicolons or tabs"), "{err}");
    assert_eq!(env.count("SELECT count(*) AS n FROM customers"), 0);
}

/// An `.xlsx` workbook (a zip file) and a UTF-16 export get "save it as CSV UTF-8".
#[test]
fn excel_workbooks_and_utf16_files_are_told_to_save_as_csv_utf8() {
    let env = Env::new();
    let xlsx = env.dir.path().join("customers.xlsx");
    std::fs::write(
        &xlsx,
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00[Content_Types].xml",
    )
    .unwrap();
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in "external_id,name,email,phone\nC-1,Budi,,\n".encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    let u16 = env.dir.path().join("customers.csv");
    std::fs::write(&u16, utf16).unwrap();
    for (path, kind) in [(&xlsx, "Excel workbook (.xlsx)"), (&u16, "UTF-16")] {
        let out = env.run(&["import", "--customers", path.to_str().unwrap()]);
        expect_code(&out, 2);
        let err = stderr(&out);
        assert!(err.contains(kind), "{err}");
        assert!(err.contains("CSV UTF-8"), "{err}");
        assert!(!err.contains("utf-8 at byte"), "{err}");
    }
    assert_eq!(env.count("SELECT count(*) AS n FROM customers"), 0);
}

/// `invoice unpaid` undoes an `invoice paid` made by mistake: the invoice is reminded
/// again by the next run.
#[test]
fn invoice_unpaid_reopens_an_invoice_marked_paid_by_mistake() {
    let env = Env::new();
    let due = cmd_support::today_jakarta() + time::Duration::days(3);
    env.exec(&format!(
        "INSERT INTO customers (id, name, email) VALUES (1, 'Budi', 'budi@email.com');
         INSERT INTO invoices (number, customer_id, amount, due_date) VALUES ('INV-1', 1, 1000, '{due}');"
    ));
    ok(&env.run(&["invoice", "paid", "INV-1"]));
    let text = ok(&env.run(&[]));
    assert!(text.contains("Dispatched: 0"), "{text}");
    let text = ok(&env.run(&["invoice", "unpaid", "INV-1"]));
    assert!(text.contains("INV-1: marked unpaid"), "{text}");
    assert_eq!(
        env.count("SELECT count(*) AS n FROM invoices WHERE status = 'unpaid' AND paid_at IS NULL"),
        1
    );
    let text = ok(&env.run(&[]));
    assert!(text.contains("Dispatched INV-1 to Budi (email)"), "{text}");
    let out = env.run(&["invoice", "unpaid", "INV-404"]);
    expect_code(&out, 1);
    assert!(stderr(&out).contains("INV-404"), "{}", stderr(&out));
}
