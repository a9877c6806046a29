//! Responses kept for `Repeatability-Request-ID`, so a client that repeats a request (because it
//! never saw the answer) gets the first answer instead of a second execution.
//!
//! A request first reserves its id (a row without a status); the answer is stored when the
//! request completes. A reservation whose request died is taken over after `stale_after`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

/// A stored answer.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a reservation found.
#[derive(Debug)]
pub enum Reservation {
    /// The id is new (or its earlier reservation was abandoned): carry the request out.
    Reserved,
    /// The same request was answered before.
    Answered(StoredResponse),
    /// The same request is being carried out right now.
    InProgress,
    /// The id was used for a different request.
    Mismatch,
}

/// fingerprint, status, headers, body.
type ReservationRow = (String, Option<i16>, Option<Value>, Option<Vec<u8>>);

#[derive(Clone)]
pub struct RepeatabilityStore {
    pool: PgPool,
}

impl RepeatabilityStore {
    pub fn new(pool: PgPool) -> Self {
        RepeatabilityStore { pool }
    }

    pub async fn reserve(
        &self,
        key: &str,
        fingerprint: &str,
        first_sent: DateTime<Utc>,
        stale_after: std::time::Duration,
    ) -> Result<Reservation, sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO repeatable_requests (request_id, fingerprint, first_sent) \
             VALUES ($1, $2, $3) ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(key)
        .bind(fingerprint)
        .bind(first_sent)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Reservation::Reserved);
        }
        let row: Option<ReservationRow> = sqlx::query_as(
            "SELECT fingerprint, status, headers, body FROM repeatable_requests WHERE request_id = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some((stored_fingerprint, status, headers, body)) = row else {
            // Expired between the two statements: treat as new.
            return Box::pin(self.reserve(key, fingerprint, first_sent, stale_after)).await;
        };
        if stored_fingerprint != fingerprint {
            return Ok(Reservation::Mismatch);
        }
        match status {
            Some(status) => Ok(Reservation::Answered(StoredResponse {
                status: status as u16,
                headers: headers
                    .and_then(|h| serde_json::from_value(h).ok())
                    .unwrap_or_default(),
                body: body.unwrap_or_default(),
            })),
            None => {
                let taken_over = sqlx::query(
                    "UPDATE repeatable_requests SET created_at = now() \
                     WHERE request_id = $1 AND status IS NULL \
                       AND created_at < now() - make_interval(secs => $2)",
                )
                .bind(key)
                .bind(stale_after.as_secs_f64())
                .execute(&self.pool)
                .await?;
                Ok(if taken_over.rows_affected() == 1 {
                    Reservation::Reserved
                } else {
                    Reservation::InProgress
                })
            }
        }
    }

    pub async fn complete(&self, key: &str, response: &StoredResponse) -> Result<(), sqlx::Error> {
        let headers = serde_json::to_value(&response.headers).unwrap_or(Value::Null);
        sqlx::query(
            "UPDATE repeatable_requests SET status = $2, headers = $3, body = $4 WHERE request_id = $1",
        )
        .bind(key)
        .bind(response.status as i16)
        .bind(headers)
        .bind(&response.body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Renews the lease of a reservation whose request is still running.
    pub async fn renew(&self, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE repeatable_requests SET created_at = now() \
              WHERE request_id = $1 AND status IS NULL",
        )
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a reservation whose request failed on nmp's side, so a repeat may try again.
    pub async fn release(&self, key: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM repeatable_requests WHERE request_id = $1 AND status IS NULL")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops answers older than `retention`; returns how many.
    pub async fn expire(&self, retention: std::time::Duration) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "DELETE FROM repeatable_requests WHERE created_at < now() - make_interval(secs => $1)",
        )
        .bind(retention.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
