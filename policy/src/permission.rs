//! What a token may do at the admin API: the permissions of the user's roles, intersected with the
//! scopes the token carries (DESIGN.md §2 rules 7–8, §4 Role, §9 item 2). A scope alone never
//! grants a permission the user's roles do not hold, admin scopes are issued only by the
//! client-credentials grant, and nobody grants a permission they do not hold ([`may_grant`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Scope of the operator credential.
pub const SCOPE_OPERATOR: &str = "padlock.admin";
/// Scope of a company administrator (all of one company's permissions).
pub const SCOPE_TENANT_ADMIN: &str = "tenant.admin";

/// The built-in role holding every company permission.
pub const ROLE_ADMIN: &str = "admin";
/// The built-in role holding no permission.
pub const ROLE_USER: &str = "user";

/// A company permission (DESIGN.md §4 Role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// `company.manage`: company settings, the 2FA switch and methods, Duo keys, other users'
    /// second factor, roles, API accounts.
    CompanyManage,
    /// `users.manage`: create, edit, disable users, send set-password links (not their second
    /// factor, not roles holding more than one's own).
    UsersManage,
    /// `audit.read`: read and export the company's audit trail.
    AuditRead,
}

impl Permission {
    /// Every permission, in the order they are listed.
    pub const EVERY: [Permission; 3] = [
        Permission::CompanyManage,
        Permission::UsersManage,
        Permission::AuditRead,
    ];

    const fn bit(self) -> u8 {
        match self {
            Permission::CompanyManage => 1,
            Permission::UsersManage => 2,
            Permission::AuditRead => 4,
        }
    }

    /// The permission's name, which is also the scope that asks for it alone.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Permission::CompanyManage => "company.manage",
            Permission::UsersManage => "users.manage",
            Permission::AuditRead => "audit.read",
        }
    }

    /// The permission named `name`, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Permission> {
        Self::EVERY.into_iter().find(|p| p.name() == name)
    }
}

/// A set of [`Permission`]s; serialized as the list of their names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Permissions(u8);

impl Permissions {
    /// Every permission.
    pub const ALL: Permissions = Permissions(7);
    /// No permission.
    pub const NONE: Permissions = Permissions(0);

    /// The set holding only `p`.
    #[must_use]
    pub const fn only(p: Permission) -> Permissions {
        Permissions(p.bit())
    }

    /// Whether `p` is in the set.
    #[must_use]
    pub fn has(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// Whether every permission of `other` is in this set.
    #[must_use]
    pub fn covers(self, other: Permissions) -> bool {
        other.0 & !self.0 == 0
    }

    /// The permissions in both sets.
    #[must_use]
    pub fn intersect(self, other: Permissions) -> Permissions {
        Permissions(self.0 & other.0)
    }

    /// The permissions in either set.
    #[must_use]
    pub fn union(self, other: Permissions) -> Permissions {
        Permissions(self.0 | other.0)
    }

    /// The permissions of this set that `other` lacks.
    #[must_use]
    pub fn without(self, other: Permissions) -> Permissions {
        Permissions(self.0 & !other.0)
    }

    /// The permissions in the set, in [`Permission::EVERY`] order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::EVERY.into_iter().filter(move |p| self.has(*p))
    }

    /// The names of the permissions in the set.
    #[must_use]
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Permission::name).collect()
    }

    /// The set named by `names`.
    ///
    /// # Errors
    /// The first name that is no permission.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Permissions, &'a str> {
        names.into_iter().try_fold(Permissions::NONE, |acc, n| {
            Permission::parse(n)
                .map(|p| acc.union(Permissions::only(p)))
                .ok_or(n)
        })
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        Permissions::parse(names.iter().map(String::as_str))
            .map_err(|n| serde::de::Error::custom(format!("`{n}` is not a permission")))
    }
}

/// A company's own role: a named set of permissions (DESIGN.md §4 Role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The name users carry in `roles` (see [`check_role_name`]).
    pub name: String,
    /// What it permits.
    pub permissions: Permissions,
}

/// Whether `scope` is an admin scope (`padlock.admin`, `tenant.admin` or a permission's name):
/// issued only by client credentials, never to a relying panel.
#[must_use]
pub fn is_admin_scope(scope: &str) -> bool {
    scope == SCOPE_OPERATOR || scope == SCOPE_TENANT_ADMIN || Permission::parse(scope).is_some()
}

/// The permissions a scope asks for: all for `tenant.admin`, one for a permission's name, none
/// for any other.
#[must_use]
pub fn scope_permissions(scope: &str) -> Permissions {
    if scope == SCOPE_TENANT_ADMIN {
        Permissions::ALL
    } else {
        Permission::parse(scope).map_or(Permissions::NONE, Permissions::only)
    }
}

/// The permissions of a built-in role: `admin` all, `user` none; an API account holds roles
/// named after its scopes (`tenant.admin`: all; a permission's name: that one). `None` for any
/// other name (a company's own role, or none at all).
#[must_use]
pub fn builtin_role(name: &str) -> Option<Permissions> {
    match name {
        ROLE_ADMIN | SCOPE_TENANT_ADMIN => Some(Permissions::ALL),
        ROLE_USER => Some(Permissions::NONE),
        _ => Permission::parse(name).map(Permissions::only),
    }
}

/// The permissions of the role `name` in a company whose own roles are `custom`: a built-in's,
/// else the custom role's, else none (a role that no longer exists permits nothing).
#[must_use]
pub fn role_permissions(name: &str, custom: &[Role]) -> Permissions {
    builtin_role(name).unwrap_or_else(|| {
        custom
            .iter()
            .find(|r| r.name == name)
            .map_or(Permissions::NONE, |r| r.permissions)
    })
}

/// Everything a set of roles permits together.
#[must_use]
pub fn held<'a>(roles: impl IntoIterator<Item = &'a str>, custom: &[Role]) -> Permissions {
    roles.into_iter().fold(Permissions::NONE, |acc, r| {
        acc.union(role_permissions(r, custom))
    })
}

/// Effective rights of a token whose subject is a user: the permissions its scopes ask for ∩ those
/// its user's roles hold now (`held`).
#[must_use]
pub fn effective<'a>(scopes: impl IntoIterator<Item = &'a str>, held: Permissions) -> Permissions {
    scopes
        .into_iter()
        .fold(Permissions::NONE, |acc, s| acc.union(scope_permissions(s)))
        .intersect(held)
}

/// Whether a caller holding `caller` may hand out `granted` (to a user's roles, an API account's
/// scopes or a role's definition): only permissions it holds itself.
#[must_use]
pub fn may_grant(caller: Permissions, granted: Permissions) -> bool {
    caller.covers(granted)
}

/// Why a name cannot be a company's own role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoleNameError {
    /// Empty, longer than 64 bytes, or outside `a-z 0-9 . _ -`.
    #[error("use 1 to 64 of a-z 0-9 . _ - (starting with a letter)")]
    Malformed,
    /// A built-in role's or a scope's name.
    #[error("that name is built in")]
    Reserved,
}

/// Checks the name of a company's own role: 1–64 of `a-z 0-9 . _ -`, starting with a letter, and
/// none of the built-in roles' or admin scopes' names.
///
/// # Errors
/// [`RoleNameError`].
pub fn check_role_name(name: &str) -> Result<(), RoleNameError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if !ok {
        Err(RoleNameError::Malformed)
    } else if builtin_role(name).is_some() || is_admin_scope(name) {
        Err(RoleNameError::Reserved)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, p: &[&str]) -> Role {
        Role {
            name: name.into(),
            permissions: Permissions::parse(p.iter().copied()).unwrap(),
        }
    }

    #[test]
    fn scopes_never_grant_more_than_roles() {
        let none: &[Role] = &[];
        let all = |roles: &[&str]| held(roles.iter().copied(), none);
        assert_eq!(
            effective(["tenant.admin"], all(&["admin"])),
            Permissions::ALL
        );
        assert_eq!(effective(["tenant.admin"], all(&[])), Permissions::NONE);
        assert_eq!(
            effective(["tenant.admin"], all(&["user"])),
            Permissions::NONE
        );
        assert_eq!(effective(["openid"], all(&["admin"])), Permissions::NONE);
        assert_eq!(
            effective(["tenant.admin"], all(&["tenant.admin"])),
            Permissions::ALL
        );
        // One permission as a scope opens only that one, even for an admin.
        assert_eq!(
            effective(["audit.read"], all(&["admin"])),
            Permissions::only(Permission::AuditRead)
        );
        // An API account holding users.manage cannot widen it with tenant.admin.
        assert_eq!(
            effective(["tenant.admin"], all(&["users.manage"])),
            Permissions::only(Permission::UsersManage)
        );
        assert!(is_admin_scope("padlock.admin") && is_admin_scope("tenant.admin"));
        assert!(is_admin_scope("users.manage") && is_admin_scope("audit.read"));
        assert!(!is_admin_scope("openid"));
    }

    #[test]
    fn custom_roles_hold_what_they_list_and_no_more() {
        let custom = [
            role("helpdesk", &["users.manage"]),
            role("auditor", &["audit.read"]),
        ];
        let h = held(["helpdesk", "auditor"], &custom);
        assert!(h.has(Permission::UsersManage) && h.has(Permission::AuditRead));
        assert!(!h.has(Permission::CompanyManage));
        // A role that does not exist (or was deleted) permits nothing.
        assert_eq!(held(["gone"], &custom), Permissions::NONE);
        // A custom role cannot shadow a built-in one.
        assert_eq!(
            role_permissions("user", &[role("user", &["company.manage"])]),
            Permissions::NONE
        );
    }

    #[test]
    fn nobody_grants_what_they_do_not_hold() {
        let users = Permissions::only(Permission::UsersManage);
        assert!(may_grant(users, Permissions::NONE));
        assert!(may_grant(users, users));
        assert!(!may_grant(users, Permissions::ALL));
        assert!(may_grant(Permissions::ALL, users));
        assert_eq!(
            Permissions::ALL.without(users).names(),
            ["company.manage", "audit.read"]
        );
    }

    #[test]
    fn permission_sets_round_trip_as_names() {
        let p = Permissions::parse(["audit.read", "users.manage"]).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"["users.manage","audit.read"]"#);
        assert_eq!(serde_json::from_str::<Permissions>(&json).unwrap(), p);
        assert!(serde_json::from_str::<Permissions>(r#"["root"]"#).is_err());
        assert_eq!(Permissions::parse(["x"]), Err("x"));
    }

    #[test]
    fn role_names_are_checked() {
        assert!(check_role_name("helpdesk").is_ok());
        assert!(check_role_name("team.lead-2").is_ok());
        for reserved in [
            "admin",
            "user",
            "tenant.admin",
            "padlock.admin",
            "users.manage",
        ] {
            assert_eq!(
                check_role_name(reserved),
                Err(RoleNameError::Reserved),
                "{reserved}"
            );
        }
        for bad in ["", "Helpdesk", "1st", "a b", "x\u{0}", &"a".repeat(65)] {
            assert_eq!(
                check_role_name(bad),
                Err(RoleNameError::Malformed),
                "{bad:?}"
            );
        }
    }
}
