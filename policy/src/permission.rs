//! What a token may do at the admin API: the permissions of the user's roles, intersected with the
//! scopes the token carries (DESIGN.md §2 rules 7–8, §9 item 2). A scope alone never grants a
//! permission the user's roles do not hold, and admin scopes are issued only by the
//! client-credentials grant.

/// Scope of the operator credential.
pub const SCOPE_OPERATOR: &str = "padlock.admin";
/// Scope of a company administrator (all of one company's permissions).
pub const SCOPE_TENANT_ADMIN: &str = "tenant.admin";
/// Scopes that carry admin rights: issued only by client credentials, never to a relying panel.
pub const ADMIN_SCOPES: [&str; 2] = [SCOPE_OPERATOR, SCOPE_TENANT_ADMIN];

/// The built-in role holding every company permission.
pub const ROLE_ADMIN: &str = "admin";

/// A company permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Company settings, the 2FA switch and methods, other users' second factor, API accounts.
    CompanyManage,
    /// Create, edit, disable users.
    UsersManage,
    /// Read the company's audit trail.
    AuditRead,
}

impl Permission {
    const fn bit(self) -> u8 {
        match self {
            Permission::CompanyManage => 1,
            Permission::UsersManage => 2,
            Permission::AuditRead => 4,
        }
    }
}

/// A set of [`Permission`]s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Permissions(u8);

impl Permissions {
    /// Every permission.
    pub const ALL: Permissions = Permissions(7);
    /// No permission.
    pub const NONE: Permissions = Permissions(0);

    /// Whether `p` is in the set.
    #[must_use]
    pub fn has(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
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
}

/// Whether `scope` is an admin scope (never issued to a relying panel).
#[must_use]
pub fn is_admin_scope(scope: &str) -> bool {
    ADMIN_SCOPES.contains(&scope)
}

/// The permissions a scope asks for.
#[must_use]
pub fn scope_permissions(scope: &str) -> Permissions {
    match scope {
        SCOPE_TENANT_ADMIN => Permissions::ALL,
        _ => Permissions::NONE,
    }
}

/// The permissions a role holds. `admin` holds all; API accounts created with scope
/// `tenant.admin` hold the role of that name, which holds all too; any other role holds none
/// (custom roles arrive with the roles work).
#[must_use]
pub fn role_permissions(role: &str) -> Permissions {
    match role {
        ROLE_ADMIN | SCOPE_TENANT_ADMIN => Permissions::ALL,
        _ => Permissions::NONE,
    }
}

/// Effective rights of a token whose subject is a user: its scopes ∩ its user's roles.
#[must_use]
pub fn effective<'a>(
    scopes: impl IntoIterator<Item = &'a str>,
    roles: impl IntoIterator<Item = &'a str>,
) -> Permissions {
    let asked = scopes
        .into_iter()
        .fold(Permissions::NONE, |acc, s| acc.union(scope_permissions(s)));
    let held = roles
        .into_iter()
        .fold(Permissions::NONE, |acc, r| acc.union(role_permissions(r)));
    asked.intersect(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_never_grant_more_than_roles() {
        assert_eq!(effective(["tenant.admin"], ["admin"]), Permissions::ALL);
        assert_eq!(effective(["tenant.admin"], []), Permissions::NONE);
        assert_eq!(effective(["tenant.admin"], ["user"]), Permissions::NONE);
        assert_eq!(effective(["openid"], ["admin"]), Permissions::NONE);
        assert_eq!(
            effective(["tenant.admin"], ["tenant.admin"]),
            Permissions::ALL
        );
        assert!(Permissions::ALL.has(Permission::AuditRead));
        assert!(!Permissions::NONE.has(Permission::CompanyManage));
        assert!(is_admin_scope("padlock.admin") && is_admin_scope("tenant.admin"));
        assert!(!is_admin_scope("openid"));
    }
}
