//! Payment settings from the environment (and `.env`, loaded by the binaries).
//! Pure: parsing takes a lookup function.

use dunning_core::config::{ConfigError, Secret};

/// Every variable [`PaymentSettings`] reads, for documentation checks.
pub const VARIABLES: &[&str] = &[
    "PAYMENT_LINK",
    "PAYMENT_URL_TEMPLATE",
    "XENDIT_API_URL",
    "XENDIT_SECRET_KEY",
    "XENDIT_CALLBACK_TOKEN",
    "MIDTRANS_API_URL",
    "MIDTRANS_SERVER_KEY",
    "TRIPAY_API_URL",
    "TRIPAY_API_KEY",
    "TRIPAY_PRIVATE_KEY",
    "TRIPAY_MERCHANT_CODE",
    "TRIPAY_METHOD",
    "DUNNING_RECEIPTS",
];

/// Which payment link a reminder carries (`PAYMENT_LINK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkMode {
    /// No link: the messages stay as they are.
    None,
    /// `PAYMENT_URL_TEMPLATE` with `{number}` replaced by the invoice number.
    Template(String),
    /// A hosted page created through the gateway's API.
    Gateway(Gateway),
}

/// A payment gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gateway {
    Xendit,
    Midtrans,
    Tripay,
}

impl Gateway {
    /// The name used in URLs, tables and logs.
    pub fn name(self) -> &'static str {
        match self {
            Gateway::Xendit => "xendit",
            Gateway::Midtrans => "midtrans",
            Gateway::Tripay => "tripay",
        }
    }
}

impl std::fmt::Display for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Xendit: invoices API and invoice callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenditSettings {
    pub api_url: String,
    pub secret_key: Secret,
    /// The callback verification token (Dashboard → Settings → Webhooks).
    pub callback_token: Secret,
}

/// Midtrans: Snap API and HTTP notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MidtransSettings {
    /// Snap base URL (`https://app.midtrans.com`, sandbox `https://app.sandbox.midtrans.com`).
    pub api_url: String,
    pub server_key: Secret,
}

/// Tripay: closed payment transactions and callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TripaySettings {
    /// `https://tripay.co.id/api`, sandbox `https://tripay.co.id/api-sandbox`.
    pub api_url: String,
    pub api_key: Secret,
    pub private_key: Secret,
    pub merchant_code: String,
    /// Payment channel code, e.g. `QRIS` or `BRIVA`.
    pub method: String,
}

/// Everything about payment links and gateway callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSettings {
    pub link: LinkMode,
    pub xendit: XenditSettings,
    pub midtrans: MidtransSettings,
    pub tripay: TripaySettings,
    /// `DUNNING_RECEIPTS` (default on): a receipt per channel once an invoice is paid.
    pub receipts: bool,
}

fn var(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn url(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let value = var(lookup, name).unwrap_or_else(|| default.to_owned());
    if !(value.starts_with("https://") || value.starts_with("http://")) {
        return Err(ConfigError::Invalid {
            var: name,
            value,
            hint: format!("an http(s) base URL, e.g. {default}"),
        });
    }
    Ok(value.trim_end_matches('/').to_owned())
}

impl PaymentSettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `lookup`. A gateway chosen by `PAYMENT_LINK` must
    /// have its keys; callback secrets are optional here (a callback for a gateway
    /// without its secret is refused by `dunning-web`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let secret = |name: &str| Secret::new(var(&lookup, name).unwrap_or_default());
        let xendit = XenditSettings {
            api_url: url(&lookup, "XENDIT_API_URL", "https://api.xendit.co")?,
            secret_key: secret("XENDIT_SECRET_KEY"),
            callback_token: secret("XENDIT_CALLBACK_TOKEN"),
        };
        let midtrans = MidtransSettings {
            api_url: url(&lookup, "MIDTRANS_API_URL", "https://app.midtrans.com")?,
            server_key: secret("MIDTRANS_SERVER_KEY"),
        };
        let tripay = TripaySettings {
            api_url: url(&lookup, "TRIPAY_API_URL", "https://tripay.co.id/api")?,
            api_key: secret("TRIPAY_API_KEY"),
            private_key: secret("TRIPAY_PRIVATE_KEY"),
            merchant_code: var(&lookup, "TRIPAY_MERCHANT_CODE").unwrap_or_default(),
            method: var(&lookup, "TRIPAY_METHOD").unwrap_or_else(|| "QRIS".into()),
        };
        let missing = |name: &'static str, hint: &str| ConfigError::Missing {
            var: name,
            hint: hint.to_owned(),
        };
        let link = match var(&lookup, "PAYMENT_LINK")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("none") => LinkMode::None,
            Some("template") => {
                let t = var(&lookup, "PAYMENT_URL_TEMPLATE").ok_or_else(|| {
                    missing(
                        "PAYMENT_URL_TEMPLATE",
                        "PAYMENT_LINK=template needs it, e.g. https://billing.example.id/bayar/{number}",
                    )
                })?;
                if !t.contains("{number}") {
                    return Err(ConfigError::Invalid {
                        var: "PAYMENT_URL_TEMPLATE",
                        value: t,
                        hint: "write {number} where the invoice number goes, e.g. https://billing.example.id/bayar/{number}".into(),
                    });
                }
                LinkMode::Template(t)
            }
            Some("xendit") => {
                if xendit.secret_key.is_empty() {
                    return Err(missing(
                        "XENDIT_SECRET_KEY",
                        "PAYMENT_LINK=xendit needs it: Xendit Dashboard → Settings → API Keys (a key with Money-in write permission)",
                    ));
                }
                LinkMode::Gateway(Gateway::Xendit)
            }
            Some("midtrans") => {
                if midtrans.server_key.is_empty() {
                    return Err(missing(
                        "MIDTRANS_SERVER_KEY",
                        "PAYMENT_LINK=midtrans needs it: Midtrans Dashboard → Settings → Access Keys (Server Key)",
                    ));
                }
                LinkMode::Gateway(Gateway::Midtrans)
            }
            Some("tripay") => {
                for (name, empty) in [
                    ("TRIPAY_API_KEY", tripay.api_key.is_empty()),
                    ("TRIPAY_PRIVATE_KEY", tripay.private_key.is_empty()),
                    ("TRIPAY_MERCHANT_CODE", tripay.merchant_code.is_empty()),
                ] {
                    if empty {
                        return Err(missing(
                            name,
                            "PAYMENT_LINK=tripay needs TRIPAY_API_KEY, TRIPAY_PRIVATE_KEY and TRIPAY_MERCHANT_CODE: Tripay merchant page → API & Integrasi",
                        ));
                    }
                }
                LinkMode::Gateway(Gateway::Tripay)
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "PAYMENT_LINK",
                    value: other.to_owned(),
                    hint: "use none, template, xendit, midtrans or tripay".into(),
                });
            }
        };
        let receipts = match var(&lookup, "DUNNING_RECEIPTS")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "DUNNING_RECEIPTS",
                    value: other.to_owned(),
                    hint: "use on (a receipt once an invoice is paid, the default) or off".into(),
                });
            }
        };
        Ok(PaymentSettings {
            link,
            xendit,
            midtrans,
            tripay,
            receipts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<PaymentSettings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        PaymentSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn default_is_no_link() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.link, LinkMode::None);
        assert_eq!(s.xendit.api_url, "https://api.xendit.co");
        assert_eq!(s.tripay.method, "QRIS");
        assert!(s.receipts);
        assert!(!settings(&[("DUNNING_RECEIPTS", "OFF")]).unwrap().receipts);
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("PAYMENT_LINK", "paypal")], "PAYMENT_LINK"),
            (&[("PAYMENT_LINK", "template")], "PAYMENT_URL_TEMPLATE"),
            (
                &[
                    ("PAYMENT_LINK", "template"),
                    ("PAYMENT_URL_TEMPLATE", "https://x/bayar"),
                ],
                "PAYMENT_URL_TEMPLATE",
            ),
            (&[("PAYMENT_LINK", "xendit")], "XENDIT_SECRET_KEY"),
            (&[("PAYMENT_LINK", "midtrans")], "MIDTRANS_SERVER_KEY"),
            (&[("PAYMENT_LINK", "tripay")], "TRIPAY_API_KEY"),
            (&[("XENDIT_API_URL", "api.xendit.co")], "XENDIT_API_URL"),
            (&[("DUNNING_RECEIPTS", "nein")], "DUNNING_RECEIPTS"),
        ];
        for (vars, var) in cases {
            let err = settings(vars).unwrap_err();
            assert_eq!(err.var(), *var, "{vars:?}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let s = settings(&[
            ("PAYMENT_LINK", "midtrans"),
            ("MIDTRANS_SERVER_KEY", "SB-Mid-server-topsecret"),
            ("XENDIT_CALLBACK_TOKEN", "xnd-cb-topsecret"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("topsecret"), "{shown}");
    }
}
