//! Newtypes for identifiers and secrets. Secrets print `Name([redacted])`, zeroize on drop, compare in
//! constant time, and are read only through `secret()`.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Declares a string secret type.
macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            #[must_use]
            pub fn new(value: String) -> Self {
                Self(value)
            }

            /// The secret itself.
            ///
            /// # Security Warning
            /// Never log, format into an error or send back the returned value except to the one
            /// party entitled to it, once.
            #[must_use]
            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
            }
        }
        impl Eq for $name {}
    };
}

/// Declares an identifier type: opaque, random, safe to log.
macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random identifier.
            #[must_use]
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "{}"), crate::crypto::random_token(16)))
            }

            /// Wraps an identifier received from outside (API path, form, stored record).
            #[must_use]
            pub fn from_string(s: String) -> Self {
                Self(s)
            }

            /// The identifier as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A company.
    TenantId, "t_"
);
id_type!(
    /// A user of a company.
    UserId, "u_"
);
id_type!(
    /// An OAuth client: relying panel, API account, PAM host or the operator.
    ClientId, "c_"
);

secret_type!(
    /// A password as typed; lives only long enough to be hashed or verified.
    Password
);
secret_type!(
    /// A generated client secret (API account, relying panel, PAM host, operator).
    ClientSecret
);
secret_type!(
    /// The one-time token of the `/setup` link.
    SetupToken
);
secret_type!(
    /// The one-time token of a set-password link.
    LinkToken
);
secret_type!(
    /// A company's Duo Auth API secret key (40 characters), opened from its sealed copy only to
    /// sign a request to Duo.
    DuoSecretKey
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let s = ClientSecret::new("hunter2-very-secret".into());
        assert_eq!(format!("{s:?}"), "ClientSecret([redacted])");
        assert_eq!(
            format!("{:?}", Password::new("pw".into())),
            "Password([redacted])"
        );
        assert_eq!(s, ClientSecret::new("hunter2-very-secret".into()));
        assert_ne!(s, ClientSecret::new("hunter2-very-secreT".into()));
    }

    #[test]
    fn ids_are_random_and_prefixed() {
        let a = TenantId::generate();
        assert!(a.as_str().starts_with("t_"));
        assert_ne!(a, TenantId::generate());
    }
}
