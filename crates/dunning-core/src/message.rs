//! The reminder messages customers receive, rendered from templates.
//!
//! Default templates reproduce the seed's text word for word for the stages before
//! the due date; stages after it carry an overdue warning. Operators can override
//! any of them with files in `DUNNING_TEMPLATES_DIR`.

use minijinja::{Environment, UndefinedBehavior, context};
use time::Date;

use crate::channel::Channel;
use crate::format::{rupiah, tanggal};
use crate::stage::Stage;

/// The invoice facts a message is rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceFacts {
    pub customer_name: String,
    pub invoice_number: String,
    pub amount: i64,
    pub due_date: Date,
}

/// A rendered message. `subject` is used by email only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// A template that does not parse or uses an unknown variable.
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {detail}")]
pub struct TemplateError {
    pub name: String,
    pub detail: String,
}

const BODY_BEFORE_DUE: &str = "Halo {{ customer_name }},

Kami ingin mengingatkan bahwa tagihan {{ invoice_number }} sebesar {{ amount }} akan jatuh tempo pada {{ due_date }}.
Mohon segera menyelesaikan pembayaran agar layanan Anda tetap aktif tanpa gangguan.

Jika Anda sudah melakukan pembayaran, abaikan pesan ini.
Terima kasih atas kerja sama dan kepercayaannya.

Salam,
Tim {{ company_name }}";

const BODY_OVERDUE: &str = "Halo {{ customer_name }},

Tagihan {{ invoice_number }} sebesar {{ amount }} telah melewati jatuh tempo pada {{ due_date }}.
Mohon segera melakukan pembayaran untuk menghindari gangguan pada layanan Anda.

Jika Anda sudah melakukan pembayaran, abaikan pesan ini.
Terima kasih atas kerja sama dan kepercayaannya.

Salam,
Tim {{ company_name }}";

const SUBJECT_BEFORE_DUE: &str = "Pengingat Pembayaran Tagihan {{ invoice_number }} 🕒";
const SUBJECT_OVERDUE: &str = "Peringatan Tunggakan Tagihan {{ invoice_number }} ⚠️";

/// The message templates in use.
pub struct Templates {
    env: Environment<'static>,
    company_name: String,
}

impl Templates {
    /// The built-in templates.
    pub fn builtin(company_name: &str) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(false);
        for (name, src) in [
            ("body_before_due", BODY_BEFORE_DUE),
            ("body_overdue", BODY_OVERDUE),
            ("subject_before_due", SUBJECT_BEFORE_DUE),
            ("subject_overdue", SUBJECT_OVERDUE),
        ] {
            env.add_template(name, src)
                .expect("built-in templates parse");
        }
        Templates {
            env,
            company_name: company_name.to_owned(),
        }
    }

    /// Renders the message for `stage` on `channel`.
    pub fn render(
        &self,
        stage: Stage,
        _channel: Channel,
        facts: &InvoiceFacts,
    ) -> Result<Rendered, TemplateError> {
        let (body, subject) = if stage.is_overdue() {
            ("body_overdue", "subject_overdue")
        } else {
            ("body_before_due", "subject_before_due")
        };
        let ctx = context! {
            customer_name => facts.customer_name.as_str(),
            invoice_number => facts.invoice_number.as_str(),
            amount => rupiah(facts.amount),
            due_date => tanggal(facts.due_date),
            company_name => self.company_name.as_str(),
            stage => stage.to_string(),
        };
        let render = |name: &str| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| TemplateError {
                    name: name.to_owned(),
                    detail: e.to_string(),
                })
        };
        Ok(Rendered {
            subject: render(subject)?,
            body: render(body)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn seed_facts() -> InvoiceFacts {
        InvoiceFacts {
            customer_name: "[Nama Customer]".into(),
            invoice_number: "INV-20251115-123456".into(),
            amount: 150_000,
            due_date: date!(2025 - 11 - 18),
        }
    }

    #[test]
    fn seed_message_word_for_word() {
        let t = Templates::builtin("Wikarta Provider");
        let m = t
            .render("T-3".parse().unwrap(), Channel::Email, &seed_facts())
            .unwrap();
        assert_eq!(
            m.subject,
            "Pengingat Pembayaran Tagihan INV-20251115-123456 🕒"
        );
        let seed = "Halo [Nama Customer],

Kami ingin mengingatkan bahwa tagihan INV-20251115-123456 sebesar Rp 150.000 akan jatuh tempo pada 18 November 2025.
Mohon segera menyelesaikan pembayaran agar layanan Anda tetap aktif tanpa gangguan.

Jika Anda sudah melakukan pembayaran, abaikan pesan ini.
Terima kasih atas kerja sama dan kepercayaannya.

Salam,
Tim Wikarta Provider";
        assert_eq!(m.body, seed);
    }

    #[test]
    fn overdue_stage_warns_instead() {
        let t = Templates::builtin("Wikarta Provider");
        let m = t
            .render("T+3".parse().unwrap(), Channel::WhatsApp, &seed_facts())
            .unwrap();
        assert!(m.body.contains("telah melewati jatuh tempo"));
        assert!(!m.body.contains("akan jatuh tempo"));
        assert!(m.subject.starts_with("Peringatan Tunggakan Tagihan"));
    }
}
