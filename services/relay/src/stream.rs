//! The JetStream stream nmp owns: its name and subjects derive from the installation's prefix,
//! and its configuration is brought to what the settings ask at start-up.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// Where an installation's events go on NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Subject prefix, such as `nmp`; also names the stream (`NMP_EVENTS`).
    pub prefix: String,
    /// Replicas of the stream: 1 on one server, 3 in a production cluster.
    pub replicas: usize,
    /// How long JetStream remembers `Nats-Msg-Id`s to drop re-published events.
    pub duplicate_window: Duration,
}

impl StreamSettings {
    pub fn new(prefix: &str) -> Result<StreamSettings, StreamError> {
        validate_prefix(prefix)?;
        Ok(StreamSettings {
            prefix: prefix.to_string(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
        })
    }

    /// `nmp` → `NMP_EVENTS`.
    pub fn stream_name(&self) -> String {
        format!(
            "{}_EVENTS",
            self.prefix.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// Every event subject of the installation.
    pub fn subjects(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    fn wanted(&self) -> stream::Config {
        stream::Config {
            name: self.stream_name(),
            subjects: vec![self.subjects()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            description: Some(format!("nmp events of installation '{}'", self.prefix)),
            ..Default::default()
        }
    }
}

/// A prefix is one subject token of letters, digits, `_` and `-`, so it can also name a stream.
pub fn validate_prefix(prefix: &str) -> Result<(), StreamError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 32
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(StreamError::InvalidPrefix(prefix.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("NATS prefix '{0}' must be 1 to 32 letters, digits, '_' or '-'")]
    InvalidPrefix(String),
    #[error(
        "stream {name} uses {found:?} storage but nmp needs {wanted:?}; storage cannot change in \
         place: move the stream's messages to a new stream or delete it"
    )]
    StorageMismatch {
        name: String,
        found: stream::StorageType,
        wanted: stream::StorageType,
    },
    #[error("cannot update stream {name} to the configured settings: {reason}")]
    Update { name: String, reason: String },
    #[error("cannot create or read stream {name}: {reason}")]
    Unavailable { name: String, reason: String },
}

/// Creates the stream, or brings an existing one to the wanted configuration (subjects,
/// replicas, duplicate window). What cannot change in place is reported, not ignored.
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<stream::Stream, StreamError> {
    let name = settings.stream_name();
    let wanted = settings.wanted();
    let unavailable = |reason: String| StreamError::Unavailable {
        name: name.clone(),
        reason,
    };
    for _ in 0..3 {
        match jetstream.get_stream(&name).await {
            Ok(mut stream) => {
                let info = stream
                    .info()
                    .await
                    .map_err(|e| unavailable(e.to_string()))?;
                let found = &info.config;
                if found.storage != wanted.storage {
                    return Err(StreamError::StorageMismatch {
                        name,
                        found: found.storage,
                        wanted: wanted.storage,
                    });
                }
                let differs = found.subjects != wanted.subjects
                    || found.num_replicas != wanted.num_replicas
                    || found.duplicate_window != wanted.duplicate_window;
                if differs {
                    tracing::info!(
                        stream = %name,
                        replicas = wanted.num_replicas,
                        duplicate_window = ?wanted.duplicate_window,
                        "updating the stream to the configured settings"
                    );
                    let mut updated = found.clone();
                    updated.subjects = wanted.subjects.clone();
                    updated.num_replicas = wanted.num_replicas;
                    updated.duplicate_window = wanted.duplicate_window;
                    jetstream
                        .update_stream(updated)
                        .await
                        .map_err(|e| StreamError::Update {
                            name: name.clone(),
                            reason: e.to_string(),
                        })?;
                }
                return Ok(stream);
            }
            Err(error) if is_not_found(&error) => {
                match jetstream.create_stream(wanted.clone()).await {
                    Ok(stream) => {
                        tracing::info!(stream = %name, "created the event stream");
                        return Ok(stream);
                    }
                    // Another instance created it in between: read it again.
                    Err(error) => tracing::debug!(%error, "creating the stream failed; retrying"),
                }
            }
            Err(error) => return Err(unavailable(error.to_string())),
        }
    }
    Err(unavailable(
        "the stream neither exists nor can be created".to_string(),
    ))
}

fn is_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(inner)
            if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_prefix() {
        let settings = StreamSettings::new("nmp-test_1").unwrap();
        assert_eq!(settings.stream_name(), "NMP_TEST_1_EVENTS");
        assert_eq!(settings.subjects(), "nmp-test_1.events.>");
    }

    #[test]
    fn prefixes_are_single_tokens() {
        for bad in ["", "a.b", "a b", "a>", "*", &"x".repeat(33)] {
            assert!(StreamSettings::new(bad).is_err(), "{bad}");
        }
    }
}
