//! Opening the database: create it when missing, then bring its schema up to date.

use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("cannot create database: {0}")]
    Create(#[source] sqlx::Error),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot migrate the database schema: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("invalid database URL: {0}")]
    Url(#[source] sqlx::Error),
}

/// How long a pooled connection may sit idle and still be handed out without a ping.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// Connects to `url`, creating the database if it does not exist and running the migrations.
/// Several processes may start at once: sqlx serialises migrations with an advisory lock.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, DatabaseError> {
    // Parse first so a malformed URL is reported as such, not as a failed connection.
    let options: PgConnectOptions = url.parse().map_err(DatabaseError::Url)?;
    if !Postgres::database_exists(url)
        .await
        .map_err(DatabaseError::Connect)?
    {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!(database = options.get_database(), "created database"),
            // Another process may have created it in between.
            Err(error) if is_duplicate_database(&error) => {}
            Err(error) => return Err(DatabaseError::Create(error)),
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // A round trip before every use was a sixth of a command's CPU in nmp (and one of its
        // round trips): only a connection idle for a while is checked before it is handed out.
        // One that broke since its last use fails its statement, which callers see as the
        // database being unavailable, and is closed.
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for < IDLE_BEFORE_PING {
                    return Ok(true);
                }
                use sqlx::Connection;
                Ok(connection.ping().await.is_ok())
            })
        })
        .connect_with(options)
        .await
        .map_err(DatabaseError::Connect)?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(DatabaseError::Migrate)?;
    Ok(pool)
}

fn is_duplicate_database(error: &sqlx::Error) -> bool {
    // 42P04: duplicate_database; 23505: the race inside CREATE DATABASE on pg_database.
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42P04" || code == "23505")
}

/// A small pool of its own for long reads (the audit export), so they cannot take the
/// connections the API, projector and saga need: at most `max_connections`, each statement
/// cut at `statement_timeout`, a transaction left idle ended after a minute. Connects lazily:
/// the schema is the event store's, migrated by `connect`.
pub fn connect_reader(
    url: &str,
    max_connections: u32,
    statement_timeout: Duration,
) -> Result<PgPool, DatabaseError> {
    let options: PgConnectOptions = url.parse().map_err(DatabaseError::Url)?;
    let options = options.options([
        (
            "statement_timeout",
            format!("{}ms", statement_timeout.as_millis()),
        ),
        ("idle_in_transaction_session_timeout", "60000ms".to_string()),
    ]);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options))
}
