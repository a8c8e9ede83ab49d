use std::fs;

use time::Month;
use time::macros::date;

use super::*;

const COMPANY: &str = "Wikarta Provider";

fn stage(s: &str) -> Stage {
    s.parse().unwrap()
}

fn stages(list: &str) -> Vec<Stage> {
    parse_stages(list).unwrap()
}

fn seed_facts() -> InvoiceFacts {
    InvoiceFacts {
        customer_name: "[Nama Customer]".into(),
        invoice_number: "INV-20251115-123456".into(),
        amount: 150_000,
        due_date: date!(2025 - 11 - 18),
    }
}

/// The seed's "Isi Pesan (Email & WhatsApp)", verbatim.
const SEED_BODY: &str = "Halo [Nama Customer],

Kami ingin mengingatkan bahwa tagihan INV-20251115-123456 sebesar Rp 150.000 akan jatuh tempo pada 18 November 2025.
Mohon segera menyelesaikan pembayaran agar layanan Anda tetap aktif tanpa gangguan.

Jika Anda sudah melakukan pembayaran, abaikan pesan ini.
Terima kasih atas kerja sama dan kepercayaannya.

Salam,
Tim Wikarta Provider";

fn render(t: &Templates, s: &str, channel: Channel) -> Rendered {
    t.render(stage(s), channel, &seed_facts()).unwrap()
}

/// A templates directory holding `files`, loaded for `stage_list`.
fn load_with(
    files: &[(&str, &str)],
    stage_list: &str,
) -> (tempfile::TempDir, Result<Templates, TemplateError>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    let loaded = Templates::load(COMPANY, Some(dir.path()), &stages(stage_list));
    (dir, loaded)
}

fn load_err(files: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let (dir, loaded) = load_with(files, DEFAULT_STAGES);
    let err = loaded.expect_err("load should fail").to_string();
    (dir, err)
}

// --- built-in texts --------------------------------------------------------------

#[test]
fn before_due_stages_use_the_seed_text_word_for_word() {
    let t = Templates::builtin(COMPANY);
    for s in ["T-7", "T-3", "T-1", "T-14"] {
        for channel in Channel::ALL {
            let m = render(&t, s, channel);
            assert_eq!(m.body, SEED_BODY, "{s} {channel}");
            assert_eq!(
                m.subject,
                "Pengingat Pembayaran Tagihan INV-20251115-123456 🕒"
            );
        }
    }
}

#[test]
fn due_today_says_so() {
    let t = Templates::builtin(COMPANY);
    let m = render(&t, "T+0", Channel::WhatsApp);
    assert_eq!(
        m.body,
        SEED_BODY.replace(
            "akan jatuh tempo pada 18 November 2025.",
            "jatuh tempo hari ini, 18 November 2025."
        )
    );
    assert_eq!(
        m.subject,
        "Pengingat Pembayaran Tagihan INV-20251115-123456 🕒"
    );
}

#[test]
fn overdue_stages_warn_that_the_due_date_has_passed() {
    let t = Templates::builtin(COMPANY);
    let expected = "Halo [Nama Customer],

Kami informasikan bahwa tagihan INV-20251115-123456 sebesar Rp 150.000 telah melewati tanggal jatuh tempo pada 18 November 2025 dan hingga hari ini pembayarannya belum kami terima.
Mohon segera melakukan pembayaran untuk menghindari gangguan pada layanan Anda.

Jika Anda sudah melakukan pembayaran, abaikan pesan ini.
Terima kasih atas kerja sama dan kepercayaannya.

Salam,
Tim Wikarta Provider";
    for s in ["T+3", "T+1", "T+7"] {
        for channel in Channel::ALL {
            let m = render(&t, s, channel);
            assert_eq!(m.body, expected, "{s} {channel}");
            assert!(!m.body.contains("akan jatuh tempo"));
            assert_eq!(
                m.subject,
                "Peringatan Tunggakan Tagihan INV-20251115-123456 ⚠️"
            );
        }
    }
}

#[test]
fn a_payment_link_adds_one_line_to_every_builtin_text_and_nothing_else() {
    let t = Templates::builtin(COMPANY);
    let url = "https://billing.example.id/bayar/INV-20251115-123456";
    for s in ["T-7", "T+0", "T+3"] {
        for channel in Channel::ALL {
            let plain = render(&t, s, channel);
            let linked = t
                .render_with_link(stage(s), channel, &seed_facts(), Some(url))
                .unwrap();
            let line = format!("Bayar sekarang melalui tautan berikut: {url}");
            let added: Vec<&str> = linked
                .body
                .lines()
                .filter(|l| !plain.body.lines().any(|p| p == *l))
                .collect();
            assert_eq!(added, [line.as_str()], "{s} {channel}");
            assert_eq!(
                linked.body.replace(&format!("{line}\n"), ""),
                plain.body,
                "{s} {channel}: only the line is added"
            );
            assert_eq!(linked.subject, plain.subject);
            // An empty link is no link.
            let empty = t
                .render_with_link(stage(s), channel, &seed_facts(), Some(""))
                .unwrap();
            assert_eq!(empty, plain, "{s} {channel}");
        }
    }
    assert_eq!(
        t.render_with_link(stage("T-3"), Channel::Email, &seed_facts(), None)
            .unwrap()
            .body,
        SEED_BODY
    );
}

#[test]
fn the_receipt_thanks_for_the_payment_in_indonesian() {
    let t = Templates::builtin(COMPANY);
    for channel in Channel::ALL {
        let m = t.render_receipt(channel, &seed_facts()).unwrap();
        assert_eq!(
            m.body,
            "Halo [Nama Customer],

Terima kasih, pembayaran tagihan INV-20251115-123456 sebesar Rp 150.000 telah kami terima.

Salam,
Tim Wikarta Provider"
        );
        assert_eq!(
            m.subject,
            "Pembayaran Diterima: Tagihan INV-20251115-123456 ✅"
        );
    }
}

#[test]
fn company_name_comes_from_settings() {
    let t = Templates::builtin("Jaringan Nusantara\r\nBcc: evil@example.com");
    let m = render(&t, "T-3", Channel::Email);
    assert!(
        m.body
            .ends_with("Salam,\nTim Jaringan Nusantara Bcc: evil@example.com")
    );
}

#[test]
fn amounts_are_formatted_in_messages() {
    let t = Templates::builtin(COMPANY);
    for (amount, text) in [
        (0, "sebesar Rp 0 akan"),
        (999, "sebesar Rp 999 akan"),
        (1_000, "sebesar Rp 1.000 akan"),
        (1_250_000, "sebesar Rp 1.250.000 akan"),
        (1_000_000_000, "sebesar Rp 1.000.000.000 akan"),
    ] {
        let facts = InvoiceFacts {
            amount,
            ..seed_facts()
        };
        let m = t.render(stage("T-3"), Channel::Email, &facts).unwrap();
        assert!(m.body.contains(text), "{amount}: {}", m.body);
    }
}

#[test]
fn every_month_name_appears_in_due_dates() {
    let t = Templates::builtin(COMPANY);
    let names = [
        "Januari",
        "Februari",
        "Maret",
        "April",
        "Mei",
        "Juni",
        "Juli",
        "Agustus",
        "September",
        "Oktober",
        "November",
        "Desember",
    ];
    for (i, name) in names.iter().enumerate() {
        let month = Month::try_from(u8::try_from(i + 1).unwrap()).unwrap();
        let facts = InvoiceFacts {
            due_date: Date::from_calendar_date(2026, month, 1).unwrap(),
            ..seed_facts()
        };
        let m = t.render(stage("T-1"), Channel::WhatsApp, &facts).unwrap();
        assert!(
            m.body
                .contains(&format!("akan jatuh tempo pada 1 {name} 2026.")),
            "{}",
            m.body
        );
    }
}

#[test]
fn builtin_sources_cover_every_stage_and_channel() {
    let t = Templates::load(COMPANY, None, &stages("T-3,T+3")).unwrap();
    let sources = t.sources();
    let names: Vec<&str> = sources.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "T-3.email.subject.txt",
            "T-3.email.txt",
            "T-3.whatsapp.txt",
            "T+3.email.subject.txt",
            "T+3.email.txt",
            "T+3.whatsapp.txt",
            "grouped.email.subject.txt",
            "grouped.email.txt",
            "grouped.whatsapp.txt"
        ]
    );
    assert!(sources.iter().all(|(_, origin)| origin == BUILT_IN));
    assert_eq!(Templates::builtin(COMPANY).sources().len(), 15);
}

// --- hostile customer data ------------------------------------------------------

#[test]
fn hostile_names_cannot_add_lines() {
    let t = Templates::builtin(COMPANY);
    let long = "A".repeat(250);
    for name in [
        "Budi\r\nBcc: victim@example.com",
        "Budi\n\nSalam,\nTim Palsu",
        "<script>alert('x')</script>",
        "Siti 👩‍💻🎉",
        long.as_str(),
        "\u{202E}ataD\u{2028}x\u{0}",
        "   ",
    ] {
        let facts = InvoiceFacts {
            customer_name: name.into(),
            invoice_number: "INV-1\r\nSubject: spoof".into(),
            ..seed_facts()
        };
        for s in ["T-3", "T+0", "T+3"] {
            for channel in Channel::ALL {
                let m = t.render(stage(s), channel, &facts).unwrap();
                assert!(!m.subject.contains(['\r', '\n']), "{name:?}");
                assert_eq!(
                    m.body.lines().count(),
                    SEED_BODY.lines().count(),
                    "{name:?}"
                );
                let greeting = m.body.lines().next().unwrap();
                let shown = greeting
                    .strip_prefix("Halo ")
                    .unwrap()
                    .strip_suffix(',')
                    .unwrap();
                assert!(shown.chars().count() <= MAX_FIELD_CHARS);
                assert!(!shown.is_empty());
            }
        }
    }
    let facts = InvoiceFacts {
        customer_name: "<script>alert('x')</script> 👩‍💻".into(),
        ..seed_facts()
    };
    let m = t.render(stage("T-3"), Channel::Email, &facts).unwrap();
    assert!(m.body.starts_with("Halo <script>alert('x')</script> 👩‍💻,\n"));
    let facts = InvoiceFacts {
        customer_name: long,
        ..seed_facts()
    };
    let m = t.render(stage("T-3"), Channel::Email, &facts).unwrap();
    assert!(m.body.starts_with(&format!("Halo {}…,\n", "A".repeat(99))));
}

proptest::proptest! {
    #[test]
    fn rendering_never_panics_and_subjects_stay_one_line(
        name in proptest::prelude::any::<String>(),
        number in proptest::prelude::any::<String>(),
        amount in proptest::prelude::any::<i64>(),
        offset in -999i32..=999,
        julian in 2_400_000i32..2_600_000,
        whatsapp in proptest::prelude::any::<bool>(),
    ) {
        let t = Templates::builtin(COMPANY);
        let facts = InvoiceFacts {
            customer_name: name,
            invoice_number: number,
            amount,
            due_date: Date::from_julian_day(julian).unwrap(),
        };
        let channel = if whatsapp { Channel::WhatsApp } else { Channel::Email };
        let m = t.render(Stage::from_offset(offset), channel, &facts).unwrap();
        proptest::prop_assert!(!m.subject.contains(['\n', '\r']));
        proptest::prop_assert_eq!(m.body.lines().count(), 10);
        proptest::prop_assert!(m.body.contains(&rupiah(amount)));
    }
}

// --- overrides -------------------------------------------------------------------

#[test]
fn overrides_follow_stage_then_group_then_default_then_builtin() {
    let (dir, loaded) = load_with(
        &[
            ("T-3.whatsapp.txt", "exact {{ stage }}\n"),
            ("before_due.whatsapp.txt", "group {{ stage }}\n"),
            ("default.whatsapp.txt", "default {{ stage }}\n"),
            (
                "overdue.email.subject.txt",
                "Lewat {{ days }} hari: {{ invoice_number }}\n",
            ),
        ],
        "T-7,T-3,T+0,T+3",
    );
    let t = loaded.unwrap();
    assert_eq!(render(&t, "T-3", Channel::WhatsApp).body, "exact T-3");
    assert_eq!(render(&t, "T-7", Channel::WhatsApp).body, "group T-7");
    assert_eq!(render(&t, "T+0", Channel::WhatsApp).body, "default T+0");
    assert_eq!(render(&t, "T+3", Channel::WhatsApp).body, "default T+3");
    // Email bodies were not overridden.
    assert_eq!(render(&t, "T-3", Channel::Email).body, SEED_BODY);
    let m = render(&t, "T+3", Channel::Email);
    assert_eq!(m.subject, "Lewat 3 hari: INV-20251115-123456");
    assert!(m.body.contains("telah melewati tanggal jatuh tempo"));
    assert_eq!(
        render(&t, "T-7", Channel::Email).subject,
        "Pengingat Pembayaran Tagihan INV-20251115-123456 🕒"
    );

    let origin = |name: &str| {
        t.sources()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o)
            .unwrap()
    };
    let path = |file: &str| dir.path().join(file).display().to_string();
    assert_eq!(origin("T-3.whatsapp.txt"), path("T-3.whatsapp.txt"));
    assert_eq!(origin("T-7.whatsapp.txt"), path("before_due.whatsapp.txt"));
    assert_eq!(origin("T+0.whatsapp.txt"), path("default.whatsapp.txt"));
    assert_eq!(
        origin("T+3.email.subject.txt"),
        path("overdue.email.subject.txt")
    );
    assert_eq!(origin("T-3.email.txt"), BUILT_IN);
}

#[test]
fn custom_stages_and_all_variables_render() {
    let all: String = VARIABLES
        .iter()
        .map(|(name, _)| format!("{name}={{{{ {name} }}}}"))
        .collect::<Vec<_>>()
        .join("\n");
    let (_dir, loaded) = load_with(&[("T+7.whatsapp.txt", &all)], "T-14,T+7");
    let t = loaded.unwrap();
    let body = render(&t, "T+7", Channel::WhatsApp).body;
    assert_eq!(
        body,
        "customer_name=[Nama Customer]
invoice_number=INV-20251115-123456
amount=Rp 150.000
amount_raw=150000
due_date=18 November 2025
due_date_iso=2025-11-18
stage=T+7
days=7
overdue=True
channel=whatsapp
company_name=Wikarta Provider
payment_url="
    );
    assert_eq!(render(&t, "T-14", Channel::WhatsApp).body, SEED_BODY);
}

#[test]
fn crlf_bom_and_trailing_newlines_are_normalised() {
    let (_dir, loaded) = load_with(
        &[
            (
                "T-3.email.txt",
                "\u{FEFF}Halo {{ customer_name }},\r\n\r\nBayar ya.\r\n\r\n\r\n",
            ),
            (
                "T-3.whatsapp.txt",
                "Halo {{ customer_name }},\n{% if overdue %}\nTelat!\n{% endif %}\nBayar ya.\n",
            ),
        ],
        DEFAULT_STAGES,
    );
    let t = loaded.unwrap();
    assert_eq!(
        render(&t, "T-3", Channel::Email).body,
        "Halo [Nama Customer],\n\nBayar ya."
    );
    // trim_blocks: the `{% if %}` lines leave no blank lines.
    assert_eq!(
        render(&t, "T-3", Channel::WhatsApp).body,
        "Halo [Nama Customer],\nBayar ya."
    );
}

#[test]
fn syntax_error_names_file_and_line() {
    let (dir, err) = load_err(&[(
        "T-3.email.txt",
        "Halo {{ customer_name }},\n\nTagihan {{ invoice_number }\n",
    )]);
    let file = dir.path().join("T-3.email.txt");
    assert!(
        err.starts_with(&format!("{}:3: syntax error", file.display())),
        "{err}"
    );
}

#[test]
fn unknown_variable_names_file_line_and_variable() {
    let (dir, err) = load_err(&[(
        "overdue.whatsapp.txt",
        "Halo {{ customer_name }},\nTagihan {{ invoice_number }}\nsebesar {{ jumlah }}.\n",
    )]);
    let file = dir.path().join("overdue.whatsapp.txt");
    assert!(
        err.starts_with(&format!("{}:3: unknown variable jumlah", file.display())),
        "{err}"
    );
    assert!(
        err.contains("available variables: customer_name, invoice_number, amount"),
        "{err}"
    );
}

#[test]
fn unknown_variable_in_an_untaken_branch_is_still_found() {
    let (dir, err) = load_err(&[(
        "T-7.email.subject.txt",
        "Tagihan {{ invoice_number }}\n{%- if amount_raw > 999999999999 %} {{ nama_pelanggan }}{% endif %}\n",
    )]);
    let file = dir.path().join("T-7.email.subject.txt");
    assert!(
        err.starts_with(&format!(
            "{}:2: unknown variable nama_pelanggan",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn runtime_problems_are_found_at_load() {
    let (dir, err) = load_err(&[(
        "T-1.email.txt",
        "Halo\n{{ customer_name | no_such_filter }}\n",
    )]);
    let file = dir.path().join("T-1.email.txt");
    assert!(
        err.starts_with(&format!("{}:2: unknown filter", file.display())),
        "{err}"
    );

    let (_dir, err) = load_err(&[("T-1.email.subject.txt", "Tagihan\n{{ invoice_number }}\n")]);
    assert!(err.contains("a subject must be a single line"), "{err}");

    let (_dir, err) = load_err(&[("default.whatsapp.txt", "{% if false %}x{% endif %}\n")]);
    assert!(err.contains("renders to an empty text"), "{err}");
}

#[test]
fn unknown_file_names_are_rejected_with_the_valid_names() {
    let (dir, err) = load_err(&[("T-3.whatsap.txt", "Halo\n")]);
    let file = dir.path().join("T-3.whatsap.txt");
    assert!(
        err.starts_with(&format!("{}: not a template file name", file.display())),
        "{err}"
    );
    for valid in [
        "T-3.whatsapp.txt",
        "T-3.email.subject.txt",
        "T+3.email.txt",
        "before_due.email.txt",
        "overdue.whatsapp.txt",
        "default.email.subject.txt",
    ] {
        assert!(err.contains(valid), "{valid} missing from {err}");
    }
    for bad in [
        "T-3.whatsapp.subject.txt",
        "t-3.email.txt",
        "T-3.email.txt~",
        "notes.txt",
    ] {
        let (_dir, err) = load_err(&[(bad, "Halo\n")]);
        assert!(err.contains("not a template file name"), "{bad}: {err}");
    }
}

#[test]
fn stage_files_must_match_configured_stages() {
    let (_dir, err) = load_err(&[("T-14.email.txt", "Halo\n")]);
    assert!(
        err.contains("stage T-14 is not in DUNNING_STAGES (T-7,T-3,T-1,T+3)"),
        "{err}"
    );
}

#[test]
fn hidden_files_readme_and_subdirectories_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(".T-3.email.txt.swp"), "junk {{").unwrap();
    fs::write(dir.path().join("README.md"), "# notes").unwrap();
    fs::create_dir(dir.path().join("old")).unwrap();
    fs::write(dir.path().join("old").join("whatever"), "junk").unwrap();
    let t = Templates::load(COMPANY, Some(dir.path()), &stages(DEFAULT_STAGES)).unwrap();
    assert!(t.sources().iter().all(|(_, origin)| origin == BUILT_IN));
}

#[test]
fn missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Templates::load(COMPANY, Some(&missing), &stages(DEFAULT_STAGES))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("DUNNING_TEMPLATES_DIR={}", missing.display())),
        "{err}"
    );
}

#[test]
fn documented_examples_load_and_render() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/templates");
    let t = Templates::load(COMPANY, Some(&examples), &stages(DEFAULT_STAGES)).unwrap();
    for s in ["T-7", "T-3", "T-1", "T+3"] {
        for channel in Channel::ALL {
            let m = render(&t, s, channel);
            assert!(!m.body.is_empty());
            assert!(!m.subject.contains('\n'));
        }
    }
    let wa = t
        .render_group(Channel::WhatsApp, "Budi", &group_items())
        .unwrap();
    assert!(
        wa.body.contains("- INV-2: Rp 150.000, akan jatuh tempo"),
        "{}",
        wa.body
    );
    assert!(
        wa.body.contains("Total Rp 400.000. Mohon dibayar hari ini"),
        "{}",
        wa.body
    );
}

#[test]
fn attributes_of_variables_are_unknown() {
    let (dir, err) = load_err(&[("T-3.email.txt", "Halo {{ customer_name.first }},\n")]);
    let file = dir.path().join("T-3.email.txt");
    assert!(
        err.starts_with(&format!(
            "{}:1: unknown variable customer_name.first",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn filters_loops_and_globals_are_allowed() {
    let (_dir, loaded) = load_with(
        &[(
            "default.email.txt",
            "{{ customer_name | upper }}\n{% for i in range(2) %}\n{{ loop.index }}\n{% endfor %}\n{% set n = days * 2 %}\n{{ n }}\n",
        )],
        DEFAULT_STAGES,
    );
    let t = loaded.unwrap();
    assert_eq!(
        render(&t, "T-3", Channel::Email).body,
        "[NAMA CUSTOMER]\n1\n2\n6"
    );
}

#[test]
fn templates_can_be_shared_between_worker_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Templates>();
    assert_send_sync::<TemplateError>();
}

#[test]
fn non_utf8_template_is_a_read_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("T-3.email.txt");
    fs::write(&file, b"Halo \xff\xfe").unwrap();
    let err = Templates::load(COMPANY, Some(dir.path()), &stages(DEFAULT_STAGES))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("{}: cannot read template", file.display())),
        "{err}"
    );
}

#[test]
fn a_grouped_message_lists_each_invoice_with_its_stage_wording_and_link_then_the_total() {
    let t = Templates::builtin("Wikarta Provider");
    let item = |number: &str, amount: i64, due: time::Date, s: &str, url: Option<&str>| GroupItem {
        stage: stage(s),
        facts: InvoiceFacts {
            customer_name: "Budi\nSantoso".into(),
            invoice_number: number.into(),
            amount,
            due_date: due,
        },
        payment_url: url.map(str::to_owned),
    };
    let items = [
        item(
            "INV-1",
            250_000,
            date!(2025 - 11 - 12),
            "T+3",
            Some("https://pay.example.id/1"),
        ),
        item("INV-2", 150_000, date!(2025 - 11 - 15), "T+0", None),
        item("INV-3", 1_000_000, date!(2025 - 11 - 16), "T-1", None),
        item(
            "INV-4",
            99_000,
            date!(2025 - 11 - 22),
            "T-7",
            Some("https://pay.example.id/4"),
        ),
    ];
    let r = t
        .render_group(Channel::WhatsApp, "Budi\nSantoso", &items)
        .unwrap();
    assert_eq!(r.subject, "Peringatan Tunggakan 4 Tagihan ⚠️");
    assert_eq!(
        r.body,
        "Halo Budi Santoso,

Kami ingin mengingatkan 4 tagihan Anda yang belum dibayar:
1. Tagihan INV-1 sebesar Rp 250.000 telah melewati jatuh tempo pada 12 November 2025.
   Bayar: https://pay.example.id/1
2. Tagihan INV-2 sebesar Rp 150.000 jatuh tempo hari ini, 15 November 2025.
3. Tagihan INV-3 sebesar Rp 1.000.000 jatuh tempo besok, 16 November 2025.
4. Tagihan INV-4 sebesar Rp 99.000 akan jatuh tempo pada 22 November 2025.
   Bayar: https://pay.example.id/4

Total: Rp 1.499.000
Mohon segera menyelesaikan pembayaran agar layanan Anda tetap aktif tanpa gangguan.

Jika Anda sudah melakukan pembayaran, abaikan pesan ini.
Terima kasih atas kerja sama dan kepercayaannya.

Salam,
Tim Wikarta Provider"
    );
    let before = t.render_group(Channel::Email, "Budi", &items[2..]).unwrap();
    assert_eq!(before.subject, "Pengingat Pembayaran 2 Tagihan 🕒");
}

fn group_items() -> Vec<GroupItem> {
    vec![
        GroupItem {
            stage: stage("T+3"),
            facts: InvoiceFacts {
                invoice_number: "INV-1".into(),
                amount: 250_000,
                due_date: date!(2025 - 11 - 12),
                ..seed_facts()
            },
            payment_url: Some("https://pay.example.id/1".into()),
        },
        GroupItem {
            stage: stage("T-3"),
            facts: InvoiceFacts {
                invoice_number: "INV-2".into(),
                ..seed_facts()
            },
            payment_url: None,
        },
    ]
}

#[test]
fn grouped_messages_can_be_overridden_like_the_others() {
    let (dir, loaded) = load_with(
        &[
            (
                "grouped.whatsapp.txt",
                "Yth. {{ customer_name }}, {{ count }} tagihan:\r\n{% for r in reminders %}\r\n- {{ r.invoice_number }} {{ r.amount }} ({{ r.stage }})\r\n{% if r.payment_url %}\r\n  {{ r.payment_url }}\r\n{% endif %}\r\n{% endfor %}\r\nTotal {{ total }}\r\n\r\n",
            ),
            (
                "grouped.email.subject.txt",
                "{{ count }} tagihan {% if overdue %}lewat{% else %}segera{% endif %} - {{ company_name }}",
            ),
        ],
        DEFAULT_STAGES,
    );
    let t = loaded.unwrap();
    let wa = t
        .render_group(Channel::WhatsApp, "Budi", &group_items())
        .unwrap();
    assert_eq!(
        wa.body,
        "Yth. Budi, 2 tagihan:\n- INV-1 Rp 250.000 (T+3)\n  https://pay.example.id/1\n- INV-2 Rp 150.000 (T-3)\nTotal Rp 400.000"
    );
    let email = t
        .render_group(Channel::Email, "Budi", &group_items())
        .unwrap();
    assert_eq!(email.subject, "2 tagihan lewat - Wikarta Provider");
    // No grouped.email.txt: the email body stays the built-in text.
    assert!(
        email
            .body
            .starts_with("Halo Budi,\n\nKami ingin mengingatkan 2 tagihan"),
        "{}",
        email.body
    );
    // A single-invoice message is not affected.
    assert_eq!(render(&t, "T-3", Channel::WhatsApp).body, SEED_BODY);
    let origin = |name: &str| {
        t.sources()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o)
            .unwrap()
    };
    let path = |file: &str| dir.path().join(file).display().to_string();
    assert_eq!(origin("grouped.whatsapp.txt"), path("grouped.whatsapp.txt"));
    assert_eq!(
        origin("grouped.email.subject.txt"),
        path("grouped.email.subject.txt")
    );
    assert_eq!(origin("grouped.email.txt"), BUILT_IN);
}

#[test]
fn a_broken_grouped_override_stops_the_load_naming_the_file_and_the_fix() {
    // A single-invoice variable is not a grouped one: named with the grouped list.
    let (dir, err) = load_err(&[(
        "grouped.whatsapp.txt",
        "Halo {{ customer_name }}\nTagihan {{ invoice_number }}",
    )]);
    let file = dir
        .path()
        .join("grouped.whatsapp.txt")
        .display()
        .to_string();
    assert!(
        err.starts_with(&format!("{file}:2: unknown variable invoice_number;")),
        "{err}"
    );
    assert!(
        err.contains("available variables: customer_name, count, total"),
        "{err}"
    );
    // A misspelt attribute of an invoice in the list fails when rendered.
    let (_dir, err) = load_err(&[(
        "grouped.email.txt",
        "{% for r in reminders %}\n{{ r.nomor }}\n{% endfor %}",
    )]);
    assert!(err.contains("grouped.email.txt:2:"), "{err}");
    assert!(err.contains("undefined"), "{err}");
    // A subject stays one line; syntax errors name the line.
    let (_dir, err) = load_err(&[(
        "grouped.email.subject.txt",
        "{{ count }} tagihan\n{{ total }}",
    )]);
    assert!(
        err.contains("a subject must be a single line (for a sample group of 2 invoices)"),
        "{err}"
    );
    let (_dir, err) = load_err(&[("grouped.whatsapp.txt", "ok\n{% for r in reminders %}")]);
    assert!(
        err.contains("grouped.whatsapp.txt:2:") && err.contains("syntax error"),
        "{err}"
    );
    // WhatsApp has no subject; the built-in names are not override names.
    for name in ["grouped.whatsapp.subject.txt", "grouped.txt"] {
        let (_dir, err) = load_err(&[(name, "x")]);
        assert!(err.contains("not a template file name"), "{err}");
        assert!(err.contains("grouped.email.subject.txt"), "{err}");
    }
}
