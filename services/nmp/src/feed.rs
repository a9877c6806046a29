//! The live feed behind `GET /dashboard/feed`: an ordered JetStream consumer of the
//! installation's events (headers only, from the next event on), broadcast to every open feed
//! of this instance with each event's position in the stream; and the feed's history
//! ([`JetStreamHistory`]): the events a feed that reconnects missed, read from the stream.

use std::time::Duration;

use api::{FeedEvent, FeedHistory, FeedItem};
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::NatsSettings;

/// Events held for a slow feed before it is told it missed some.
pub const CAPACITY: usize = 1024;

/// A new feed source, for `AppState::feed` and `subscribe`.
pub fn channel() -> broadcast::Sender<FeedItem> {
    broadcast::channel(CAPACITY).0
}

/// Starts the feed of the installation named by `nats.prefix`.
pub async fn start(
    nats: &NatsSettings,
    client: async_nats::Client,
    sender: broadcast::Sender<FeedItem>,
) -> anyhow::Result<JoinHandle<()>> {
    let stream = crate::stream_settings(nats)?;
    Ok(subscribe(
        jetstream::new(client),
        stream.stream_name(),
        stream.subjects(),
        sender,
    ))
}

/// An event of a message read from the stream (headers only), with its position.
fn event_of(message: &jetstream::Message) -> Option<FeedEvent> {
    let headers = message.headers.as_ref()?;
    let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
    let position = message.info().ok().map(|info| info.stream_sequence);
    FeedEvent::from_headers(header, position)
}

/// Follows stream `stream` from its next event on and forwards each event to `sender`. If the
/// stream cannot be read (NATS down, the stream not made yet), it tries again every second;
/// what happened meanwhile a reconnecting feed gets from the history.
pub fn subscribe(
    jetstream: jetstream::Context,
    stream: String,
    subjects: String,
    sender: broadcast::Sender<FeedItem>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match follow(&jetstream, &stream, &subjects, &sender).await {
                Ok(()) => tracing::warn!("the live feed's consumer ended; following again"),
                Err(error) => tracing::debug!(%error, "the live feed cannot follow the stream yet"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

async fn follow(
    jetstream: &jetstream::Context,
    stream: &str,
    subjects: &str,
    sender: &broadcast::Sender<FeedItem>,
) -> anyhow::Result<()> {
    let stream = jetstream.get_stream(stream).await?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: subjects.to_string(),
            deliver_policy: DeliverPolicy::New,
            headers_only: true,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        if let Some(event) = event_of(&message) {
            // No open feed is not a failure.
            let _ = sender.send(FeedItem::Event(event));
        }
    }
    Ok(())
}

/// The feed's history: the events of the stream after a position, read with an ordered
/// consumer of their headers.
pub struct JetStreamHistory {
    pub jetstream: jetstream::Context,
    pub stream: String,
    pub subjects: String,
}

impl FeedHistory for JetStreamHistory {
    fn since(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<(Vec<FeedEvent>, bool), String>> {
        Box::pin(async move {
            let mut stream = self
                .jetstream
                .get_stream(&self.stream)
                .await
                .map_err(|e| e.to_string())?;
            let last = stream
                .info()
                .await
                .map_err(|e| e.to_string())?
                .state
                .last_sequence;
            if after >= last {
                return Ok((Vec::new(), false));
            }
            let consumer = stream
                .create_consumer(pull::OrderedConfig {
                    filter_subject: self.subjects.clone(),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: after + 1,
                    },
                    headers_only: true,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
            let mut events = Vec::new();
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| e.to_string())?;
                let position = message.info().map_or(last, |info| info.stream_sequence);
                if let Some(event) = event_of(&message) {
                    if events.len() == limit {
                        return Ok((events, true));
                    }
                    events.push(event);
                }
                if position >= last {
                    break;
                }
            }
            Ok((events, false))
        })
    }
}
