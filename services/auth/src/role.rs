//! Roles carried in a token's `roles` claim, the permissions they grant, and the verified caller.

use std::fmt;
use std::str::FromStr;

/// An application role as the identity provider writes it into the `roles` claim.
///
/// Machines (client-credential apps) get the plain roles, people get the `…User` twins; both
/// grant exactly the same permissions, the split only exists so that an operator can see in the
/// identity provider who is a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `ProvisioningAPI.Admin`: every permission.
    Admin,
    /// `ProvisioningAPI.Read`
    Read,
    /// `ProvisioningAPI.Write`
    Write,
    /// `ProvisioningAPI.Delete`
    Delete,
    /// `ProvisioningAPI.AdminUser`: every permission.
    AdminUser,
    /// `ProvisioningAPI.ReadUser`
    ReadUser,
    /// `ProvisioningAPI.WriteUser`
    WriteUser,
    /// `ProvisioningAPI.DeleteUser`
    DeleteUser,
}

impl Role {
    /// Every role, machine roles first.
    pub const ALL: [Role; 8] = [
        Role::Admin,
        Role::Read,
        Role::Write,
        Role::Delete,
        Role::AdminUser,
        Role::ReadUser,
        Role::WriteUser,
        Role::DeleteUser,
    ];

    /// Reads the claim value; the match is exact because identity providers emit these strings
    /// verbatim and a near miss is more likely a misconfiguration than a synonym.
    pub fn parse(value: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == value)
    }

    /// The claim value, e.g. `ProvisioningAPI.Admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ProvisioningAPI.Admin",
            Role::Read => "ProvisioningAPI.Read",
            Role::Write => "ProvisioningAPI.Write",
            Role::Delete => "ProvisioningAPI.Delete",
            Role::AdminUser => "ProvisioningAPI.AdminUser",
            Role::ReadUser => "ProvisioningAPI.ReadUser",
            Role::WriteUser => "ProvisioningAPI.WriteUser",
            Role::DeleteUser => "ProvisioningAPI.DeleteUser",
        }
    }

    /// Whether this role alone grants `permission`.
    pub fn grants(self, permission: Permission) -> bool {
        match self.machine_twin() {
            Role::Admin => true,
            Role::Read => permission == Permission::Read,
            Role::Write => permission == Permission::Write,
            Role::Delete => permission == Permission::Delete,
            // machine_twin() never returns a …User role.
            Role::AdminUser | Role::ReadUser | Role::WriteUser | Role::DeleteUser => false,
        }
    }

    /// Folds the people roles onto the machine roles so that the grant table exists only once.
    fn machine_twin(self) -> Role {
        match self {
            Role::AdminUser => Role::Admin,
            Role::ReadUser => Role::Read,
            Role::WriteUser => Role::Write,
            Role::DeleteUser => Role::Delete,
            machine => machine,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The string is not one of the eight `ProvisioningAPI.*` roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role {0:?}; expected one of ProvisioningAPI.Admin, .Read, .Write, .Delete or their …User twins"
)]
pub struct UnknownRole(pub String);

/// For command-line parsers (`nmp token --role …`), which want an error they can print.
impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Role::parse(value).ok_or_else(|| UnknownRole(value.to_owned()))
    }
}

/// What an operation needs: reads need Read, creates and changes Write, removals Delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Look at numbers, orders and their history.
    Read,
    /// Create or change.
    Write,
    /// Remove.
    Delete,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 3] = [Permission::Read, Permission::Write, Permission::Delete];
}

impl fmt::Display for Permission {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Permission::Read => "Read",
            Permission::Write => "Write",
            Permission::Delete => "Delete",
        })
    }
}

/// The caller a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who the token was issued to: `sub`, else `oid`, else `azp`/`appid`, else `unknown`.
    pub subject: String,
    /// The recognised roles, in claim order; unknown role strings have been dropped.
    pub roles: Vec<Role>,
    /// When the token stops being valid (`exp`, seconds since the Unix epoch), if known: what
    /// outlives the request, such as a live feed, ends then.
    pub expires_at: Option<u64>,
}

impl Principal {
    /// Whether the caller holds an administrator role (`ProvisioningAPI.Admin` or `.AdminUser`):
    /// what bulk reads of everything, such as the audit export, need.
    pub fn is_admin(&self) -> bool {
        self.roles
            .iter()
            .any(|role| matches!(role, Role::Admin | Role::AdminUser))
    }

    /// Whether any of the caller's roles grants `permission`.
    pub fn allows(&self, permission: Permission) -> bool {
        self.roles.iter().any(|role| role.grants(permission))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal_with(role: Role) -> Principal {
        Principal {
            expires_at: None,
            subject: "tester".to_owned(),
            roles: vec![role],
        }
    }

    #[test]
    fn every_role_round_trips_through_its_claim_string() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
        }
    }

    #[test]
    fn near_misses_are_not_roles() {
        for value in [
            "",
            "Admin",
            "provisioningapi.admin",
            "ProvisioningAPI.Admin ",
            "ProvisioningAPI.Superuser",
            "OtherAPI.Read",
        ] {
            assert_eq!(Role::parse(value), None, "{value:?}");
        }
        assert!("ProvisioningAPI.Root".parse::<Role>().is_err());
    }

    #[test]
    fn the_permission_matrix_holds_for_all_eight_roles() {
        use Permission::{Delete, Read, Write};
        let expected: [(Role, [bool; 3]); 8] = [
            (Role::Admin, [true, true, true]),
            (Role::Read, [true, false, false]),
            (Role::Write, [false, true, false]),
            (Role::Delete, [false, false, true]),
            (Role::AdminUser, [true, true, true]),
            (Role::ReadUser, [true, false, false]),
            (Role::WriteUser, [false, true, false]),
            (Role::DeleteUser, [false, false, true]),
        ];
        for (role, [read, write, delete]) in expected {
            let principal = principal_with(role);
            assert_eq!(principal.allows(Read), read, "{role} / Read");
            assert_eq!(principal.allows(Write), write, "{role} / Write");
            assert_eq!(principal.allows(Delete), delete, "{role} / Delete");
        }
    }

    #[test]
    fn a_principal_without_roles_is_allowed_nothing() {
        let principal = Principal {
            expires_at: None,
            subject: "nobody".to_owned(),
            roles: Vec::new(),
        };
        for permission in Permission::ALL {
            assert!(!principal.allows(permission));
        }
    }

    #[test]
    fn roles_combine() {
        let principal = Principal {
            expires_at: None,
            subject: "ops".to_owned(),
            roles: vec![Role::ReadUser, Role::Delete],
        };
        assert!(principal.allows(Permission::Read));
        assert!(!principal.allows(Permission::Write));
        assert!(principal.allows(Permission::Delete));
    }
}
