//! The live feed behind `GET /dashboard/feed`: a core NATS subscription (not durable: a feed
//! shows what happens while it is open) to the installation's events, broadcast to every open
//! feed of this instance.

use api::{FeedEvent, FeedItem};
use futures::StreamExt;
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
    relay::stream::validate_prefix(&nats.prefix)?;
    subscribe(client, &nats.prefix, sender).await
}

/// Subscribes to `<prefix>.events.>` and forwards each event to `sender` until the connection
/// closes. The client re-subscribes by itself after a reconnect; while NATS is down the feed
/// is quiet.
pub async fn subscribe(
    client: async_nats::Client,
    prefix: &str,
    sender: broadcast::Sender<FeedItem>,
) -> anyhow::Result<JoinHandle<()>> {
    let mut subscriber = client.subscribe(format!("{prefix}.events.>")).await?;
    Ok(tokio::spawn(async move {
        while let Some(message) = subscriber.next().await {
            let Some(headers) = &message.headers else {
                continue;
            };
            let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
            if let Some(event) = FeedEvent::from_headers(header) {
                // No open feed is not a failure.
                let _ = sender.send(FeedItem::Event(event));
            }
        }
        tracing::warn!("the live feed's NATS subscription ended");
    }))
}
