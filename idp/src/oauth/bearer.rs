//! The bearer credential of a request (RFC 6750 §2.1): one parser for every endpoint that takes a
//! Padlock access token in the `Authorization` header (`/userinfo`, `/api/v1`), and the
//! `WWW-Authenticate` challenges they answer with (RFC 6750 §3).

use axum::http::{HeaderMap, header};

/// The challenge for a request that carried no bearer token (RFC 6750 §3.1: no error code, since
/// the client may not have known that authentication was needed).
pub const CHALLENGE: &str = "Bearer realm=\"padlock\"";
/// The challenge for a token that is malformed, unknown, expired or revoked.
pub const CHALLENGE_INVALID_TOKEN: &str = "Bearer realm=\"padlock\", error=\"invalid_token\"";
/// The challenge for a valid token without the scope the resource needs.
pub const CHALLENGE_INSUFFICIENT_SCOPE: &str =
    "Bearer realm=\"padlock\", error=\"insufficient_scope\"";

/// What a request's `Authorization` header says about a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No `Authorization` header, or one with another scheme (`Basic …`): the request carries no
    /// bearer token. Answer 401 with [`CHALLENGE`], without an error code (RFC 6750 §3.1).
    Absent,
    /// `Bearer <token>`, the scheme in any letter case (RFC 9110 §11.1), the token a `b64token`
    /// (RFC 6750 §2.1). The token's signature, expiry and revocation are still to be checked.
    Token(&'a str),
    /// A `Bearer` header without a well-formed token, or a header that is not visible ASCII:
    /// `invalid_token` (401 with [`CHALLENGE_INVALID_TOKEN`]).
    Malformed,
    /// More than one `Authorization` header: `invalid_request` (400; RFC 6750 §3.1, "uses more
    /// than one method for including an access token").
    Repeated,
}

/// Reads the bearer token of `headers` (see [`Bearer`] for each outcome). Never fails: every byte
/// sequence maps to one of the four answers.
#[must_use]
pub fn bearer(headers: &HeaderMap) -> Bearer<'_> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Bearer::Absent;
    };
    if values.next().is_some() {
        return Bearer::Repeated;
    }
    let Ok(value) = value.to_str() else {
        return Bearer::Malformed;
    };
    let value = value.trim_matches([' ', '\t']);
    // credentials = auth-scheme [ 1*SP token68 ]  (RFC 9110 §11.4)
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Bearer::Absent;
    }
    let token = rest.trim_start_matches(' ');
    if is_b64token(token) {
        Bearer::Token(token)
    } else {
        Bearer::Malformed
    }
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="` (RFC 6750 §2.1).
#[must_use]
pub fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn parse(values: &[&[u8]]) -> String {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        format!("{:?}", bearer(&h))
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_a_b64token() {
        for v in [
            &b"Bearer abc.def-_~+/=="[..],
            b"bearer abc.def-_~+/==",
            b"BEARER abc.def-_~+/==",
            b"bEaReR   abc.def-_~+/==  ",
        ] {
            assert_eq!(parse(&[v]), "Token(\"abc.def-_~+/==\")", "{v:?}");
        }
        assert_eq!(parse(&[]), "Absent");
        assert_eq!(parse(&[b"Basic YTpi"]), "Absent");
        assert_eq!(parse(&[b"Bearerx abc"]), "Absent");
        for v in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer ==",
            b"Bearer a b",
            b"Bearer a,b",
            b"Bearer a=b",
            b"Bearer \xc3\xa9",
        ] {
            assert_eq!(parse(&[v]), "Malformed", "{v:?}");
        }
        assert_eq!(parse(&[b"Bearer a", b"Bearer a"]), "Repeated");
    }
}
