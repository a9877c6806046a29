//! Value types that parse on construction, so an invalid number, name or header value can never
//! reach an aggregate. Each keeps its field private and serialises as the plain string it was
//! parsed from; deserialising parses again, so stored events cannot smuggle in invalid values.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value was refused. `field` names the value kind; the API adds the JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidValue {
    pub kind: ValueKind,
    pub reason: String,
}

/// Which kind of value failed to parse; the API maps each to a wire error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    TelephoneNumber,
    AccountName,
    TenantId,
    SipHeaderValue,
    TicketId,
    CountryCode,
    Usage,
    Capability,
    AssignmentStatus,
    RelationshipStatus,
    ConsentStatus,
    Subdomain,
    SubdomainToken,
    Identifier,
    Comment,
}

impl ValueKind {
    /// The stable error code the API reports for a value of this kind.
    pub fn code(self) -> &'static str {
        match self {
            ValueKind::TelephoneNumber => "InvalidTelephoneNumber",
            ValueKind::AccountName => "InvalidAccountName",
            ValueKind::TenantId => "InvalidTenantId",
            ValueKind::SipHeaderValue => "InvalidCustomSipHeader",
            ValueKind::TicketId => "InvalidTicketId",
            ValueKind::CountryCode => "InvalidCountryCode",
            ValueKind::Usage => "InvalidUsage",
            ValueKind::Capability => "InvalidCapability",
            ValueKind::AssignmentStatus => "InvalidAssignmentStatus",
            ValueKind::RelationshipStatus => "InvalidRelationshipStatus",
            ValueKind::ConsentStatus => "InvalidConsentStatus",
            ValueKind::Subdomain => "InvalidSubdomain",
            ValueKind::SubdomainToken => "InvalidSubdomainToken",
            ValueKind::Identifier => "InvalidIdentifier",
            ValueKind::Comment => "InvalidComment",
        }
    }
}

fn invalid(kind: ValueKind, reason: impl Into<String>) -> InvalidValue {
    InvalidValue {
        kind,
        reason: reason.into(),
    }
}

/// Defines a string newtype whose only constructor is `parse`, with serde going through it.
macro_rules! parsed_string {
    ($(#[$doc:meta])* $name:ident, $parse:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
                let value: String = value.into();
                let check: fn(&str) -> Result<(), InvalidValue> = $parse;
                check(&value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

parsed_string!(
    /// A telephone number in E.164: `+`, a country code that does not start with 0, then digits;
    /// at most 16 characters including the `+`.
    E164,
    |value| {
        let kind = ValueKind::TelephoneNumber;
        let Some(digits) = value.strip_prefix('+') else {
            return Err(invalid(kind, format!("'{value}' must start with '+' (E.164)")));
        };
        if value.len() > 16 {
            return Err(invalid(kind, format!("'{value}' is longer than 16 characters")));
        }
        if digits.len() < 2 {
            return Err(invalid(kind, format!("'{value}' is too short for an E.164 number")));
        }
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid(kind, format!("'{value}' may hold only digits after '+'")));
        }
        if digits.starts_with('0') {
            return Err(invalid(kind, format!("'{value}': a country code never starts with 0")));
        }
        Ok(())
    }
);

parsed_string!(
    /// An account name: 1 to 100 of `A-Z a-z 0-9 _ -`, case-sensitive.
    AccountName,
    |value| {
        let kind = ValueKind::AccountName;
        if value.is_empty() || value.len() > 100 {
            return Err(invalid(kind, "an account name has 1 to 100 characters"));
        }
        if !value.chars().all(is_name_char) {
            return Err(invalid(
                kind,
                format!("'{value}' may hold only letters, digits, '_' and '-'"),
            ));
        }
        Ok(())
    }
);

parsed_string!(
    /// A Microsoft Entra (Teams) tenant id: a GUID in its 8-4-4-4-12 form.
    TenantId,
    |value| {
        let groups: Vec<&str> = value.split('-').collect();
        let lengths = [8, 4, 4, 4, 12];
        let well_formed = groups.len() == 5
            && groups
                .iter()
                .zip(lengths)
                .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()));
        if !well_formed {
            return Err(invalid(
                ValueKind::TenantId,
                format!("'{value}' is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"),
            ));
        }
        Ok(())
    }
);

parsed_string!(
    /// A custom SIP header value: 1 to 100 of `A-Z a-z 0-9 _ -`.
    SipHeaderValue,
    |value| {
        let kind = ValueKind::SipHeaderValue;
        if value.is_empty() || value.len() > 100 {
            return Err(invalid(kind, "a custom SIP header value has 1 to 100 characters"));
        }
        if !value.chars().all(is_name_char) {
            return Err(invalid(
                kind,
                format!("'{value}' may hold only letters, digits, '_' and '-'"),
            ));
        }
        Ok(())
    }
);

parsed_string!(
    /// The operator's ticket reference for a change: 1 to 64 printable characters.
    TicketId,
    |value| {
        let kind = ValueKind::TicketId;
        if value.is_empty() || value.chars().count() > 64 {
            return Err(invalid(kind, "a ticket id has 1 to 64 characters"));
        }
        if value.chars().any(char::is_control) {
            return Err(invalid(kind, "a ticket id may not hold control characters"));
        }
        Ok(())
    }
);

parsed_string!(
    /// An ISO 3166-1 alpha-2 country code in capitals, such as `GB` or `US`.
    CountryCode,
    |value| {
        if value.len() != 2 || !value.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(invalid(
                ValueKind::CountryCode,
                format!("'{value}' is not a two-letter ISO 3166 country code in capitals"),
            ));
        }
        Ok(())
    }
);

parsed_string!(
    /// An opaque identifier issued by the backend (civic address, location, consent, operator):
    /// 1 to 200 printable characters.
    Identifier,
    |value| {
        if value.is_empty() || value.len() > 200 || value.chars().any(char::is_control) {
            return Err(invalid(
                ValueKind::Identifier,
                "an identifier has 1 to 200 printable characters",
            ));
        }
        Ok(())
    }
);

parsed_string!(
    /// A free-text comment on a customer relationship, such as the reason for declining:
    /// 1 to 1,000 characters.
    Comment,
    |value| {
        if value.trim().is_empty() || value.chars().count() > 1000 {
            return Err(invalid(
                ValueKind::Comment,
                "a comment has 1 to 1000 characters and is not blank",
            ));
        }
        Ok(())
    }
);

parsed_string!(
    /// A Direct Routing subdomain label: 1 to 10 of `A-Z a-z 0-9 _ -`.
    Subdomain,
    |value| {
        if value.is_empty() || value.len() > 10 || !value.chars().all(is_name_char) {
            return Err(invalid(
                ValueKind::Subdomain,
                "a subdomain has 1 to 10 letters, digits, '_' or '-'",
            ));
        }
        Ok(())
    }
);

parsed_string!(
    /// A Direct Routing subdomain token: 1 to 100 of `A-Z a-z 0-9 = _ -`.
    SubdomainToken,
    |value| {
        let ok = !value.is_empty()
            && value.len() <= 100
            && value.chars().all(|c| is_name_char(c) || c == '=');
        if !ok {
            return Err(invalid(
                ValueKind::SubdomainToken,
                "a subdomain token has 1 to 100 letters, digits, '=', '_' or '-'",
            ));
        }
        Ok(())
    }
);

/// Defines a closed set of wire strings with `parse` listing the allowed values on refusal.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident, $kind:expr, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn parse(value: &str) -> Result<Self, InvalidValue> {
                match value {
                    $($text => Ok($name::$variant),)+
                    other => Err(invalid(
                        $kind,
                        format!(
                            "'{other}' is not one of: {}",
                            [$($text),+].join(", ")
                        ),
                    )),
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// What a Teams number is used for.
    Usage, ValueKind::Usage, {
        CallingUserAssignment => "CallingUserAssignment",
        FirstPartyAppAssignment => "FirstPartyAppAssignment",
        ConferenceAssignment => "ConferenceAssignment",
    }
);

wire_enum!(
    /// What a Teams number can do.
    Capability, ValueKind::Capability, {
        InboundCalling => "InboundCalling",
        OutboundCalling => "OutboundCalling",
        Mobile => "Mobile",
    }
);

wire_enum!(
    /// Whether the enterprise has assigned a Teams number to a user or app.
    AssignmentStatus, ValueKind::AssignmentStatus, {
        Assigned => "assigned",
        Unassigned => "unassigned",
    }
);

wire_enum!(
    /// The operator's side of a consent: how far the customer relationship has come.
    RelationshipStatus, ValueKind::RelationshipStatus, {
        ConsentAcknowledged => "ConsentAcknowledged",
        CustomerContacted => "CustomerContacted",
        AgreementSigned => "AgreementSigned",
        ConsentDeclined => "ConsentDeclined",
        ContractTerminated => "ContractTerminated",
    }
);

impl RelationshipStatus {
    /// Declining a consent or ending a contract must say why.
    pub fn needs_reason(self) -> bool {
        matches!(
            self,
            RelationshipStatus::ConsentDeclined | RelationshipStatus::ContractTerminated
        )
    }
}

wire_enum!(
    /// The enterprise's side of a consent, as the Teams backend reports it.
    ConsentStatus, ValueKind::ConsentStatus, {
        Active => "active",
        Suspended => "suspended",
        Removed => "removed",
    }
);

/// Where a resource stands toward the Teams backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProvisioningStatus {
    #[default]
    Pending,
    Synced,
    Failed,
}

impl ProvisioningStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisioningStatus::Pending => "pending",
            ProvisioningStatus::Synced => "synced",
            ProvisioningStatus::Failed => "failed",
        }
    }
}

/// One error the backend reported for a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningError {
    pub code: String,
    pub message: String,
}

/// A resource's sync state: `pending` after each change, then `synced` or `failed` once the
/// backend answers for that change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SyncState {
    pub status: ProvisioningStatus,
    pub errors: Vec<ProvisioningError>,
    /// The aggregate version whose change is pending or was last answered.
    pub version: u64,
}

impl SyncState {
    pub fn pending(version: u64) -> Self {
        SyncState {
            status: ProvisioningStatus::Pending,
            errors: Vec::new(),
            version,
        }
    }

    /// Whether the backend's answer for the change at `for_version` (`None` for success, the
    /// errors for a failure) tells anything new: an answer for a superseded change, or one that
    /// repeats the state already recorded, changes nothing.
    pub fn is_news(&self, for_version: u64, failure: Option<&[ProvisioningError]>) -> bool {
        if for_version != self.version {
            return false;
        }
        match failure {
            None => !(self.status == ProvisioningStatus::Synced && self.errors.is_empty()),
            Some(errors) => !(self.status == ProvisioningStatus::Failed && self.errors == errors),
        }
    }

    /// A change that has nothing to push (its services are not sync-enabled) is at once in step.
    pub fn nothing_to_sync(version: u64) -> Self {
        SyncState {
            status: ProvisioningStatus::Synced,
            errors: Vec::new(),
            version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_accepts_the_examples_number() {
        assert_eq!(
            E164::parse("+15105850321").unwrap().as_str(),
            "+15105850321"
        );
    }

    #[test]
    fn e164_refuses_missing_plus_letters_leading_zero_and_length() {
        for bad in [
            "15105850321",
            "+1510585032a",
            "+0123456",
            "+1",
            "+12345678901234567",
            "",
            "+",
        ] {
            let error = E164::parse(bad).unwrap_err();
            assert_eq!(error.kind, ValueKind::TelephoneNumber, "{bad}");
        }
        assert!(
            E164::parse("+123456789012345").is_ok(),
            "16 characters is the limit"
        );
    }

    #[test]
    fn account_names_follow_the_pattern() {
        assert!(AccountName::parse("contoso_1-A").is_ok());
        assert!(AccountName::parse("a".repeat(100)).is_ok());
        for bad in ["", "con toso", "contoso.com", "ä"] {
            assert!(AccountName::parse(bad).is_err(), "{bad}");
        }
        assert!(AccountName::parse("a".repeat(101)).is_err());
    }

    #[test]
    fn sip_header_values_follow_the_pattern() {
        assert!(SipHeaderValue::parse("contoso-commsgw").is_ok());
        assert!(SipHeaderValue::parse("a b").is_err());
        assert!(SipHeaderValue::parse("").is_err());
        assert!(SipHeaderValue::parse("x".repeat(101)).is_err());
    }

    #[test]
    fn ticket_ids_have_at_most_64_characters() {
        assert!(TicketId::parse("T".repeat(64)).is_ok());
        assert!(TicketId::parse("T".repeat(65)).is_err());
        assert!(TicketId::parse("").is_err());
        assert!(TicketId::parse("a\nb").is_err());
    }

    #[test]
    fn ticket_ids_count_characters_not_bytes() {
        assert!(TicketId::parse("é".repeat(64)).is_ok());
        assert!(TicketId::parse("é".repeat(65)).is_err());
    }

    #[test]
    fn comments_are_not_blank_and_have_at_most_1000_characters() {
        // A blank comment would satisfy the reason a decline or termination needs.
        for blank in ["", " ", "\t\n "] {
            assert_eq!(
                Comment::parse(blank).unwrap_err().kind,
                ValueKind::Comment,
                "{blank:?}"
            );
        }
        assert!(Comment::parse("é".repeat(1000)).is_ok());
        assert!(Comment::parse("x".repeat(1001)).is_err());
    }

    #[test]
    fn identifiers_are_printable_and_have_at_most_200_characters() {
        assert!(Identifier::parse("9c8a1e2f/locations/1").is_ok());
        assert!(Identifier::parse("x".repeat(200)).is_ok());
        for bad in [String::new(), "x".repeat(201), "a\u{7}b".to_string()] {
            assert_eq!(
                Identifier::parse(bad).unwrap_err().kind,
                ValueKind::Identifier
            );
        }
    }

    #[test]
    fn direct_routing_subdomains_and_tokens_follow_their_patterns() {
        assert!(Subdomain::parse("contoso-1").is_ok());
        assert!(Subdomain::parse("x".repeat(10)).is_ok());
        for bad in ["", "contoso.com", "elevenchars"] {
            assert!(Subdomain::parse(bad).is_err(), "{bad}");
        }
        assert!(SubdomainToken::parse("aBc_-12==").is_ok());
        assert!(SubdomainToken::parse("x".repeat(101)).is_err());
        assert!(SubdomainToken::parse("a+b").is_err());
    }

    #[test]
    fn only_declining_and_terminating_need_a_reason() {
        let needing: Vec<RelationshipStatus> = RelationshipStatus::ALL
            .iter()
            .copied()
            .filter(|status| status.needs_reason())
            .collect();
        assert_eq!(
            needing,
            [
                RelationshipStatus::ConsentDeclined,
                RelationshipStatus::ContractTerminated
            ]
        );
    }

    #[test]
    fn tenant_ids_are_guids() {
        assert!(TenantId::parse("a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a").is_ok());
        assert!(TenantId::parse("a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8").is_err());
        assert!(TenantId::parse("not-a-guid").is_err());
    }

    #[test]
    fn enums_list_the_allowed_values_when_refusing() {
        let error = Usage::parse("Nonsense").unwrap_err();
        assert!(error.reason.contains("CallingUserAssignment"));
        assert_eq!(Capability::parse("Mobile").unwrap(), Capability::Mobile);
        assert_eq!(
            CountryCode::parse("gb").unwrap_err().kind,
            ValueKind::CountryCode
        );
    }

    #[test]
    fn only_a_new_answer_for_the_current_change_is_news() {
        let pending = SyncState::pending(3);
        let error = ProvisioningError {
            code: "NumberTaken".into(),
            message: "taken".into(),
        };
        assert!(pending.is_news(3, None));
        assert!(pending.is_news(3, Some(std::slice::from_ref(&error))));
        assert!(
            !pending.is_news(2, None),
            "an answer for a superseded change"
        );
        let synced = SyncState::nothing_to_sync(3);
        assert!(!synced.is_news(3, None), "a repeated success");
        let failed = SyncState {
            status: ProvisioningStatus::Failed,
            errors: vec![error.clone()],
            version: 3,
        };
        assert!(!failed.is_news(3, Some(&[error])), "a repeated failure");
        assert!(failed.is_news(3, None), "success after a failure");
    }

    #[test]
    fn stored_values_are_parsed_again_when_read() {
        let error = serde_json::from_str::<E164>("\"12345\"").unwrap_err();
        assert!(error.to_string().contains("must start with '+'"));
    }
}
