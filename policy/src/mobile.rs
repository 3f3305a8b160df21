//! Mobile numbers: a number is valid for SMS only in E.164 form (`+` then 7 to 15 digits, no leading 0).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A mobile number in E.164 form, e.g. `+15551234567`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

/// Why a mobile number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MobileError {
    /// No leading `+` country code.
    #[error("the mobile number must start with + and the country code, e.g. +15551234567")]
    MissingPlus,
    /// Something other than digits and separators.
    #[error("the mobile number may contain only digits, spaces, dots, dashes and parentheses")]
    BadCharacter,
    /// Too few or too many digits, or a leading zero country code.
    #[error("the mobile number must have 7 to 15 digits after the +, not starting with 0")]
    BadLength,
}

impl E164 {
    /// Parses what a person typed: separators (space, `.`, `-`, `(`, `)`) are dropped.
    pub fn parse(input: &str) -> Result<E164, MobileError> {
        let input = input.trim();
        let rest = input.strip_prefix('+').ok_or(MobileError::MissingPlus)?;
        let mut digits = String::with_capacity(rest.len() + 1);
        digits.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '.' | '-' | '(' | ')' => {}
                _ => return Err(MobileError::BadCharacter),
            }
        }
        let count = digits.len() - 1;
        if !(7..=15).contains(&count) || digits.as_bytes().get(1) == Some(&b'0') {
            return Err(MobileError::BadLength);
        }
        Ok(E164(digits))
    }

    /// The number as `+` and digits.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The country calling code (ITU-T E.164 assignments: `1` and `7` have one digit, the codes
    /// below have two, every other code has three).
    #[must_use]
    pub fn country_code(&self) -> &str {
        const TWO_DIGIT: [&str; 44] = [
            "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45",
            "46", "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61",
            "62", "63", "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94",
            "95", "98",
        ];
        let digits = &self.0[1..];
        let len = if digits.starts_with(['1', '7']) {
            1
        } else if TWO_DIGIT.contains(&&digits[..2]) {
            2
        } else {
            3
        };
        &digits[..len]
    }

    /// The country code and the last four digits, the rest hidden, for showing where a code
    /// went: `+1 ••• ••• 4567`.
    #[must_use]
    pub fn masked(&self) -> String {
        let tail = &self.0[self.0.len() - 4..];
        format!(
            "+{} \u{2022}\u{2022}\u{2022} \u{2022}\u{2022}\u{2022} {tail}",
            self.country_code()
        )
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", self.masked())
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for E164 {
    type Error = MobileError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        E164::parse(&s)
    }
}

impl From<E164> for String {
    fn from(n: E164) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_typed_forms() {
        assert_eq!(
            E164::parse("+1 (555) 123-4567").map(|n| n.0),
            Ok("+15551234567".to_string())
        );
        assert_eq!(
            E164::parse(" +44.20.7946.0958 ").map(|n| n.0),
            Ok("+442079460958".to_string())
        );
    }

    #[test]
    fn refuses_each_bad_form() {
        assert_eq!(E164::parse("5551234567"), Err(MobileError::MissingPlus));
        assert_eq!(E164::parse("+1555abc4567"), Err(MobileError::BadCharacter));
        assert_eq!(E164::parse("+123"), Err(MobileError::BadLength));
        assert_eq!(
            E164::parse("+1234567890123456"),
            Err(MobileError::BadLength)
        );
        assert_eq!(E164::parse("+0155512345"), Err(MobileError::BadLength));
        assert_eq!(E164::parse(""), Err(MobileError::MissingPlus));
    }

    #[test]
    fn masks_all_but_the_country_code_and_last_four() {
        let n = E164::parse("+15551234567").unwrap();
        assert_eq!(
            n.masked(),
            "+1 \u{2022}\u{2022}\u{2022} \u{2022}\u{2022}\u{2022} 4567"
        );
        assert!(!n.masked().contains("555"));
        assert!(!format!("{n:?}").contains("555"));
        for (number, code) in [
            ("+442079460958", "44"),
            ("+79161234567", "7"),
            ("+8613812345678", "86"),
            ("+353871234567", "353"),
            ("+2348031234567", "234"),
        ] {
            let n = E164::parse(number).unwrap();
            assert_eq!(n.country_code(), code, "{number}");
            assert!(n.masked().starts_with(&format!("+{code} ")), "{number}");
            assert!(n.masked().ends_with(&number[number.len() - 4..]));
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_output_is_canonical(s in "\\PC{0,40}") {
            if let Ok(n) = E164::parse(&s) {
                prop_assert!(n.0.starts_with('+'));
                prop_assert!(n.0[1..].bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(E164::parse(&n.0), Ok(n.clone()));
            }
        }
    }
}
