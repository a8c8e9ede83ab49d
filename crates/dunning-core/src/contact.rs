//! Customer contact details: Indonesian WhatsApp numbers and email addresses.
//!
//! Pure validation, no I/O. Both channels and the customer import call these, so a
//! number that passes here is exactly the number Fonnte receives.
//!
//! # Phone numbers
//!
//! Output is always the international form without `+`: `62` followed by the national
//! number, e.g. `6285707211646`, which is what Fonnte expects with `countryCode=0`.
//!
//! Accepted input, after removing spaces, `-`, `.`, `(` and `)`:
//! - `+62…` or `0062…`: the international form (`+62 0857…`, a stray trunk `0`, is
//!   tolerated);
//! - `0…`: the national form with the trunk prefix (`0857…`);
//! - `62…`: the international form without `+` (what this function returns);
//! - `8…`: the national number without the trunk prefix, as customers often type it.
//!
//! The national number must be a mobile number: `8` followed by 8 to 11 digits
//! (`0812-345-678` is the shortest old allocation, `0812-3456-78901` the longest),
//! so the result is 11 to 14 digits long. Landlines (`021…`) cannot use WhatsApp here.
//!
//! Any other country code (`+81…`, `001…`, `+1…`) is rejected, never rewritten: a
//! blind rewrite would turn a foreign number into the number of a stranger in
//! Indonesia. A number starting with another digit and no `+` is rejected too.
//! The one ambiguity is unavoidable: `81…` without `+` is read as an Indonesian
//! `081…` number, because that is how Indonesian customers write it.

use std::fmt;

/// The longest input quoted back in an error message.
const QUOTE_MAX: usize = 40;

/// Digits after `8` in an Indonesian mobile number.
const MOBILE_REST_DIGITS: std::ops::RangeInclusive<usize> = 8..=11;

/// A phone number or email address we cannot send to. The message names the value and
/// how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    /// No phone number given.
    #[error("phone number is empty: enter an Indonesian mobile number such as 085707211646")]
    EmptyPhone,
    /// The phone number contains something other than digits and separators.
    #[error(
        "phone number {0} contains {1:?}: use digits only (spaces, -, (, ) and a leading + are allowed), e.g. 085707211646"
    )]
    PhoneCharacter(Quoted, char),
    /// The phone number has a country code other than Indonesia's.
    #[error(
        "phone number {0} is not an Indonesian number (country code +62): only Indonesian WhatsApp numbers can be reached; correct the customer's number"
    )]
    ForeignPhone(Quoted),
    /// The phone number is not an Indonesian mobile number (a landline, or a typo).
    #[error(
        "phone number {0} is not an Indonesian mobile number: mobile numbers start with 08 (or +62 8), e.g. 085707211646"
    )]
    NotMobile(Quoted),
    /// The phone number has too few or too many digits.
    #[error(
        "phone number {number} has {digits} digits after the leading 08, but Indonesian mobile numbers have 8 to 11 (e.g. 0857-0721-1646): check for a missing or extra digit"
    )]
    PhoneLength {
        /// The number as given.
        number: Quoted,
        /// Digits after the leading `8`.
        digits: usize,
    },
    /// No email address given.
    #[error("email address is empty: enter an address such as customer@example.com")]
    EmptyEmail,
    /// The email address is malformed.
    #[error("email address {address} is invalid: {problem}")]
    Email {
        /// The address as given.
        address: Quoted,
        /// What is wrong and how to fix it.
        problem: &'static str,
    },
}

/// A user-supplied value quoted in an error: shown with escapes (so CR/LF cannot
/// forge log lines) and shortened when very long.
#[derive(Clone, PartialEq, Eq)]
pub struct Quoted(String);

impl Quoted {
    fn new(s: &str) -> Self {
        let mut out: String = s.chars().take(QUOTE_MAX).collect();
        if s.chars().nth(QUOTE_MAX).is_some() {
            out.push('…');
        }
        Quoted(out)
    }

    /// The (possibly shortened) value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Debug for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Normalises an Indonesian mobile number to `628…` (digits only), the form Fonnte
/// receives. See the module documentation for the accepted forms and the rule.
pub fn normalize_phone(input: &str) -> Result<String, ContactError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(ContactError::EmptyPhone);
    }
    let quoted = || Quoted::new(trimmed);
    let mut digits = String::with_capacity(trimmed.len());
    let mut plus = false;
    for (i, c) in trimmed.char_indices() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            '+' if i == 0 => plus = true,
            _ => return Err(ContactError::PhoneCharacter(quoted(), c)),
        }
    }
    if digits.is_empty() {
        return Err(ContactError::EmptyPhone);
    }

    let national = if plus {
        digits
            .strip_prefix("62")
            .ok_or_else(|| ContactError::ForeignPhone(quoted()))?
    } else if let Some(international) = digits.strip_prefix("00") {
        international
            .strip_prefix("62")
            .ok_or_else(|| ContactError::ForeignPhone(quoted()))?
    } else if let Some(rest) = digits.strip_prefix('0') {
        rest
    } else if let Some(rest) = digits.strip_prefix("62") {
        rest
    } else if digits.starts_with('8') {
        digits.as_str()
    } else {
        // `1…`, `44…`: most likely a foreign number written without `+`.
        return Err(ContactError::NotMobile(quoted()));
    };
    // `+62 (0) 857…`: the trunk prefix written after the country code.
    let national = match national.strip_prefix('0') {
        Some(rest) if rest.starts_with('8') => rest,
        _ => national,
    };

    let Some(rest) = national.strip_prefix('8') else {
        return Err(ContactError::NotMobile(quoted()));
    };
    if !MOBILE_REST_DIGITS.contains(&rest.len()) {
        return Err(ContactError::PhoneLength {
            number: quoted(),
            digits: rest.len(),
        });
    }
    Ok(format!("628{rest}"))
}

/// Checks an email address before it goes into a `To:` header and an SMTP envelope.
///
/// Deliberately stricter than RFC 5322: one `@`, an ASCII dot-atom local part, a
/// domain with at least one dot, no spaces or control characters anywhere. Quoted
/// local parts and address literals are legal but never real customer addresses.
pub fn validate_email(input: &str) -> Result<(), ContactError> {
    if input.trim().is_empty() {
        return Err(ContactError::EmptyEmail);
    }
    let bad = |problem: &'static str| ContactError::Email {
        address: Quoted::new(input),
        problem,
    };
    if input.chars().any(|c| c.is_control()) {
        return Err(bad(
            "it contains a line break or control character; remove it",
        ));
    }
    if input.chars().any(char::is_whitespace) {
        return Err(bad("it contains a space; remove the spaces"));
    }
    if input.len() > 254 {
        return Err(bad("it is longer than 254 characters"));
    }
    let Some((local, domain)) = input.split_once('@') else {
        return Err(bad("it has no @; write it as name@example.com"));
    };
    if domain.contains('@') {
        return Err(bad(
            "it has more than one @; enter a single address (one address per field)",
        ));
    }
    if local.is_empty() {
        return Err(bad("nothing before the @; write it as name@example.com"));
    }
    if local.len() > 64 {
        return Err(bad("the part before the @ is longer than 64 characters"));
    }
    const LOCAL_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~.-";
    if !local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(c))
    {
        return Err(bad(
            "the part before the @ may only contain letters, digits and . _ - + (and other plain ASCII symbols)",
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(bad(
            "the part before the @ has a misplaced dot (leading, trailing or ..)",
        ));
    }
    if domain.is_empty() {
        return Err(bad(
            "nothing after the @; add the domain, e.g. name@gmail.com",
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(bad(
            "the domain has no dot; check for a typo, e.g. gmail.com",
        ));
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err(bad(
                "the domain has an empty or overlong part (check for .. or a trailing dot)",
            ));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(bad(
                "the domain may only contain letters, digits, - and dots, e.g. gmail.com",
            ));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(bad(
            "the domain must be a name such as gmail.com, not an IP address",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_every_indonesian_form() {
        for input in [
            "085707211646",
            "85707211646",
            "6285707211646",
            "+62 857-0721-1646",
            "(0857) 0721 1646",
            "+6285707211646",
            "0062 857 0721 1646",
            "+62 (0) 857 0721 1646",
            "  0857.0721.1646  ",
            "62 0857 0721 1646",
        ] {
            assert_eq!(
                normalize_phone(input).as_deref(),
                Ok("6285707211646"),
                "{input}"
            );
        }
    }

    #[test]
    fn length_limits() {
        // 8 + 8 digits: the shortest old allocation.
        assert_eq!(normalize_phone("0812345678").unwrap(), "62812345678");
        // 8 + 11 digits.
        assert_eq!(
            normalize_phone("0812 3456 78901").unwrap(),
            "62812345678901"
        );
        let short = normalize_phone("081234567").unwrap_err();
        assert_eq!(
            short,
            ContactError::PhoneLength {
                number: Quoted::new("081234567"),
                digits: 7
            }
        );
        assert!(short.to_string().contains("\"081234567\""));
        assert!(matches!(
            normalize_phone("0812345678901234"),
            Err(ContactError::PhoneLength { digits: 14, .. })
        ));
    }

    #[test]
    fn rejects_foreign_numbers_without_rewriting() {
        for input in [
            "+81 90-1234-5678",
            "+1 415 555 0100",
            "+6585707211",
            "001 81 90 1234 5678",
            "0081 90 1234 5678",
        ] {
            let err = normalize_phone(input).unwrap_err();
            assert!(
                matches!(err, ContactError::ForeignPhone(_)),
                "{input}: {err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains(input.trim()) && text.contains("+62"),
                "{text}"
            );
        }
        // No `+`, not starting with 0, 62 or 8: not something we can interpret.
        assert!(matches!(
            normalize_phone("4155550100"),
            Err(ContactError::NotMobile(_))
        ));
    }

    #[test]
    fn rejects_landlines_letters_and_empty() {
        assert!(matches!(
            normalize_phone("021 555 1234"),
            Err(ContactError::NotMobile(_))
        ));
        assert!(matches!(
            normalize_phone("+62 21 555 1234"),
            Err(ContactError::NotMobile(_))
        ));
        assert_eq!(
            normalize_phone("0857O7211646"),
            Err(ContactError::PhoneCharacter(
                Quoted::new("0857O7211646"),
                'O'
            ))
        );
        assert!(matches!(
            normalize_phone("0857+07211646"),
            Err(ContactError::PhoneCharacter(_, '+'))
        ));
        assert_eq!(normalize_phone(""), Err(ContactError::EmptyPhone));
        assert_eq!(normalize_phone(" - "), Err(ContactError::EmptyPhone));
        assert!(matches!(
            normalize_phone("0857\r\n0721"),
            Err(ContactError::PhoneCharacter(_, '\r'))
        ));
    }

    #[test]
    fn errors_quote_safely() {
        let err = normalize_phone(&format!("08\n{}", "x".repeat(500))).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains('\n'));
        assert!(text.len() < 300, "{text}");
    }

    #[test]
    fn emails() {
        for ok in [
            "customer@email.com",
            "dimas.pratama+tagihan@gmail.com",
            "a_b-c@mail.wikarta.co.id",
        ] {
            assert_eq!(validate_email(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "  ",
            "customer",
            "customer@",
            "@email.com",
            "a@b@c.com",
            "cust omer@email.com",
            "customer@email.com\r\nBcc: victim@example.com",
            "customer@email.com ",
            "customer@localhost",
            "customer@email..com",
            "customer@-email.com",
            ".customer@email.com",
            "cust..omer@email.com",
            "<customer@email.com>",
            "Customer <customer@email.com>",
            "customer@email.com,other@email.com",
            "customer@[127.0.0.1]",
            "customer@1.2.3.4",
            "pelanggan@surél.id",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?} should be rejected");
        }
        let err = validate_email("customer").unwrap_err().to_string();
        assert!(err.contains("\"customer\"") && err.contains('@'), "{err}");
        assert!(validate_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    proptest! {
        #[test]
        fn normalize_never_panics_and_is_canonical(input in ".{0,40}") {
            if let Ok(n) = normalize_phone(&input) {
                prop_assert!(n.starts_with("628"));
                prop_assert!(n.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!((11..=14).contains(&n.len()));
                prop_assert_eq!(normalize_phone(&n), Ok(n.clone()));
            }
        }

        #[test]
        fn phone_like_inputs_are_canonical(input in "[+]?[0-9 ()-]{0,20}") {
            if let Ok(n) = normalize_phone(&input) {
                prop_assert!(n.starts_with("628"));
                prop_assert_eq!(normalize_phone(&n), Ok(n.clone()));
                prop_assert_eq!(normalize_phone(&format!("+{n}")), Ok(n.clone()));
                let national = format!("0{}", &n[2..]);
                prop_assert_eq!(normalize_phone(&national), Ok(n.clone()));
            }
        }

        #[test]
        fn every_valid_mobile_number_is_accepted(rest in "[0-9]{8,11}") {
            let want = format!("628{rest}");
            prop_assert_eq!(normalize_phone(&format!("08{rest}")), Ok(want.clone()));
            prop_assert_eq!(normalize_phone(&format!("+62 8{rest}")), Ok(want.clone()));
            prop_assert_eq!(normalize_phone(&format!("8{rest}")), Ok(want));
        }

        #[test]
        fn validate_email_never_panics(input in "\\PC{0,80}") {
            let _ = validate_email(&input);
        }

        #[test]
        fn valid_emails_have_no_header_breakers(input in ".{0,60}") {
            if validate_email(&input).is_ok() {
                prop_assert!(!input.contains(['\r', '\n', ' ', '<', '>', ',', '"']));
                prop_assert_eq!(input.matches('@').count(), 1);
            }
        }
    }
}
