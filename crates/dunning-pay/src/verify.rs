//! Authentication of gateway callbacks: pure functions over the raw request, each
//! comparing in constant time. A callback is authenticated before its JSON is
//! parsed (Xendit: a header token; Tripay: an HMAC of the raw body); Midtrans puts
//! its signature inside the JSON, see [`crate::callback::midtrans_auth_fields`].

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use dunning_core::config::Secret;

/// Xendit: the `x-callback-token` header equals the account's callback
/// verification token. An unset token matches nothing.
pub fn xendit_token_ok(expected: &Secret, header: Option<&[u8]>) -> bool {
    match header {
        Some(got) if !expected.is_empty() => expected.expose().as_bytes().ct_eq(got).into(),
        _ => false,
    }
}

/// Midtrans: `signature_key` = hex SHA-512 of `order_id + status_code + gross_amount
/// + ServerKey`.
pub fn midtrans_signature(
    order_id: &str,
    status_code: &str,
    gross_amount: &str,
    server_key: &Secret,
) -> String {
    let mut h = Sha512::new();
    h.update(order_id.as_bytes());
    h.update(status_code.as_bytes());
    h.update(gross_amount.as_bytes());
    h.update(server_key.expose().as_bytes());
    hex::encode(h.finalize())
}

/// Midtrans: the notification's `signature_key` is right for its fields.
pub fn midtrans_signature_ok(
    order_id: &str,
    status_code: &str,
    gross_amount: &str,
    signature_key: &str,
    server_key: &Secret,
) -> bool {
    if server_key.is_empty() {
        return false;
    }
    let Ok(given) = hex::decode(signature_key.trim()) else {
        return false;
    };
    let mut h = Sha512::new();
    h.update(order_id.as_bytes());
    h.update(status_code.as_bytes());
    h.update(gross_amount.as_bytes());
    h.update(server_key.expose().as_bytes());
    h.finalize().as_slice().ct_eq(&given).into()
}

fn hmac_sha256(key: &Secret) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).expect("HMAC takes keys of any length")
}

/// Tripay: `X-Callback-Signature` = hex HMAC-SHA256 of the raw body with the
/// private key (checked with `hmac`'s constant-time `verify_slice`).
pub fn tripay_callback_ok(raw_body: &[u8], header: Option<&[u8]>, private_key: &Secret) -> bool {
    if private_key.is_empty() {
        return false;
    }
    let Some(Ok(given)) = header.map(|h| hex::decode(h.trim_ascii())) else {
        return false;
    };
    let mut mac = hmac_sha256(private_key);
    mac.update(raw_body);
    mac.verify_slice(&given).is_ok()
}

/// Tripay: the `signature` of a transaction request = hex HMAC-SHA256 of
/// `merchant_code + merchant_ref + amount` with the private key.
pub fn tripay_request_signature(
    merchant_code: &str,
    merchant_ref: &str,
    amount: i64,
    private_key: &Secret,
) -> String {
    let mut mac = hmac_sha256(private_key);
    mac.update(merchant_code.as_bytes());
    mac.update(merchant_ref.as_bytes());
    mac.update(amount.to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixed vectors computed with the openssl command line, independently of this code:
    //   printf 'INV-1200150000.00SB-Mid-server-key' | openssl dgst -sha512
    //   printf '{"reference":"T1","status":"PAID"}' | openssl dgst -sha256 -hmac 'priv-key'
    //   printf 'T0001INV-1150000' | openssl dgst -sha256 -hmac 'priv-key'
    const MIDTRANS_VECTOR: &str = "1d6b9f7919cf47a6d8c6e728212be28a37b585883ed533c50ff333d4049be7e30f8a2f42c8db7be0f18fd27d2375f076343f542000d83fedd817460f17b359d3";
    const TRIPAY_CALLBACK_VECTOR: &str =
        "3a6d1edd20a9143be12bb4c75415476257d1c0afaf6ab78176dee24b590b19ad";
    const TRIPAY_REQUEST_VECTOR: &str =
        "c1c5a43284286177b9811cf5249ab742c9a872d76d551c9c96bc5bf180b6e84b";

    #[test]
    fn midtrans_matches_openssl_vector() {
        let key = Secret::new("SB-Mid-server-key");
        assert_eq!(
            midtrans_signature("INV-1", "200", "150000.00", &key),
            MIDTRANS_VECTOR
        );
        assert!(midtrans_signature_ok(
            "INV-1",
            "200",
            "150000.00",
            MIDTRANS_VECTOR,
            &key
        ));
        assert!(!midtrans_signature_ok(
            "INV-1",
            "200",
            "15000.00",
            MIDTRANS_VECTOR,
            &key
        ));
        assert!(!midtrans_signature_ok(
            "INV-1",
            "200",
            "150000.00",
            "zz",
            &key
        ));
        assert!(!midtrans_signature_ok(
            "INV-1",
            "200",
            "150000.00",
            MIDTRANS_VECTOR,
            &Secret::default()
        ));
    }

    #[test]
    fn tripay_matches_openssl_vectors() {
        let key = Secret::new("priv-key");
        let body = br#"{"reference":"T1","status":"PAID"}"#;
        assert!(tripay_callback_ok(
            body,
            Some(TRIPAY_CALLBACK_VECTOR.as_bytes()),
            &key
        ));
        assert!(!tripay_callback_ok(
            b"{\"reference\":\"T1\",\"status\":\"PAID\"} ",
            Some(TRIPAY_CALLBACK_VECTOR.as_bytes()),
            &key
        ));
        assert!(!tripay_callback_ok(body, None, &key));
        assert!(!tripay_callback_ok(
            body,
            Some(TRIPAY_CALLBACK_VECTOR.as_bytes()),
            &Secret::default()
        ));
        assert_eq!(
            tripay_request_signature("T0001", "INV-1", 150000, &key),
            TRIPAY_REQUEST_VECTOR
        );
    }

    #[test]
    fn xendit_token_needs_exact_match() {
        let t = Secret::new("tok-123");
        assert!(xendit_token_ok(&t, Some(b"tok-123")));
        assert!(!xendit_token_ok(&t, Some(b"tok-12")));
        assert!(!xendit_token_ok(&t, None));
        assert!(!xendit_token_ok(&Secret::default(), Some(b"")));
    }
}
