//! The kinds of aggregate nmp keeps: the one list every reader of events (the audit routes and
//! export, the projector, the AsyncAPI document's checks) takes them from.

use cqrs_es::Aggregate;

use crate::{Account, CivicAddress, Consent, Number};

/// An aggregate kind, named as in the event store, on NATS subjects and in the audit routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AggregateKind {
    Account,
    Number,
    Consent,
    CivicAddress,
}

impl AggregateKind {
    /// Every kind.
    pub const ALL: [AggregateKind; 4] = [
        AggregateKind::Account,
        AggregateKind::Number,
        AggregateKind::Consent,
        AggregateKind::CivicAddress,
    ];

    /// The aggregate type as stored (`events.aggregate_type`): the aggregate's `TYPE`.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateKind::Account => Account::TYPE,
            AggregateKind::Number => Number::TYPE,
            AggregateKind::Consent => Consent::TYPE,
            AggregateKind::CivicAddress => CivicAddress::TYPE,
        }
    }

    pub fn parse(text: &str) -> Option<AggregateKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Every kind's name, in order (for messages and argument parsers).
    pub fn names() -> [&'static str; 4] {
        Self::ALL.map(AggregateKind::as_str)
    }
}

impl std::fmt::Display for AggregateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
