//! How a stored event looks on NATS: its subject, its headers (CloudEvents 1.0 attributes as
//! `ce-*`, `Nats-Msg-Id`, `traceparent`) and its payload (the stored event JSON, unchanged).

use async_nats::HeaderMap;

/// One row of the `events` table, as the relay reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// The event JSON as stored.
    pub payload: String,
    pub time: Option<String>,
    pub traceparent: Option<String>,
    /// The inserting transaction, as text (`xid8`).
    pub tx_id: String,
    pub global_position: i64,
}

/// Writes an aggregate id as one subject token: letters, digits, `-`, `_` and `+` stay; every
/// other byte (a `.`, `*`, `>`, space, `%`, non-ASCII) becomes `%XX`, its hex value. Account
/// names, E.164 numbers and tenant ids need no escaping.
pub fn subject_token(id: &str) -> String {
    let mut token = String::with_capacity(id.len());
    for byte in id.bytes() {
        let c = byte as char;
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+') {
            token.push(c);
        } else {
            token.push_str(&format!("%{byte:02X}"));
        }
    }
    if token.is_empty() {
        token.push_str("%00");
    }
    token
}

/// `<prefix>.events.<aggregate type>.<aggregate id>`.
pub fn subject(prefix: &str, event: &StoredEvent) -> String {
    format!(
        "{prefix}.events.{}.{}",
        subject_token(&event.aggregate_type),
        subject_token(&event.aggregate_id)
    )
}

/// `<type>:<id>:<sequence>`: unique per event, so a re-publish inside the duplicate window is
/// dropped by JetStream.
pub fn message_id(event: &StoredEvent) -> String {
    format!(
        "{}:{}:{}",
        event.aggregate_type, event.aggregate_id, event.sequence
    )
}

/// Header values must be visible ASCII; anything else is dropped rather than risking a panic in
/// the client.
fn header_safe(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect()
}

pub fn headers(prefix: &str, event: &StoredEvent) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let id = header_safe(&message_id(event));
    headers.insert("Nats-Msg-Id", id.as_str());
    headers.insert("ce-specversion", "1.0");
    headers.insert("ce-id", id.as_str());
    headers.insert(
        "ce-source",
        header_safe(&format!("urn:nmp:{prefix}")).as_str(),
    );
    headers.insert(
        "ce-type",
        header_safe(&format!(
            "nmp.{}.{}",
            event.aggregate_type, event.event_type
        ))
        .as_str(),
    );
    headers.insert(
        "ce-subject",
        header_safe(&format!("{}/{}", event.aggregate_type, event.aggregate_id)).as_str(),
    );
    if let Some(time) = &event.time {
        headers.insert("ce-time", header_safe(time).as_str());
    }
    headers.insert("ce-datacontenttype", "application/json");
    headers.insert(
        "nmp-event-version",
        header_safe(&event.event_version).as_str(),
    );
    headers.insert(
        "nmp-aggregate-type",
        header_safe(&event.aggregate_type).as_str(),
    );
    headers.insert(
        "nmp-aggregate-id",
        header_safe(&event.aggregate_id).as_str(),
    );
    headers.insert("nmp-sequence", event.sequence.to_string().as_str());
    headers.insert(
        "nmp-global-position",
        event.global_position.to_string().as_str(),
    );
    if let Some(traceparent) = &event.traceparent {
        headers.insert("traceparent", header_safe(traceparent).as_str());
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_the_domain_need_no_escaping() {
        assert_eq!(subject_token("+15105850321"), "+15105850321");
        assert_eq!(subject_token("contoso_1-A"), "contoso_1-A");
        assert_eq!(
            subject_token("a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a"),
            "a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a"
        );
    }

    #[test]
    fn subject_separators_and_wildcards_are_escaped() {
        assert_eq!(subject_token("a.b"), "a%2Eb");
        assert_eq!(subject_token("*>"), "%2A%3E");
        assert_eq!(subject_token("50%"), "50%25");
        assert_eq!(subject_token("é"), "%C3%A9");
        assert_eq!(subject_token(""), "%00");
    }
}
