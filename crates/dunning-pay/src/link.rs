//! The payment link of a reminder (`PAYMENT_LINK`).

use std::time::Duration;

use diesel::pg::PgConnection;
use time::OffsetDateTime;

use dunning_store::payments::{self, LinkStoreError};

use crate::client::{GatewayClient, LinkError};
use crate::config::{LinkMode, PaymentSettings};

/// A stored page is reused only while it stays valid this much longer, so that a
/// customer who opens the reminder a little later still finds a live page.
pub const REUSE_MARGIN: Duration = Duration::from_secs(2 * 3600);

/// Payment links for reminders: one per worker (it holds the HTTP agent).
pub struct Links {
    mode: LinkMode,
    client: GatewayClient,
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `PAYMENT_URL_TEMPLATE` with `{number}` replaced by the (percent-encoded) number.
pub fn template_url(template: &str, number: &str) -> String {
    template.replace("{number}", &encode_path(number))
}

impl Links {
    pub fn new(settings: &PaymentSettings) -> Self {
        Links {
            mode: settings.link.clone(),
            client: GatewayClient::new(settings),
        }
    }

    /// The link to put into a reminder of invoice `invoice_id`, or `None` with
    /// `PAYMENT_LINK=none` and for an invoice that is no longer unpaid.
    ///
    /// - `template`: the invoice's `payment_url` (written by billing or returned by the
    ///   source query), else `PAYMENT_URL_TEMPLATE` with the invoice number.
    /// - a gateway: the stored page while it is valid for [`REUSE_MARGIN`] more,
    ///   else a new one created through the gateway's API and stored
    ///   ([`payments::payment_link_for`]).
    ///
    /// An error means no link: send the reminder without it and record the error
    /// (its message names the gateway and the variable to check, never a key).
    pub fn link_for(
        &self,
        conn: &mut PgConnection,
        invoice_id: i64,
    ) -> Result<Option<String>, LinkError> {
        let gateway = match &self.mode {
            LinkMode::None => return Ok(None),
            LinkMode::Template(t) => {
                let link = payments::link_invoice(conn, invoice_id)?
                    .ok_or(LinkError::NoInvoice(invoice_id))?;
                // Billing's own link for this invoice wins over the template.
                return Ok(Some(
                    link.payment_url
                        .unwrap_or_else(|| template_url(t, &link.invoice.number)),
                ));
            }
            LinkMode::Gateway(g) => *g,
        };
        let invoice = payments::link_invoice(conn, invoice_id)?
            .ok_or(LinkError::NoInvoice(invoice_id))?
            .invoice;
        if invoice.status != "unpaid" {
            return Ok(None);
        }
        let now = OffsetDateTime::now_utc();
        let link = payments::payment_link_for(
            conn,
            &invoice,
            gateway.name(),
            now + REUSE_MARGIN,
            |order_id| self.client.create(gateway, &invoice, order_id, now),
        )
        .map_err(|e| match e {
            LinkStoreError::Store(s) => LinkError::Store(s),
            LinkStoreError::Create(c) => c,
        })?;
        Ok(Some(link.url))
    }

    /// The gateway's credential check ([`GatewayClient::check_credentials`]) for the
    /// configured gateway, or `None` when no gateway is configured.
    pub fn check_credentials(&self) -> Option<Result<String, LinkError>> {
        match &self.mode {
            LinkMode::Gateway(g) => Some(self.client.check_credentials(*g)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_encodes_the_number() {
        assert_eq!(
            template_url(
                "https://billing.example.id/bayar/{number}",
                "INV-20251115-123456"
            ),
            "https://billing.example.id/bayar/INV-20251115-123456"
        );
        assert_eq!(
            template_url("https://x/{number}?n={number}", "A/B 1"),
            "https://x/A%2FB%201?n=A%2FB%201"
        );
    }
}
