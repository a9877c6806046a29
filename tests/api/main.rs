//! End-to-end tests of the Provisioning API: a real nmp on a free port, a fresh Postgres
//! database per test, real HTTP.

mod accounts;
mod asyncapi;
mod audit;
mod auth_matrix;
mod bad_input;
mod capabilities;
mod concurrency;
mod consents;
mod dashboard;
mod deployment;
mod etags;
mod event_store;
mod examples;
mod feed_limits;
mod http_limits;
mod import;
mod lists;
mod membership;
mod nats_api;
mod numbers;
mod poison;
mod portal;
mod portal_accounts;
mod portal_browser;
mod portal_history;
mod portal_numbers;
mod portal_oidc;
mod projections;
mod provisioning;
mod public_url;
mod rebuild;
mod relay;
mod repeatability;
mod repeatability_outcomes;
mod saga;
