//! The home page: what needs attention, and what happened lately.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};

use super::pages::*;
use super::*;
use crate::AppState;
use projections::failures::FailureQuery;
use projections::query::{
    Activity, ConsentTotals, NumberGrouping, Totals, consent_totals, number_totals, recent_activity,
};

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/portal", get(home))
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    match Home::read(&state).await {
        Ok(home) => home_html(&session, &home).into_response(),
        Err(error) => unreadable("figures", error),
    }
}

/// What the home page shows: what needs attention, and what happened lately.
struct Home {
    consents: ConsentTotals,
    failures: u64,
    by_sync_state: Totals,
    by_service: Totals,
    activity: Vec<Activity>,
}

impl Home {
    pub async fn read(state: &AppState) -> Result<Home, projections::query::QueryError> {
        let pool = state.commands.store().pool();
        let failed = projections::failures::failures(
            pool,
            &FailureQuery {
                after: None,
                skip: 0,
                take: 0,
                count: true,
            },
        )
        .await?;
        Ok(Home {
            consents: consent_totals(pool).await?,
            failures: failed.total.unwrap_or(0),
            by_sync_state: number_totals(pool, NumberGrouping::SyncState, None).await?,
            by_service: number_totals(pool, NumberGrouping::Service, None).await?,
            activity: recent_activity(pool, 10).await?,
        })
    }

    /// Consents whose customer relationship has not been answered yet.
    fn unanswered(&self) -> u64 {
        self.consents
            .by_relationship_status
            .iter()
            .filter(|g| g.key.is_none())
            .map(|g| g.count)
            .sum()
    }
}

fn totals_table(caption: &str, totals: &Totals) -> Markup {
    html! {
        table {
            caption { (caption) }
            thead { tr { th scope="col" { "Group" } th scope="col" { "Numbers" } } }
            tbody {
                @for group in &totals.groups {
                    tr {
                        td { (group.key.as_deref().unwrap_or("none")) }
                        td { (group.count) }
                    }
                }
                @if totals.groups.is_empty() {
                    tr { td colspan="2" { "No numbers yet" } }
                }
            }
        }
    }
}

fn home_html(session: &Session, home: &Home) -> Markup {
    page(
        "Home",
        Some(session),
        html! {
            h1 { "What needs attention" }
            div.cards {
                section.card aria-labelledby="consents" {
                    h2 id="consents" { "Consents waiting for an answer" }
                    p.figure { (home.unanswered()) }
                    p.hint { (in_all(home.consents.total, "consent")) }
                    p { a href="/portal/consents" { "See the consents" } }
                }
                section.card aria-labelledby="failures" {
                    h2 id="failures" { "Provisioning failures" }
                    p.figure { (home.failures) }
                    p { a href="/portal/failures" { "See the failures" } }
                }
                section.card aria-labelledby="numbers" {
                    h2 id="numbers" { "Numbers" }
                    p.figure { (home.by_sync_state.total) }
                }
            }
            div.cards {
                section.card { (totals_table("Numbers by sync state", &home.by_sync_state)) }
                section.card { (totals_table("Numbers by service", &home.by_service)) }
            }
            section.card aria-labelledby="activity" {
                h2 id="activity" { "Recent activity" }
                table {
                    thead {
                        tr {
                            th scope="col" { "When" }
                            th scope="col" { "Who" }
                            th scope="col" { "What" }
                            th scope="col" { "Change" }
                        }
                    }
                    tbody {
                        @for item in &home.activity {
                            tr {
                                td { (item.occurred_at.format("%Y-%m-%d %H:%M:%S UTC")) }
                                td { (item.subject.as_deref().unwrap_or("unknown")) }
                                td { (item.aggregate_type) " " (item.aggregate_id) }
                                td { (item.event_type) }
                            }
                        }
                        @if home.activity.is_empty() {
                            tr { td colspan="4" { "Nothing has happened yet" } }
                        }
                    }
                }
            }
        },
    )
}
