//! The backend simulator (`nmp sim`): a real HTTP server that plays nmp's backend API — the
//! routes `backend::client` documents — with its state in memory, for development, tests and
//! demos. Start it in-process with [`spawn`] (a free port) or [`serve`] (a listener of yours).
//!
//! It behaves as a strict backend would: an upload order completes after a delay
//! ([`SimSettings::order_delay`], or `/_sim/settings`), number by number, and rejects a number
//! (codes in [`rejection`]) whose calling code it does not know, whose tenant has no active
//! consent or has not consented to its country, whose usage or capabilities the product does
//! not offer, whose civic address or location the tenant does not have (or that has neither
//! while it needs one), or that another tenant holds. Placing an order under a known id returns
//! that order and does nothing more; releasing a number the tenant does not hold succeeds;
//! updating one is rejected (`NumberNotFound`).
//!
//! Its own API, `/_sim` (JSON in camelCase throughout, see [`model`] and [`faults`]; a number's
//! `configuration` is the backend API's `NumberSettings`):
//!
//! | verb | path | what |
//! |---|---|---|
//! | POST | `/_sim/consents` | `{"tenantId", "countries": ["GB"], "contacts": [{"fullName", "email"}]}`: adds or replaces a consent, `active` (201 new, 200 replaced) |
//! | POST | `/_sim/consents/{tenantId}/status` | `{"status": "active" \| "suspended" \| "removed"}` |
//! | POST | `/_sim/tenants/{tenantId}/civicAddresses` | a civic address with its `locations` (ids generated when left out; a known `id` replaces) |
//! | DELETE | `/_sim/tenants/{tenantId}/civicAddresses/{id}` | removes one |
//! | GET, POST | `/_sim/faults` | the faults switched on; POST replaces them all (`{}`: none) |
//! | GET, POST | `/_sim/settings` | `{"orderDelayMs": 200}` |
//! | GET | `/_sim/ledger[?since=N]` | `{"value": [{"sequence", "at", "kind", "tenantId", ...}]}`: every change accepted |
//! | GET | `/_sim/numbers[?tenantId=…]` | `{"value": [{"tenantId", "orderId", "telephoneNumber", "product", "assignmentStatus", "configuration"}]}` |
//! | GET | `/_sim/stats` | calls by route, faults dealt, the largest batch |
//! | POST | `/_sim/reset` | back to the state at start-up, no faults |
//!
//! Faults apply to the backend API only: `{"rateLimit": {"limit": 100, "windowSeconds": 60},
//! "serverError": {"status": 503, "when": {"next": 2}}, "slow": {"delayMs": 5000, "when":
//! "always"}, "dropConnection": {"afterApplying": false, "when": {"everyNth": 3}}}`, where `when`
//! is `"always"`, `{"next": N}`, `{"everyNth": N}` or `{"random": {"probability": p, "seed": s}}`.

mod connection;
pub mod control;
mod countries;
pub mod faults;
pub mod model;
mod routes;
mod state;

use std::future::Future;
use std::io;
use std::net::SocketAddr;

pub use connection::{ConnectionControl, DroppableListener};
pub use control::SimControl;
pub use faults::{DropConnection, Faults, RateLimit, ServerError, Slow, When};
pub use model::{
    Change, CivicAddressInput, ConsentInput, ContactInput, HeldNumber, LedgerEntry, LocationInput,
    RuntimeSettings, Stats,
};
pub use routes::router;
pub use state::{OPERATOR_ID, SimError, SimErrorKind, SimSettings, Simulator, rejection};

/// Serves the simulator on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    simulator: Simulator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = router(simulator).into_make_service_with_connect_info::<ConnectionControl>();
    axum::serve(DroppableListener::new(listener), app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A simulator serving on a free loopback port, stopped when dropped.
#[derive(Debug)]
pub struct RunningSim {
    pub addr: SocketAddr,
    /// The state it serves, to look at without HTTP.
    pub simulator: Simulator,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl RunningSim {
    /// Its base URL, such as `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of its `/_sim` API.
    pub fn control(&self) -> SimControl {
        SimControl::new(self.url())
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a simulator on `127.0.0.1` and a free port, in the current tokio runtime.
pub async fn spawn(settings: SimSettings) -> io::Result<RunningSim> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let simulator = Simulator::new(settings);
    let task = tokio::spawn(serve(listener, simulator.clone(), std::future::pending()));
    Ok(RunningSim {
        addr,
        simulator,
        task,
    })
}
