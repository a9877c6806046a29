//! Uploading numbers from a CSV file into an account, on the import engine that
//! `nmp import numbers` uses (`crate::import`): the file is read and every row checked against
//! the domain's rules, and the portal shows a preview with every refused row (row, column and
//! rule) before anything is written. Staff then press Import: the rows that passed are written
//! in the background, a hundred at a time, while a progress page follows them (its script asks
//! for the progress every half second; without script the page refreshes itself); a row
//! refused when written does not stop the others. At the end the page shows each row's outcome,
//! and the file comes back with a result column per row as CSV.
//!
//! On top of the engine's checks the portal asks up front for what the backend would refuse
//! later: a number for calling users needs a civic address or location unless its enterprise
//! may update the address.
//!
//! Uploads are kept in this process's memory, under a random id, for [`KEPT_FOR`] after they
//! were checked or finished. A restart forgets them: a preview must then be uploaded again,
//! and an import that was running stops after the hundred rows it was writing. The rows
//! already written stay; since each row sets a number's settings, uploading the same file
//! again writes the rest, and the rows already in come back as `updated`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use domain::{AccountName, AccountState};
use maud::{Markup, PreEscaped, html};

use super::pages::*;
use super::*;
use crate::AppState;
use crate::import::{self, Checked, FileError, ImportError, RowError, RowResult, Sheet};

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/portal/accounts/{name}/uploads/new", get(new_upload))
        .route(
            "/portal/accounts/{name}/uploads",
            axum::routing::post(receive),
        )
        .route(
            "/portal/accounts/{name}/uploads/{id}",
            get(upload_page).post(start_import),
        )
        .route(
            "/portal/accounts/{name}/uploads/{id}/progress",
            get(progress),
        )
        .route(
            "/portal/accounts/{name}/uploads/{id}/check.csv",
            get(check_csv),
        )
        .route(
            "/portal/accounts/{name}/uploads/{id}/results.csv",
            get(results_csv),
        )
}

/// The largest file taken, in bytes: 10,000 rows of every column fit well within it.
pub const MAX_UPLOAD_BYTES: usize = 16 * 1024 * 1024;
/// How long an upload is kept after it was checked or its import finished.
pub const KEPT_FOR: Duration = Duration::from_secs(2 * 60 * 60);
/// Uploads kept at once; the oldest that is not importing makes way for a new one.
const MAX_UPLOADS: usize = 16;
/// Refused rows shown on a page; the CSV files hold them all.
const ROWS_SHOWN: usize = 500;

/// One uploaded file: its rows, and how far its import has come.
struct Upload {
    account: AccountName,
    file_name: String,
    sheet: Sheet,
    stage: Mutex<Stage>,
}

enum Stage {
    /// Checked and shown; nothing written until staff press Import.
    Checked {
        checked: Vec<Checked>,
        at: Instant,
    },
    Importing {
        done: usize,
        total: usize,
    },
    Done {
        results: Vec<RowResult>,
        at: Instant,
    },
    /// The import stopped unexpectedly; the rows written so far stay.
    Failed {
        done: usize,
        total: usize,
        at: Instant,
    },
}

impl Stage {
    fn finished_at(&self) -> Option<Instant> {
        match self {
            Stage::Checked { at, .. } | Stage::Done { at, .. } | Stage::Failed { at, .. } => {
                Some(*at)
            }
            Stage::Importing { .. } => None,
        }
    }
}

/// The uploads of this process, by id.
static UPLOADS: LazyLock<Mutex<HashMap<String, Arc<Upload>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps `upload`, forgetting uploads past [`KEPT_FOR`] and, when full, the oldest that is not
/// importing. `None` when every place holds a running import.
fn keep(upload: Upload) -> Option<String> {
    let mut uploads = lock(&UPLOADS);
    uploads.retain(|_, u| {
        lock(&u.stage)
            .finished_at()
            .is_none_or(|at| at.elapsed() < KEPT_FOR)
    });
    while uploads.len() >= MAX_UPLOADS {
        let oldest = uploads
            .iter()
            .filter_map(|(id, u)| lock(&u.stage).finished_at().map(|at| (at, id.clone())))
            .min()?;
        uploads.remove(&oldest.1);
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    uploads.insert(id.clone(), Arc::new(upload));
    Some(id)
}

/// The upload `id` of account `name`.
fn upload_of(name: &str, id: &str) -> Result<Arc<Upload>, Box<Response>> {
    lock(&UPLOADS)
        .get(id)
        .filter(|u| u.account.as_str() == name)
        .cloned()
        .ok_or_else(|| {
            Box::new(
                (
                    StatusCode::NOT_FOUND,
                    trouble(
                        "This upload is no longer kept (uploads are kept for two hours, and not across a restart of nmp). Upload the file again: rows already imported come back as updated.",
                    ),
                )
                    .into_response(),
            )
        })
}

fn uploads_link(account: &str) -> String {
    format!("/portal/accounts/{}/uploads", urlencoding(account))
}

fn may_not_upload() -> Response {
    (
        StatusCode::FORBIDDEN,
        trouble(
            "Your role may read numbers but not upload them. Ask an administrator for a role that may write.",
        ),
    )
        .into_response()
}

async fn account_of(state: &AppState, name: &str) -> Result<AccountState, Box<Response>> {
    let not_found = || {
        Box::new(
            (
                StatusCode::NOT_FOUND,
                trouble("There is no account by this name."),
            )
                .into_response(),
        )
    };
    let name = AccountName::parse(name.to_string()).map_err(|_| not_found())?;
    let loaded = state
        .commands
        .account(&name)
        .await
        .map_err(|error| Box::new(unreadable("account", error)))?;
    loaded.aggregate.state.ok_or_else(not_found)
}

// ---- the form ------------------------------------------------------------------------------

async fn new_upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    if !session.principal.allows(auth::Permission::Write) {
        return may_not_upload();
    }
    match account_of(&state, &name).await {
        Ok(account) => form_html(&session, account.name.as_str(), None).into_response(),
        Err(answer) => *answer,
    }
}

fn form_html(session: &Session, account: &str, error: Option<&str>) -> Markup {
    let numbers = format!("/portal/accounts/{}/numbers", urlencoding(account));
    page(
        "Upload numbers",
        Some(session),
        html! {
            h1 { "Upload numbers to " (account) }
            p {
                "A CSV file with one row per number, at most " (import::MAX_ROWS) " rows. The columns are those of "
                a href={ (numbers) "/export.csv" } { "the numbers exported as CSV" }
                ", so a file exported, edited and uploaded again changes those numbers; several values in one cell are separated by "
                code { ";" } " (" code { "InboundCalling;OutboundCalling" } ")."
            }
            form.stack method="post" action=(uploads_link(account)) enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="file" { "CSV file" }
                input id="file" name="file" type="file" accept=".csv,text/csv" required
                    aria-describedby="file-hint file-error";
                p.hint id="file-hint" { "Every row is checked first; nothing is written until you have seen the check and pressed Import." }
                @if let Some(error) = error {
                    p.error id="file-error" role="alert" { (error) }
                }
                button type="submit" { "Check the file" }
            }
            p { a href=(numbers) { "Numbers of " (account) } }
        },
    )
}

// ---- receiving and checking the file -------------------------------------------------------

/// One part of a `multipart/form-data` body.
struct Part<'a> {
    name: String,
    file_name: Option<String>,
    data: &'a [u8],
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w[0] == first && w == needle)
        .map(|i| i + from)
}

/// A parameter of a `Content-Disposition` or `Content-Type` header (`name="file"`).
fn parameter(header: &str, key: &str) -> Option<String> {
    let mut rest = header;
    while let Some(at) = rest.find(';') {
        rest = rest[at + 1..].trim_start();
        let Some((name, value)) = rest.split_once('=') else {
            break;
        };
        let (value, after) = match value.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').unwrap_or(quoted.len());
                (&quoted[..end], &quoted[end..])
            }
            None => {
                let end = value.find(';').unwrap_or(value.len());
                (value[..end].trim(), &value[end..])
            }
        };
        if name.trim().eq_ignore_ascii_case(key) {
            return Some(value.to_string());
        }
        rest = after;
    }
    None
}

/// The parts of a `multipart/form-data` body, as a browser sends a form with a file.
fn multipart<'a>(content_type: &str, body: &'a [u8]) -> Option<Vec<Part<'a>>> {
    if !content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return None;
    }
    let boundary = parameter(content_type, "boundary")?;
    let delimiter = format!("--{boundary}");
    let between = format!("\r\n--{boundary}");
    let mut at = find(body, delimiter.as_bytes(), 0)?;
    let mut parts = Vec::new();
    loop {
        let after = at + delimiter.len();
        if body.get(after..after + 2) == Some(b"--") {
            return Some(parts);
        }
        let start = find(body, b"\r\n", after)? + 2;
        let end = find(body, between.as_bytes(), start)?;
        let part = &body[start..end];
        let head_end = find(part, b"\r\n\r\n", 0)?;
        let head = std::str::from_utf8(&part[..head_end]).ok()?;
        let disposition = head.split("\r\n").find(|line| {
            line.to_ascii_lowercase()
                .starts_with("content-disposition:")
        })?;
        parts.push(Part {
            name: parameter(disposition, "name")?,
            file_name: parameter(disposition, "filename"),
            data: &part[head_end + 4..],
        });
        at = end + 2;
    }
}

/// Reads the file a form sent, checks every row without writing anything, keeps the upload
/// and shows its preview.
async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_UPLOAD_BYTES).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            trouble(&format!(
                "The file is larger than {} MB. Split it into files of at most {} rows.",
                MAX_UPLOAD_BYTES / (1024 * 1024),
                import::MAX_ROWS
            )),
        )
            .into_response();
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(parts) = multipart(content_type, &bytes) else {
        return (
            StatusCode::BAD_REQUEST,
            trouble("This form was not sent as the portal's upload page sends it. Reload the page and try again."),
        )
            .into_response();
    };
    let field = |key: &str| parts.iter().find(|p| p.name == key);
    let csrf = field("csrf").and_then(|p| std::str::from_utf8(p.data).ok());
    if let Err(refused) = writer(
        &session,
        &headers,
        csrf,
        "Your role may read numbers but not upload them. Ask an administrator for a role that may write.",
    ) {
        return *refused;
    }
    let account = match account_of(&state, &name).await {
        Ok(account) => account,
        Err(answer) => return *answer,
    };
    let refuse = |message: &str| {
        (
            StatusCode::BAD_REQUEST,
            form_html(&session, account.name.as_str(), Some(message)),
        )
            .into_response()
    };
    let Some(file) = field("file").filter(|f| !f.data.is_empty()) else {
        return refuse("Choose a CSV file to upload.");
    };
    let sheet = match import::read(file.data) {
        Ok(sheet) => sheet,
        Err(error) => return refuse(&file_error(&error)),
    };
    if sheet.rows.is_empty() {
        return refuse("The file has a header row but no numbers under it.");
    }
    let checked = match import::check(&state.commands, &account.name, &sheet).await {
        Ok(checked) => checked,
        Err(ImportError::AccountNotFound(_)) => {
            return (
                StatusCode::NOT_FOUND,
                trouble("There is no account by this name."),
            )
                .into_response();
        }
        Err(error) => return unreadable("upload", error),
    };
    let upload = Upload {
        account: account.name.clone(),
        file_name: file
            .file_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "the file".to_string()),
        sheet,
        stage: Mutex::new(Stage::Checked {
            checked: checked.into_iter().map(ask_for_address).collect(),
            at: Instant::now(),
        }),
    };
    match keep(upload) {
        Some(id) => Redirect::to(&format!("{}/{id}", uploads_link(account.name.as_str()))).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            trouble("nmp is importing as many files as it takes at once. Try again when one has finished."),
        )
            .into_response(),
    }
}

fn file_error(error: &FileError) -> String {
    format!("{}.", sentence(&error.to_string()))
}

/// Refuses a row that passed the engine's checks but that the backend would refuse: a number
/// for calling users with no civic address or location whose enterprise may not update it.
fn ask_for_address(mut item: Checked) -> Checked {
    if let Ok((_, details)) = &item.outcome
        && let Some(service) = super::numbers::needs_address(details)
    {
        let service = service.wire_name();
        item.outcome = Err(RowError {
            row: item.row,
            column: Some(format!(
                "serviceDetails_{service}_configuration_civicAddressId"
            )),
            code: "CivicAddressRequired".to_string(),
            message: format!(
                "a number for calling users needs a civic address or location \
                 (serviceDetails_{service}_configuration_civicAddressId or _locationId), unless \
                 serviceDetails_{service}_configuration_allowTenantAddressUpdate is true"
            ),
        });
    }
    item
}

// ---- the upload's page: preview, progress, result ------------------------------------------

async fn upload_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let upload = match upload_of(&name, &id) {
        Ok(upload) => upload,
        Err(answer) => return *answer,
    };
    let base = format!("{}/{id}", uploads_link(&name));
    let stage = lock(&upload.stage);
    let body = match &*stage {
        Stage::Checked { checked, .. } => preview_html(&session, &upload, &base, checked),
        Stage::Importing { done, total } => progress_html(&session, &upload, &base, *done, *total),
        Stage::Done { results, .. } => result_html(&session, &upload, &base, results),
        Stage::Failed { done, total, .. } => page(
            "Import stopped",
            Some(&session),
            html! {
                h1 { "The import into " (upload.account.as_str()) " stopped" }
                p.error role="alert" {
                    "It stopped unexpectedly after " (done) " of " (total) " rows. The rows written so far stay; upload the file again to write the rest."
                }
                p { a href={ "/portal/accounts/" (urlencoding(upload.account.as_str())) "/uploads/new" } { "Upload again" } }
            },
        ),
    };
    body.into_response()
}

fn refused_table(caption: &str, errors: &[&RowError]) -> Markup {
    html! {
        table.rows {
            caption { (caption) }
            thead {
                tr {
                    th scope="col" { "Row" }
                    th scope="col" { "Column" }
                    th scope="col" { "Rule" }
                    th scope="col" { "What is wrong" }
                }
            }
            tbody {
                @for error in errors.iter().take(ROWS_SHOWN) {
                    tr {
                        td { (error.row) }
                        td { (error.column.as_deref().unwrap_or("the whole row")) }
                        td { (error.code) }
                        td { (sentence(&error.message)) }
                    }
                }
            }
        }
        @if errors.len() > ROWS_SHOWN {
            p.hint { "The first " (ROWS_SHOWN) " of " (errors.len()) " refused rows are shown; the CSV file holds them all." }
        }
    }
}

/// A message as a sentence: its first letter a capital.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn plural(count: usize, what: &str) -> String {
    if count == 1 {
        format!("1 {what}")
    } else {
        format!("{count} {what}s")
    }
}

fn preview_html(session: &Session, upload: &Upload, base: &str, checked: &[Checked]) -> Markup {
    let account = upload.account.as_str();
    let refused: Vec<&RowError> = checked
        .iter()
        .filter_map(|c| c.outcome.as_ref().err())
        .collect();
    let good = checked.len() - refused.len();
    let may_write = session.principal.allows(auth::Permission::Write);
    page(
        "Check the upload",
        Some(session),
        html! {
            h1 { "Check the upload to " (account) }
            p {
                (upload.file_name) ": " (plural(checked.len(), "row")) ". "
                strong { (plural(good, "row")) " can go in" } "; "
                @if refused.is_empty() { "none is refused." } @else { strong.error { (refused.len()) " refused" } " and left out." }
                " Nothing is written until you press Import."
            }
            @if !refused.is_empty() {
                (refused_table("Rows refused, and why", &refused))
            }
            p { a href={ (base) "/check.csv" } download { "Download every row's check as CSV" } }
            @if good > 0 && may_write {
                form.import method="post" action=(base) {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button type="submit" { "Import " (plural(good, "row")) }
                }
            } @else if good == 0 {
                p { "No row can go in. Correct the file and upload it again." }
            }
            p.actions {
                a href={ "/portal/accounts/" (urlencoding(account)) "/uploads/new" } { "Upload another file" }
                a href={ "/portal/accounts/" (urlencoding(account)) "/numbers" } { "Numbers of " (account) }
            }
        },
    )
}

fn progress_html(
    session: &Session,
    upload: &Upload,
    base: &str,
    done: usize,
    total: usize,
) -> Markup {
    page(
        "Importing",
        Some(session),
        html! {
            // Without script the page refreshes itself; with it, upload.js asks for the progress.
            noscript { (PreEscaped(r#"<meta http-equiv="refresh" content="2">"#)) }
            h1 { "Importing into " (upload.account.as_str()) }
            div.progress data-progress={ (base) "/progress" } {
                label for="import-progress" { "Rows imported" }
                progress id="import-progress" max=(total.max(1)) value=(done) { (done) " of " (total) }
                p id="import-status" role="status" aria-live="polite" { (done) " of " (total) " rows done" }
            }
            p.hint { "You may leave this page; the import goes on. The result is shown here when it is done." }
            script src="/portal/static/upload.js" defer {}
        },
    )
}

fn result_html(session: &Session, upload: &Upload, base: &str, results: &[RowResult]) -> Markup {
    let account = upload.account.as_str();
    let created = results
        .iter()
        .filter(|r| matches!(r, RowResult::Created))
        .count();
    let updated = results
        .iter()
        .filter(|r| matches!(r, RowResult::Updated))
        .count();
    let refused: Vec<&RowError> = results
        .iter()
        .filter_map(|r| match r {
            RowResult::Refused(error) => Some(error),
            _ => None,
        })
        .collect();
    page(
        "Import done",
        Some(session),
        html! {
            h1 { "Import into " (account) " done" }
            p role="status" {
                (upload.file_name) ": " (plural(created, "number")) " created, " (updated) " updated, "
                (refused.len()) " refused."
            }
            @if !refused.is_empty() {
                (refused_table("Rows refused, and why", &refused))
            }
            p { a href={ (base) "/results.csv" } download { "Download every row's result as CSV" } }
            p.actions {
                a href={ "/portal/accounts/" (urlencoding(account)) "/numbers" } { "Numbers of " (account) }
                a href={ "/portal/accounts/" (urlencoding(account)) "/uploads/new" } { "Upload another file" }
            }
        },
    )
}

// ---- importing -----------------------------------------------------------------------------

/// Starts the import of a checked upload in the background and shows its progress. Pressing
/// Import again (or reloading) starts nothing more.
async fn start_import(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return to_sign_in();
    };
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    let caller = match writer(
        &session,
        &headers,
        csrf,
        "Your role may read numbers but not upload them. Ask an administrator for a role that may write.",
    ) {
        Ok(caller) => caller,
        Err(refused) => return *refused,
    };
    let upload = match upload_of(&name, &id) {
        Ok(upload) => upload,
        Err(answer) => return *answer,
    };
    let page = format!("{}/{id}", uploads_link(&name));
    let checked = {
        let mut stage = lock(&upload.stage);
        let Stage::Checked { .. } = &*stage else {
            return Redirect::to(&page).into_response();
        };
        let total = upload.sheet.rows.len();
        match std::mem::replace(&mut *stage, Stage::Importing { done: 0, total }) {
            Stage::Checked { checked, .. } => checked,
            _ => unreachable!("the stage was just seen to be checked"),
        }
    };
    let commands = state.commands.clone();
    let running = upload.clone();
    let task = tokio::spawn(async move {
        let total = running.sheet.rows.len();
        let progress = running.clone();
        let results = import::import(
            &commands,
            &running.account,
            checked,
            &caller.metadata,
            move |done, total| {
                *lock(&progress.stage) = Stage::Importing { done, total };
            },
        )
        .await;
        tracing::info!(
            account = %running.account,
            rows = total,
            "the portal imported an upload"
        );
        *lock(&running.stage) = Stage::Done {
            results,
            at: Instant::now(),
        };
    });
    let watched = upload.clone();
    tokio::spawn(async move {
        if let Err(error) = task.await {
            tracing::error!(%error, "an import from the portal stopped");
            let mut stage = lock(&watched.stage);
            if let Stage::Importing { done, total } = *stage {
                *stage = Stage::Failed {
                    done,
                    total,
                    at: Instant::now(),
                };
            }
        }
    });
    Redirect::to(&page).into_response()
}

/// How far an upload has come, for the progress page's script:
/// `{"stage": "checked" | "importing" | "done" | "failed", "done": n, "total": n}`.
async fn progress(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    if session(&state, &headers).await.is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(upload) = upload_of(&name, &id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let total = upload.sheet.rows.len();
    let (stage, done) = match &*lock(&upload.stage) {
        Stage::Checked { .. } => ("checked", 0),
        Stage::Importing { done, .. } => ("importing", *done),
        Stage::Done { .. } => ("done", total),
        Stage::Failed { done, .. } => ("failed", *done),
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({"stage": stage, "done": done, "total": total})),
    )
        .into_response()
}

fn csv_file(name: &str, text: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        text,
    )
        .into_response()
}

/// The file with each row's check: `check` (`ok` or `refused`), `errorCode`, `errorColumn`,
/// `errorMessage`.
async fn check_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    if session(&state, &headers).await.is_none() {
        return to_sign_in();
    }
    let upload = match upload_of(&name, &id) {
        Ok(upload) => upload,
        Err(answer) => return *answer,
    };
    let stage = lock(&upload.stage);
    let Stage::Checked { checked, .. } = &*stage else {
        return Redirect::to(&format!("{}/{id}/results.csv", uploads_link(&name))).into_response();
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<&str> = upload.sheet.columns.iter().map(String::as_str).collect();
    header.extend(["check", "errorCode", "errorColumn", "errorMessage"]);
    let _ = writer.write_record(&header);
    for (cells, item) in upload.sheet.rows.iter().zip(checked) {
        let mut record: Vec<&str> = cells.iter().map(String::as_str).collect();
        match &item.outcome {
            Ok(_) => record.extend(["ok", "", "", ""]),
            Err(error) => record.extend([
                "refused",
                error.code.as_str(),
                error.column.as_deref().unwrap_or(""),
                error.message.as_str(),
            ]),
        }
        let _ = writer.write_record(&record);
    }
    let text = String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default();
    csv_file("check.csv", text)
}

/// The file with each row's result (`crate::import::results_csv`), once the import is done.
async fn results_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    if session(&state, &headers).await.is_none() {
        return to_sign_in();
    }
    let upload = match upload_of(&name, &id) {
        Ok(upload) => upload,
        Err(answer) => return *answer,
    };
    let stage = lock(&upload.stage);
    let Stage::Done { results, .. } = &*stage else {
        return (
            StatusCode::CONFLICT,
            trouble("The import has not finished yet; its result is ready when it is done."),
        )
            .into_response();
    };
    csv_file("results.csv", import::results_csv(&upload.sheet, results))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browsers_form_with_a_file_is_read() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntoken\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.csv\"\r\n\
            Content-Type: text/csv\r\n\r\ntelephoneNumber\r\n+15105850001\r\n\r\n--XyZ--\r\n";
        let parts = multipart("multipart/form-data; boundary=XyZ", body).expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "csrf");
        assert_eq!(parts[0].data, b"token");
        assert_eq!(parts[1].name, "file");
        assert_eq!(parts[1].file_name.as_deref(), Some("a;b.csv"));
        assert_eq!(parts[1].data, b"telephoneNumber\r\n+15105850001\r\n");
        assert!(multipart("text/plain", body).is_none());
        assert!(multipart("multipart/form-data; boundary=\"XyZ\"", body).is_some());
        assert!(multipart("multipart/form-data; boundary=Other", body).is_none());
    }
}
