//! The CivicAddress aggregate: an emergency address of an enterprise, with its locations (and
//! their ELINs), its id the backend's civic address id. Addresses belong to the enterprise: nmp
//! only records what the backend reports, so every command comes from the backend sync.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::values::{CountryCode, Identifier, TenantId};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CivicAddress {
    /// How many events have been applied: the stream's last sequence.
    pub version: u64,
    pub state: Option<CivicAddressState>,
}

/// Whether the backend validated the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValidationStatus {
    #[serde(rename = "validated")]
    Validated,
    #[serde(rename = "notValidated")]
    NotValidated,
}

impl ValidationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationStatus::Validated => "validated",
            ValidationStatus::NotValidated => "notValidated",
        }
    }
}

/// A place inside a civic address, such as a floor, with its emergency location number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub id: Identifier,
    pub description: Option<String>,
    pub additional_info: Option<String>,
    pub is_default: bool,
    pub elin: Option<String>,
}

/// A civic address as the backend reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CivicAddressReport {
    pub country: CountryCode,
    pub house_number: Option<String>,
    pub house_number_suffix: Option<String>,
    pub pre_directional: Option<String>,
    pub street_name: Option<String>,
    pub street_suffix: Option<String>,
    pub post_directional: Option<String>,
    pub state_or_province: Option<String>,
    pub county_or_district: Option<String>,
    pub city_or_town: Option<String>,
    pub city_or_town_alias: Option<String>,
    pub postal_or_zip_code: Option<String>,
    pub description: Option<String>,
    pub company_name: Option<String>,
    pub company_id: Option<String>,
    pub default_location_id: Option<Identifier>,
    pub validation_status: ValidationStatus,
    pub partner_id: Option<String>,
    pub latitude: Option<String>,
    pub longitude: Option<String>,
    pub locations: Vec<Location>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CivicAddressState {
    pub id: Identifier,
    pub tenant_id: TenantId,
    pub report: CivicAddressReport,
}

// Commands live only while they are handled, so their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum CivicAddressCommand {
    /// The backend reported the address, new or changed.
    RecordCivicAddress {
        id: Identifier,
        tenant_id: TenantId,
        report: CivicAddressReport,
    },
    /// The backend no longer reports the address.
    RemoveCivicAddress { id: Identifier },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CivicAddressEvent {
    CivicAddressRecorded {
        id: Identifier,
        tenant_id: TenantId,
        report: CivicAddressReport,
    },
    CivicAddressChanged {
        report: CivicAddressReport,
    },
    CivicAddressRemoved,
}

impl DomainEvent for CivicAddressEvent {
    fn event_type(&self) -> String {
        match self {
            CivicAddressEvent::CivicAddressRecorded { .. } => "CivicAddressRecorded",
            CivicAddressEvent::CivicAddressChanged { .. } => "CivicAddressChanged",
            CivicAddressEvent::CivicAddressRemoved => "CivicAddressRemoved",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

impl Aggregate for CivicAddress {
    const TYPE: &'static str = "civicAddress";
    type Command = CivicAddressCommand;
    type Event = CivicAddressEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            CivicAddressCommand::RecordCivicAddress {
                id,
                tenant_id,
                report,
            } => match &self.state {
                None => Some(CivicAddressEvent::CivicAddressRecorded {
                    id,
                    tenant_id,
                    report,
                }),
                Some(state) if state.report == report => None,
                Some(_) => Some(CivicAddressEvent::CivicAddressChanged { report }),
            },
            CivicAddressCommand::RemoveCivicAddress { id } => {
                if self.state.is_none() {
                    return Err(DomainError::CivicAddressNotFound(id));
                }
                Some(CivicAddressEvent::CivicAddressRemoved)
            }
        };
        if let Some(event) = event {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            CivicAddressEvent::CivicAddressRecorded {
                id,
                tenant_id,
                report,
            } => {
                self.state = Some(CivicAddressState {
                    id,
                    tenant_id,
                    report,
                });
            }
            CivicAddressEvent::CivicAddressChanged { report } => {
                if let Some(state) = &mut self.state {
                    state.report = report;
                }
            }
            CivicAddressEvent::CivicAddressRemoved => self.state = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn report(city: &str) -> CivicAddressReport {
        CivicAddressReport {
            country: CountryCode::parse("US").unwrap(),
            house_number: Some("1".into()),
            house_number_suffix: None,
            pre_directional: None,
            street_name: Some("Main".into()),
            street_suffix: Some("St".into()),
            post_directional: None,
            state_or_province: Some("WA".into()),
            county_or_district: None,
            city_or_town: Some(city.into()),
            city_or_town_alias: None,
            postal_or_zip_code: Some("98052".into()),
            description: None,
            company_name: Some("Contoso".into()),
            company_id: None,
            default_location_id: Some(Identifier::parse("loc-1").unwrap()),
            validation_status: ValidationStatus::Validated,
            partner_id: None,
            latitude: None,
            longitude: None,
            locations: vec![Location {
                id: Identifier::parse("loc-1").unwrap(),
                description: Some("Floor 1".into()),
                additional_info: None,
                is_default: true,
                elin: Some("ELIN1".into()),
            }],
        }
    }

    fn recorded(city: &str) -> CivicAddressEvent {
        CivicAddressEvent::CivicAddressRecorded {
            id: Identifier::parse("addr-1").unwrap(),
            tenant_id: TenantId::parse("a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a").unwrap(),
            report: report(city),
        }
    }

    fn record(city: &str) -> CivicAddressCommand {
        CivicAddressCommand::RecordCivicAddress {
            id: Identifier::parse("addr-1").unwrap(),
            tenant_id: TenantId::parse("a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a").unwrap(),
            report: report(city),
        }
    }

    #[tokio::test]
    async fn a_reported_address_is_recorded() {
        TestFramework::<CivicAddress>::with(())
            .given_no_previous_events()
            .when_async(record("Redmond"))
            .await
            .then_expect_events(vec![recorded("Redmond")]);
    }

    #[tokio::test]
    async fn a_changed_address_is_recorded_as_a_change() {
        TestFramework::<CivicAddress>::with(())
            .given(vec![recorded("Redmond")])
            .when_async(record("Seattle"))
            .await
            .then_expect_events(vec![CivicAddressEvent::CivicAddressChanged {
                report: report("Seattle"),
            }]);
    }

    #[tokio::test]
    async fn an_unchanged_address_emits_nothing() {
        TestFramework::<CivicAddress>::with(())
            .given(vec![recorded("Redmond")])
            .when_async(record("Redmond"))
            .await
            .then_expect_events(vec![]);
    }

    #[tokio::test]
    async fn a_removed_address_is_recorded() {
        TestFramework::<CivicAddress>::with(())
            .given(vec![recorded("Redmond")])
            .when_async(CivicAddressCommand::RemoveCivicAddress {
                id: Identifier::parse("addr-1").unwrap(),
            })
            .await
            .then_expect_events(vec![CivicAddressEvent::CivicAddressRemoved]);
    }

    #[tokio::test]
    async fn removing_an_unknown_address_is_refused() {
        TestFramework::<CivicAddress>::with(())
            .given_no_previous_events()
            .when_async(CivicAddressCommand::RemoveCivicAddress {
                id: Identifier::parse("addr-9").unwrap(),
            })
            .await
            .then_expect_error(DomainError::CivicAddressNotFound(
                Identifier::parse("addr-9").unwrap(),
            ));
    }
}
