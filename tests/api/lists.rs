//! The list operations: read from the read tables, paged with `top`, `skip`, `maxpagesize` and
//! `nextLink` (which continues after the page's last key with a `skipToken`), counted with
//! `countRecords`, filtered with the documented `filter` subset.

use std::collections::BTreeSet;
use std::time::Duration;

use auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use tests::projections::{ReadSide, wait_until_projected};
use tests::{Answer, TENANT, TestApp, account_body, number_body, spawn_app};

pub(crate) const FABRIKAM_TENANT: &str = "b7f4bd5c-cc01-40f4-8baa-2b6bdb272b8b";
pub(crate) const LONE_TENANT: &str = "c7f4bd5c-cc01-40f4-8baa-2b6bdb272b8c";

/// Percent-encodes all but RFC 3986's unreserved characters.
pub(crate) fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(crate) async fn get(app: &TestApp, path: &str) -> Answer {
    app.send(app.request(Method::GET, path)).await
}

/// `path` with `filter` (and more query parameters in `rest`, may be empty).
async fn filtered(app: &TestApp, path: &str, filter: &str, rest: &str) -> Answer {
    let rest = if rest.is_empty() {
        String::new()
    } else {
        format!("&{rest}")
    };
    get(app, &format!("{path}?filter={}{rest}", encode(filter))).await
}

/// A nextLink, followed as given.
async fn follow(app: &TestApp, link: &str) -> Answer {
    app.send(app.client.get(link).bearer_auth(app.admin()))
        .await
}

/// The values of `field` of a page's items, in order.
pub(crate) fn keys(answer: &Answer, field: &str) -> Vec<String> {
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body["value"]
        .as_array()
        .unwrap_or_else(|| panic!("a value array: {answer:?}"))
        .iter()
        .map(|item| item[field].as_str().expect("a key").to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn key_set(answer: &Answer, field: &str) -> BTreeSet<String> {
    keys(answer, field).into_iter().collect()
}

fn next_link(answer: &Answer) -> Option<String> {
    answer.body["nextLink"].as_str().map(str::to_string)
}

fn record_count(answer: &Answer) -> Option<u64> {
    answer
        .header("x-ms-record-count")
        .map(|v| v.parse().expect("a count"))
}

/// A number of `account` with the given Operator Connect usage (None: no Operator Connect),
/// Zoom, and custom SIP header.
pub(crate) fn number(
    account: &str,
    number: &str,
    usage: Option<(&str, &str)>,
    zoom: bool,
    header: Option<&str>,
) -> Value {
    let mut services = json!({});
    if let Some((usage, assignment)) = usage {
        services["teamsOperatorConnect"] = json!({
            "enabled": true,
            "assignmentStatus": assignment,
            "configuration": {"usage": usage, "choosableCapabilities": ["InboundCalling"]}
        });
    }
    if zoom {
        services["zoomPhoneCloudPeering"] = json!({"enabled": true});
    }
    let mut body =
        json!({"telephoneNumber": number, "accountName": account, "serviceDetails": services});
    if let Some(header) = header {
        body["configuration"] = json!({"customSipHeader": header});
    }
    body
}

/// contoso (Operator Connect and Zoom, tenant TENANT) with four numbers, fabrikam (Operator
/// Connect, its own tenant) with two, contoso-eu (Zoom only, no tenant) and northwind (no
/// services), both without numbers; and a deleted number and account that lists leave out.
pub(crate) async fn populate(app: &TestApp) {
    let mut contoso = account_body("contoso");
    contoso["serviceDetails"]["zoomPhoneCloudPeering"] =
        json!({"enabled": true, "syncEnabled": false});
    let mut fabrikam = account_body("fabrikam");
    fabrikam["serviceDetails"]["teamsTenantId"] = json!(FABRIKAM_TENANT);
    let contoso_eu = json!({"name": "contoso-eu", "serviceDetails": {
        "zoomPhoneCloudPeering": {"enabled": true, "syncEnabled": false}}});
    let northwind = json!({"name": "northwind"});
    let gone = json!({"name": "gone"});
    for (name, body) in [
        ("contoso", &contoso),
        ("fabrikam", &fabrikam),
        ("contoso-eu", &contoso_eu),
        ("northwind", &northwind),
        ("gone", &gone),
    ] {
        let created = app.put_account(name, body).await;
        assert_eq!(created.status, 201, "setup {name}: {created:?}");
    }
    let calling = Some(("CallingUserAssignment", "assigned"));
    let numbers = json!({"numbers": [
        number("contoso", "+15105850001", calling, false, Some("contoso-commsgw")),
        number("contoso", "+15105850002", Some(("ConferenceAssignment", "unassigned")), false, None),
        number("contoso", "+15105850003", None, true, Some("zoom-hdr")),
        number("contoso", "+15105850004", calling, true, Some("contoso-commsgw")),
        number("contoso", "+15105850009", calling, false, None),
    ]});
    let upserted = app.upsert_numbers("contoso", &numbers).await;
    assert_eq!(upserted.status, 200, "setup: {upserted:?}");
    let numbers = json!({"numbers": [
        number("fabrikam", "+14255550001", calling, false, None),
        number("fabrikam", "+14255550002", Some(("FirstPartyAppAssignment", "assigned")), false, Some("fab")),
    ]});
    let upserted = app.upsert_numbers("fabrikam", &numbers).await;
    assert_eq!(upserted.status, 200, "setup: {upserted:?}");
    let deleted = app.delete_number("contoso", "+15105850009").await;
    assert_eq!(deleted.status, 204, "setup: {deleted:?}");
    // It flows to the backend: it goes once the backend has released it.
    app.backend_accepts(&["+15105850009"]).await;
    let deleted = app.delete_account("gone", false).await;
    assert_eq!(deleted.status, 204, "setup: {deleted:?}");
    wait_until_projected(app, Duration::from_secs(30)).await;
}

const ALL_NUMBERS: &[&str] = &[
    "+14255550001",
    "+14255550002",
    "+15105850001",
    "+15105850002",
    "+15105850003",
    "+15105850004",
];

// ---- what lists answer -------------------------------------------------------------------

#[tokio::test]
async fn lists_answer_the_resources_the_single_gets_answer() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    populate(&app).await;

    let accounts = get(&app, "/accounts").await;
    assert_eq!(
        keys(&accounts, "name"),
        ["contoso", "contoso-eu", "fabrikam", "northwind"],
        "live accounts in name order; the deleted one is left out"
    );
    assert_eq!(next_link(&accounts), None, "one page holds them all");
    assert!(
        accounts.body.get("nextLink").is_none(),
        "no nextLink on the last page"
    );
    assert_eq!(
        record_count(&accounts),
        None,
        "no count unless countRecords"
    );
    for item in accounts.body["value"].as_array().unwrap() {
        let single = app.get_account(item["name"].as_str().unwrap()).await;
        assert_eq!(
            item, &single.body,
            "the list holds what the single GET answers"
        );
    }

    let numbers = get(&app, "/numbers").await;
    assert_eq!(
        keys(&numbers, "telephoneNumber"),
        ALL_NUMBERS,
        "live numbers of all accounts in number order; the deleted one is left out"
    );
    for item in numbers.body["value"].as_array().unwrap() {
        let single = app
            .get_number(
                item["accountName"].as_str().unwrap(),
                item["telephoneNumber"].as_str().unwrap(),
            )
            .await;
        assert_eq!(
            item, &single.body,
            "the list holds what the single GET answers"
        );
    }

    let of_contoso = get(&app, "/accounts/contoso/numbers").await;
    assert_eq!(
        keys(&of_contoso, "telephoneNumber"),
        [
            "+15105850001",
            "+15105850002",
            "+15105850003",
            "+15105850004"
        ]
    );
    let of_northwind = get(&app, "/accounts/northwind/numbers").await;
    assert_eq!(keys(&of_northwind, "telephoneNumber"), Vec::<String>::new());
    get(&app, "/accounts/nobody/numbers")
        .await
        .assert_error(404, "NotFound");
    get(&app, "/accounts/gone/numbers")
        .await
        .assert_error(404, "NotFound");
    get(&app, "/accounts/bad%20name/numbers")
        .await
        .assert_error(400, "InvalidAccountName");
}

#[tokio::test]
async fn lists_need_a_token_with_read_and_the_api_version() {
    let app = spawn_app().await;
    for path in [
        "/accounts",
        "/numbers",
        "/teamsRequestsForInformation",
        "/accounts/contoso/numbers",
        "/accounts/contoso/teamsCivicAddresses",
    ] {
        let anonymous = app.send(app.request_as(Method::GET, path, None)).await;
        assert_eq!(anonymous.status, 401, "{path}: {anonymous:?}");
        let writer = app.token(&[Role::Write]);
        let forbidden = app
            .send(app.request_as(Method::GET, path, Some(&writer)))
            .await;
        forbidden.assert_error(403, "Forbidden");
        let unversioned = app.send(app.request_unversioned(Method::GET, path)).await;
        unversioned.assert_error(400, "MissingApiVersionParameter");
    }
    let reader = app.token(&[Role::Read]);
    let read = app
        .send(app.request_as(Method::GET, "/accounts", Some(&reader)))
        .await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body, json!({"value": []}));
    // The list routes sit beside the single-resource ones without taking their methods.
    app.send(app.request(Method::POST, "/accounts"))
        .await
        .assert_error(405, "MethodNotAllowed");
    app.get_account("contoso")
        .await
        .assert_error(404, "NotFound");
}

// ---- paging ------------------------------------------------------------------------------

async fn many_numbers(app: &TestApp, count: usize) -> Vec<String> {
    let created = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(created.status, 201, "setup: {created:?}");
    let numbers: Vec<String> = (0..count).map(|i| format!("+1555000{i:04}")).collect();
    for chunk in numbers.chunks(100) {
        let bodies: Vec<Value> = chunk.iter().map(|n| number_body("contoso", n)).collect();
        let upserted = app
            .upsert_numbers("contoso", &json!({"numbers": bodies}))
            .await;
        assert_eq!(upserted.status, 200, "setup: {upserted:?}");
    }
    wait_until_projected(app, Duration::from_secs(30)).await;
    numbers
}

#[tokio::test]
async fn next_links_walk_every_page_without_duplicates_or_gaps() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    let numbers = many_numbers(&app, 23).await;

    for path in ["/numbers", "/accounts/contoso/numbers"] {
        let mut page = get(&app, &format!("{path}?maxpagesize=5&countRecords=true")).await;
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        loop {
            let items = keys(&page, "telephoneNumber");
            sizes.push(items.len());
            seen.extend(items);
            assert_eq!(record_count(&page), Some(23), "every page counts: {page:?}");
            let Some(link) = next_link(&page) else {
                break;
            };
            assert!(
                link.starts_with(&format!("{}{path}?", app.address)),
                "an absolute link to the same list: {link}"
            );
            assert!(link.contains("api-version=2024-02-29-preview"), "{link}");
            assert!(link.contains("maxpagesize=5"), "{link}");
            assert!(link.contains("countRecords=true"), "{link}");
            page = follow(&app, &link).await;
        }
        assert_eq!(sizes, [5, 5, 5, 5, 3], "{path}");
        assert_eq!(seen, numbers, "{path}: every number once, in order");
    }

    // Without maxpagesize, a page holds 200: all 23 on one page.
    let all = get(&app, "/numbers").await;
    assert_eq!(keys(&all, "telephoneNumber"), numbers);
    assert_eq!(next_link(&all), None);
}

#[tokio::test]
async fn next_links_carry_the_filter_and_the_rest_of_top() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    let numbers = many_numbers(&app, 30).await;
    // Numbers +15550000010 … 19 and +15550000020 … 29 start with these.
    let filter =
        "startswith(telephoneNumber, '+1555000001') or startswith(telephoneNumber, '+1555000002')";
    let wanted: Vec<String> = numbers
        .iter()
        .filter(|n| n.starts_with("+1555000001") || n.starts_with("+1555000002"))
        .cloned()
        .collect();
    assert_eq!(wanted.len(), 20);

    let mut page = filtered(
        &app,
        "/numbers",
        filter,
        "maxpagesize=4&top=14&countRecords=true",
    )
    .await;
    let mut seen = Vec::new();
    let mut links = Vec::new();
    loop {
        assert_eq!(
            record_count(&page),
            Some(20),
            "the count ignores top: {page:?}"
        );
        seen.extend(keys(&page, "telephoneNumber"));
        let Some(link) = next_link(&page) else {
            break;
        };
        links.push(link.clone());
        page = follow(&app, &link).await;
    }
    assert_eq!(seen, wanted[..14], "top items in all, no more");
    assert_eq!(links.len(), 3, "pages of 4, 4, 4 and 2: {links:?}");
    assert!(
        links[0].contains(&format!("filter={}", encode(filter))),
        "{}",
        links[0]
    );
    for (link, top) in links.iter().zip(["top=10", "top=6", "top=2"]) {
        assert!(
            link.contains(top) && link.contains("skipToken=") && !link.contains("&skip="),
            "the rest of top, and the last key instead of a skip: {link}"
        );
    }
}

/// A nextLink continues after the last key of its page: rows added or removed before that key
/// meanwhile neither repeat nor hide rows after it, as a skip would.
#[tokio::test]
async fn next_links_continue_after_the_last_key_whatever_changed_before_it() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    let numbers = many_numbers(&app, 12).await;
    let filter = "service eq 'teamsOperatorConnect' and usage eq 'CallingUserAssignment'";

    let first = filtered(&app, "/numbers", filter, "maxpagesize=5&countRecords=true").await;
    assert_eq!(keys(&first, "telephoneNumber"), numbers[..5]);
    assert_eq!(record_count(&first), Some(12));
    let link = next_link(&first).expect("a second page");
    assert!(
        link.contains("skipToken=") && !link.contains("&skip="),
        "{link}"
    );

    // A number before the page's end comes, two of the first page go.
    let early = "+15540000000";
    let added = app
        .put_number("contoso", early, &number_body("contoso", early))
        .await;
    assert!(added.status < 300, "{added:?}");
    let removed = app
        .delete_numbers("contoso", &[numbers[1].as_str(), numbers[3].as_str()])
        .await;
    assert!(removed.status < 300, "{removed:?}");
    app.backend_accepts(&[numbers[1].as_str(), numbers[3].as_str()])
        .await;
    wait_until_projected(&app, Duration::from_secs(30)).await;

    let second = follow(&app, &link).await;
    assert_eq!(keys(&second, "telephoneNumber"), numbers[5..10]);
    assert_eq!(record_count(&second), Some(11), "the count is today's");
    let third = follow(&app, &next_link(&second).expect("a last page")).await;
    assert_eq!(keys(&third, "telephoneNumber"), numbers[10..]);
    assert_eq!(next_link(&third), None);

    // skip still counts rows off, and after a skipToken it counts from the token's key.
    let token = link
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("skipToken="))
        .expect("a skipToken");
    let skipped = get(
        &app,
        &format!("/numbers?skipToken={token}&skip=2&maxpagesize=3"),
    )
    .await;
    assert_eq!(keys(&skipped, "telephoneNumber"), numbers[7..10]);
}

#[tokio::test]
async fn accounts_and_consents_page_by_key_through_next_links() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    populate(&app).await;
    for tenant in [TENANT, FABRIKAM_TENANT, LONE_TENANT] {
        app.record_consent(tenant).await;
    }
    wait_until_projected(&app, Duration::from_secs(20)).await;

    for (path, key, filter) in [
        ("/accounts", "name", None),
        (
            "/accounts",
            "name",
            Some("service eq 'zoomPhoneCloudPeering'"),
        ),
        ("/accounts", "name", Some("hasNumbers eq true")),
        ("/teamsRequestsForInformation", "tenantId", None),
        (
            "/numbers",
            "telephoneNumber",
            Some("service eq 'teamsOperatorConnect'"),
        ),
    ] {
        let whole = match filter {
            Some(filter) => filtered(&app, path, filter, "").await,
            None => get(&app, path).await,
        };
        let expected = whole.body["value"].as_array().expect("items").clone();
        assert!(expected.len() > 1, "{path} {filter:?}: {whole:?}");
        let mut page = match filter {
            Some(filter) => filtered(&app, path, filter, "maxpagesize=1").await,
            None => get(&app, &format!("{path}?maxpagesize=1")).await,
        };
        let mut seen = Vec::new();
        loop {
            assert_eq!(keys(&page, key).len(), 1, "{path} {filter:?}: {page:?}");
            seen.extend(
                page.body["value"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .cloned(),
            );
            let Some(link) = next_link(&page) else {
                break;
            };
            page = follow(&app, &link).await;
        }
        assert_eq!(
            seen, expected,
            "{path} {filter:?}: every item once, in order, as one page holds it"
        );
    }
    // Number counts of listed accounts are those the single GET computes.
    let zoom = filtered(&app, "/accounts", "service eq 'zoomPhoneCloudPeering'", "").await;
    assert_eq!(keys(&zoom, "name"), ["contoso", "contoso-eu"]);
    let contoso = &zoom.body["value"][0]["serviceDetails"];
    assert_eq!(contoso["teamsOperatorConnect"]["numberCount"], 3);
    assert_eq!(contoso["zoomPhoneCloudPeering"]["numberCount"], 2);
}

#[tokio::test]
async fn skip_tokens_no_next_link_gave_are_refused() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    populate(&app).await;
    let too_long = format!("k{}", "61".repeat(513));
    for token in [
        "",
        "abc",
        "k",
        "k2",
        "kzz",
        "k%2B31",
        "k00",
        "k0a0a",
        "kc328",
        too_long.as_str(),
        "k%E2%98%8E",
        "K2b31",
    ] {
        for path in [
            "/accounts",
            "/numbers",
            "/teamsRequestsForInformation",
            "/accounts/contoso/numbers",
            "/accounts/contoso/teamsCivicAddresses",
        ] {
            let refused = get(&app, &format!("{path}?skipToken={token}")).await;
            refused.assert_error(400, "InvalidQueryParameter");
            assert_eq!(
                refused.error_target(),
                Some("skipToken"),
                "{path}?skipToken={token}"
            );
        }
    }
    // A well-formed token is a key to start after, whichever list it came from.
    let numbers = get(&app, "/numbers?maxpagesize=1").await;
    let link = next_link(&numbers).expect("a next page");
    let token = link
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("skipToken="))
        .expect("a skipToken");
    let accounts = get(&app, &format!("/accounts?skipToken={token}")).await;
    assert_eq!(
        keys(&accounts, "name"),
        ["contoso", "contoso-eu", "fabrikam", "northwind"],
        "every name sorts after a telephone number"
    );
    let twice = get(
        &app,
        &format!("/numbers?skipToken={token}&skipToken={token}"),
    )
    .await;
    twice.assert_error(400, "InvalidQueryParameter");
}

#[tokio::test]
async fn top_and_skip_cut_the_list() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    let numbers = many_numbers(&app, 12).await;

    let top = get(&app, "/numbers?top=3").await;
    assert_eq!(keys(&top, "telephoneNumber"), numbers[..3]);
    assert_eq!(next_link(&top), None, "top smaller than a page: one page");

    let skipped = get(&app, "/numbers?skip=10").await;
    assert_eq!(keys(&skipped, "telephoneNumber"), numbers[10..]);
    assert_eq!(next_link(&skipped), None);

    let both = get(&app, "/numbers?skip=4&top=5&maxpagesize=2").await;
    assert_eq!(keys(&both, "telephoneNumber"), numbers[4..6]);
    let second = follow(&app, &next_link(&both).expect("a next page")).await;
    assert_eq!(keys(&second, "telephoneNumber"), numbers[6..8]);
    let third = follow(&app, &next_link(&second).expect("a last page")).await;
    assert_eq!(keys(&third, "telephoneNumber"), numbers[8..9]);
    assert_eq!(next_link(&third), None);

    let beyond = get(&app, "/numbers?skip=100&countRecords=true").await;
    assert_eq!(beyond.body, json!({"value": []}));
    assert_eq!(record_count(&beyond), Some(12), "the count ignores skip");

    let exact = get(&app, "/numbers?maxpagesize=6").await;
    assert_eq!(keys(&exact, "telephoneNumber"), numbers[..6]);
    let rest = follow(&app, &next_link(&exact).expect("a next page")).await;
    assert_eq!(keys(&rest, "telephoneNumber"), numbers[6..]);
    assert_eq!(next_link(&rest), None, "no empty page after the last");
}

#[tokio::test]
async fn paging_parameters_out_of_range_are_refused() {
    let app = spawn_app().await;
    for (query, target) in [
        ("maxpagesize=0", "maxpagesize"),
        ("maxpagesize=ten", "maxpagesize"),
        ("top=-5", "top"),
        ("top=99999999999", "top"),
        ("skip=-1", "skip"),
        ("skip=1.5", "skip"),
        ("countRecords=yes", "countRecords"),
        ("top=1&top=2", "top"),
    ] {
        for path in ["/accounts", "/numbers", "/teamsRequestsForInformation"] {
            let refused = get(&app, &format!("{path}?{query}")).await;
            refused.assert_error(400, "InvalidQueryParameter");
            assert_eq!(refused.error_target(), Some(target), "{path}?{query}");
        }
    }
    for query in [
        "maxpagesize=1",
        "maxpagesize=500",
        "maxpagesize=5000",
        "top=0",
        "top=2147483647",
        "skip=0",
    ] {
        let accepted = get(&app, &format!("/numbers?{query}")).await;
        assert_eq!(accepted.status, 200, "{query}: {accepted:?}");
    }
}

#[tokio::test]
async fn a_page_larger_than_nmp_serves_is_served_at_its_largest_and_top_zero_is_empty() {
    // The public API bounds neither maxpagesize nor top from below.
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    let batch: Vec<Value> = (0..100)
        .map(|i| number_body("contoso", &format!("+1510585{i:04}")))
        .collect();
    for chunk in 0..6 {
        let numbers: Vec<Value> = batch
            .iter()
            .map(|n| {
                let mut n = n.clone();
                let number = n["telephoneNumber"]
                    .as_str()
                    .unwrap()
                    .replace("+1510585", "");
                let fresh = format!("+15106{chunk}{number}");
                n["telephoneNumber"] = json!(fresh);
                n
            })
            .collect();
        let answer = app
            .upsert_numbers("contoso", &json!({ "numbers": numbers }))
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    wait_until_projected(&app, Duration::from_secs(30)).await;
    let page = get(&app, "/numbers?maxpagesize=5000").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.body["value"].as_array().map(Vec::len), Some(500));
    let next = page.body["nextLink"].as_str().expect("a next page");
    assert!(next.contains("maxpagesize=500"), "{next}");
    let none = get(&app, "/numbers?top=0&countRecords=true").await;
    assert_eq!(none.status, 200, "{none:?}");
    assert_eq!(none.body["value"], json!([]));
    assert!(none.body.get("nextLink").is_none(), "{none:?}");
    assert_eq!(none.header("x-ms-record-count"), Some("600"));
}

#[tokio::test]
async fn count_records_counts_what_the_filter_matches() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    populate(&app).await;

    let all = get(&app, "/numbers?countRecords=true&top=1").await;
    assert_eq!(record_count(&all), Some(6));
    assert_eq!(keys(&all, "telephoneNumber").len(), 1);
    let of_contoso = filtered(
        &app,
        "/numbers",
        "accountName eq 'contoso'",
        "countRecords=true&maxpagesize=1",
    )
    .await;
    assert_eq!(record_count(&of_contoso), Some(4));
    let accounts = get(&app, "/accounts?countRecords=true").await;
    assert_eq!(
        record_count(&accounts),
        Some(4),
        "deleted accounts do not count"
    );
    let none = filtered(&app, "/accounts", "name eq 'nobody'", "countRecords=true").await;
    assert_eq!(record_count(&none), Some(0));
    let not_asked = get(&app, "/numbers?countRecords=false").await;
    assert_eq!(record_count(&not_asked), None);
}

// ---- filters -----------------------------------------------------------------------------

#[tokio::test]
async fn number_filters_support_each_operator() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    populate(&app).await;

    let cases: &[(&str, &[&str])] = &[
        (
            "usage eq 'CallingUserAssignment'",
            &["+14255550001", "+15105850001", "+15105850004"],
        ),
        // ne matches the numbers without a usage too.
        (
            "usage ne 'CallingUserAssignment'",
            &["+14255550002", "+15105850002", "+15105850003"],
        ),
        (
            "startswith(telephoneNumber, '+1425')",
            &["+14255550001", "+14255550002"],
        ),
        (
            "accountName eq 'contoso' and service eq 'zoomPhoneCloudPeering'",
            &["+15105850003", "+15105850004"],
        ),
        (
            "usage eq 'ConferenceAssignment' or usage eq 'FirstPartyAppAssignment'",
            &["+14255550002", "+15105850002"],
        ),
        (
            "not accountName eq 'contoso'",
            &["+14255550001", "+14255550002"],
        ),
        (
            "accountName eq 'contoso' and (customSipHeader eq null or service ne 'teamsOperatorConnect')",
            &["+15105850002", "+15105850003"],
        ),
        (
            "(accountName eq 'contoso' and customSipHeader eq null) or service ne 'teamsOperatorConnect'",
            &["+15105850002", "+15105850003"],
        ),
        (
            "customSipHeader eq 'contoso-commsgw' and not (service eq 'zoomPhoneCloudPeering')",
            &["+15105850001"],
        ),
        (
            "startswith(service, 'zoom')",
            &["+15105850003", "+15105850004"],
        ),
        ("assignmentStatus eq 'unassigned'", &["+15105850002"]),
        (
            "customSipHeader ne null and startswith(customSipHeader, 'f')",
            &["+14255550002"],
        ),
        ("telephoneNumber eq '+15105850009'", &[]),
        ("serviceProvisioningStatus eq 'failed'", &[]),
        (
            "not (not (usage eq 'ConferenceAssignment'))",
            &["+15105850002"],
        ),
    ];
    for (filter, wanted) in cases {
        let answer = filtered(&app, "/numbers", filter, "countRecords=true").await;
        assert_eq!(
            key_set(&answer, "telephoneNumber"),
            set(wanted),
            "filter {filter}"
        );
        assert_eq!(record_count(&answer), Some(wanted.len() as u64), "{filter}");
    }
    // Within an account's list, the filter narrows that account's numbers.
    let scoped = filtered(
        &app,
        "/accounts/contoso/numbers",
        "usage eq 'CallingUserAssignment'",
        "",
    )
    .await;
    assert_eq!(
        keys(&scoped, "telephoneNumber"),
        ["+15105850001", "+15105850004"]
    );
    // serviceProvisioningStatus splits the numbers in two.
    let pending = filtered(
        &app,
        "/numbers",
        "serviceProvisioningStatus eq 'pending'",
        "",
    )
    .await;
    let other = filtered(
        &app,
        "/numbers",
        "serviceProvisioningStatus ne 'pending'",
        "",
    )
    .await;
    let mut both = key_set(&pending, "telephoneNumber");
    both.extend(key_set(&other, "telephoneNumber"));
    assert_eq!(both, set(ALL_NUMBERS));
    for item in pending.body["value"].as_array().unwrap() {
        assert_eq!(item["serviceProvisioningStatus"], "pending");
    }
}

#[tokio::test]
async fn account_filters_support_each_operator() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    populate(&app).await;

    let fabrikam_tenant = format!("teamsTenantId eq '{FABRIKAM_TENANT}' or service eq null");
    let cases: Vec<(&str, &[&str])> = vec![
        ("name eq 'contoso'", &["contoso"]),
        (
            "name ne 'contoso'",
            &["contoso-eu", "fabrikam", "northwind"],
        ),
        ("startswith(name, 'contoso')", &["contoso", "contoso-eu"]),
        (
            "service eq 'teamsOperatorConnect'",
            &["contoso", "fabrikam"],
        ),
        (
            "service eq 'zoomPhoneCloudPeering' and not (name eq 'contoso')",
            &["contoso-eu"],
        ),
        (&fabrikam_tenant, &["fabrikam", "northwind"]),
        ("hasNumbers eq true", &["contoso", "fabrikam"]),
        ("hasNumbers eq false", &["contoso-eu", "northwind"]),
        ("teamsTenantId eq null", &["contoso-eu", "northwind"]),
        (
            "(startswith(name, 'c') or startswith(name, 'n')) and service ne 'teamsOperatorConnect'",
            &["contoso-eu", "northwind"],
        ),
        ("name eq 'gone'", &[]),
        ("name eq 'CONTOSO'", &[]),
    ];
    for (filter, wanted) in cases {
        let answer = filtered(&app, "/accounts", filter, "").await;
        assert_eq!(keys(&answer, "name"), wanted, "filter {filter}");
    }
    let synced = filtered(
        &app,
        "/accounts",
        "serviceProvisioningStatus eq 'synced'",
        "",
    )
    .await;
    for item in synced.body["value"].as_array().unwrap() {
        assert_eq!(item["serviceProvisioningStatus"], "synced", "{item}");
    }
}

#[tokio::test]
async fn invalid_filters_are_refused_naming_the_problem() {
    let app = spawn_app().await;
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "/accounts",
            "nmae eq 'contoso'",
            &[
                "unknown field 'nmae' at position 1",
                "name, teamsTenantId, service",
            ],
        ),
        (
            "/numbers",
            "usage eq 'x' and colour eq 'red'",
            &["unknown field 'colour' at position 18", "customSipHeader"],
        ),
        (
            "/numbers",
            "usage gt 'a'",
            &[
                "unsupported operator 'gt' at position 7",
                "supported: eq, ne",
            ],
        ),
        (
            "/accounts",
            "contains(name, 'x')",
            &[
                "unsupported function 'contains' at position 1",
                "startswith",
            ],
        ),
        (
            "/accounts",
            "name eq 'contoso",
            &["unterminated string at position 9"],
        ),
        (
            "/accounts",
            "name eq 'a' or",
            &["unexpected the end of the filter at position 15"],
        ),
        (
            "/accounts",
            "name eq 'a' )",
            &["unexpected ')' at position 13"],
        ),
        ("/accounts", "(name eq 'a'", &["expected ')'"]),
        (
            "/accounts",
            "name == 'a'",
            &["unexpected character '=' at position 6"],
        ),
        (
            "/accounts",
            "name eq 1",
            &["unexpected the number 1 at position 9"],
        ),
        (
            "/accounts",
            "name eq true",
            &["a boolean for the text field name"],
        ),
        (
            "/teamsRequestsForInformation",
            "customerRelationship/state eq 'x'",
            &[
                "unknown field 'customerRelationship/state'",
                "customerRelationship/status",
            ],
        ),
        ("/accounts", "", &["empty"]),
    ];
    for (path, filter, pieces) in cases {
        let refused = filtered(&app, path, filter, "").await;
        refused.assert_error(400, "InvalidFilter");
        assert_eq!(refused.error_target(), Some("filter"), "{filter}");
        let message = refused.body["error"]["message"].as_str().unwrap();
        for piece in *pieces {
            assert!(message.contains(piece), "{filter}: {message} lacks {piece}");
        }
    }
    let long = format!("name eq '{}'", "x".repeat(1000));
    let refused = filtered(&app, "/accounts", &long, "").await;
    refused.assert_error(400, "InvalidFilter");
    let deep = format!("{}name eq 'x'{}", "(".repeat(17), ")".repeat(17));
    let refused = filtered(&app, "/accounts", &deep, "").await;
    refused.assert_error(400, "InvalidFilter");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deeper than 16"),
        "{refused:?}"
    );
    let twice = get(
        &app,
        "/accounts?filter=name%20eq%20%27a%27&filter=name%20eq%20%27b%27",
    )
    .await;
    twice.assert_error(400, "InvalidQueryParameter");
}

#[tokio::test]
async fn filter_injection_attempts_stay_values() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    populate(&app).await;

    for filter in [
        "name eq '''; DROP TABLE read_accounts; --'",
        "name eq 'x'' OR ''1''=''1'",
        "name eq 'contoso'' OR name ne ''x'",
        "name eq '%'",
        "startswith(name, '%')",
        "startswith(name, '_')",
        "name eq '$1'",
        "name eq 'contoso\\'",
        "teamsTenantId eq ''' OR true --'",
    ] {
        let answer = filtered(&app, "/accounts", filter, "countRecords=true").await;
        assert_eq!(answer.status, 200, "{filter}: {answer:?}");
        assert_eq!(
            answer.body,
            json!({"value": []}),
            "{filter} matches nothing"
        );
        assert_eq!(record_count(&answer), Some(0), "{filter}");
    }
    for filter in [
        "name eq 'x'; DROP TABLE read_accounts",
        "name eq 'x' OR 1=1",
        "name eq 'x' or 1 eq 1",
        "name; eq 'x'",
        "a.name eq 'x'",
        "name eq 'x' -- '",
        "name eq 'x' /* */",
        "(SELECT name FROM read_accounts) eq 'x'",
    ] {
        let refused = filtered(&app, "/accounts", filter, "").await;
        refused.assert_error(400, "InvalidFilter");
    }
    // The tables are all still there, with their rows.
    let accounts = get(&app, "/accounts?countRecords=true").await;
    assert_eq!(record_count(&accounts), Some(4));
    let numbers = get(&app, "/numbers?countRecords=true").await;
    assert_eq!(record_count(&numbers), Some(6));
}

// ---- requests for information ------------------------------------------------------------

#[tokio::test]
async fn requests_for_information_name_their_account() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    app.record_consent(TENANT).await;
    app.record_consent(LONE_TENANT).await;
    let created = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(created.status, 201, "{created:?}");
    let acknowledged = app
        .patch_consent(
            TENANT,
            &json!({"customerRelationship": {"status": "ConsentAcknowledged"}}),
        )
        .await;
    assert_eq!(acknowledged.status, 200, "{acknowledged:?}");
    wait_until_projected(&app, Duration::from_secs(20)).await;

    let list = get(&app, "/teamsRequestsForInformation?countRecords=true").await;
    assert_eq!(keys(&list, "tenantId"), [TENANT, LONE_TENANT]);
    assert_eq!(record_count(&list), Some(2));
    let items = list.body["value"].as_array().unwrap();
    assert_eq!(items[0]["accountName"], "contoso");
    assert!(items[1].get("accountName").is_none(), "{}", items[1]);
    for item in items {
        let single = app.get_consent(item["tenantId"].as_str().unwrap()).await;
        assert_eq!(
            item, &single.body,
            "the list holds what the single GET answers"
        );
    }

    for (filter, wanted) in [
        (
            "customerRelationship/status eq 'ConsentAcknowledged'",
            vec![TENANT],
        ),
        ("customerRelationship/status eq null", vec![LONE_TENANT]),
        ("accountName eq 'contoso'", vec![TENANT]),
        (
            "accountName eq null and status eq 'active'",
            vec![LONE_TENANT],
        ),
        (
            "status eq 'active' and not startswith(tenantId, 'a7')",
            vec![LONE_TENANT],
        ),
        ("status ne 'active'", vec![]),
    ] {
        let answer = filtered(&app, "/teamsRequestsForInformation", filter, "").await;
        assert_eq!(keys(&answer, "tenantId"), wanted, "{filter}");
    }
}

// ---- civic addresses ---------------------------------------------------------------------

#[tokio::test]
async fn civic_addresses_of_unknown_accounts_are_not_found_and_an_account_may_have_none() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    get(&app, "/accounts/nobody/teamsCivicAddresses")
        .await
        .assert_error(404, "NotFound");
    get(&app, "/accounts/nobody/teamsCivicAddresses/some-id")
        .await
        .assert_error(404, "NotFound");

    // An account without a Teams tenant has none; one whose tenant has none has none either.
    let northwind = app
        .put_account("northwind", &json!({"name": "northwind"}))
        .await;
    assert_eq!(northwind.status, 201, "{northwind:?}");
    let created = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(created.status, 201, "{created:?}");
    wait_until_projected(&app, Duration::from_secs(20)).await;
    for account in ["northwind", "contoso"] {
        let list = get(
            &app,
            &format!("/accounts/{account}/teamsCivicAddresses?countRecords=true"),
        )
        .await;
        assert_eq!(list.status, 200, "{list:?}");
        assert_eq!(list.body, json!({"value": []}), "{account}");
        assert_eq!(record_count(&list), Some(0), "{account}");
        get(
            &app,
            &format!(
                "/accounts/{account}/teamsCivicAddresses/ebfee340-a791-11ed-9bfa-ed8bb5c41be4"
            ),
        )
        .await
        .assert_error(404, "NotFound");
    }
    let refused = filtered(
        &app,
        "/accounts/contoso/teamsCivicAddresses",
        "city eq 'Reston'",
        "",
    )
    .await;
    refused.assert_error(400, "InvalidFilter");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("id, country, validationStatus"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn civic_addresses_of_the_accounts_tenant_are_listed_and_read() {
    let app = spawn_app().await;
    let _read = ReadSide::start(&app).await;
    let created = app.put_account("contoso", &account_body("contoso")).await;
    assert_eq!(created.status, 201, "{created:?}");
    let mut fabrikam = account_body("fabrikam");
    fabrikam["serviceDetails"]["teamsTenantId"] = json!(FABRIKAM_TENANT);
    let created = app.put_account("fabrikam", &fabrikam).await;
    assert_eq!(created.status, 201, "{created:?}");
    app.record_civic_address(TENANT, "address-2", "Redmond")
        .await;
    app.record_civic_address(TENANT, "address-1", "Reston")
        .await;
    app.record_civic_address(FABRIKAM_TENANT, "address-3", "Dublin")
        .await;
    wait_until_projected(&app, Duration::from_secs(20)).await;

    let list = get(
        &app,
        "/accounts/contoso/teamsCivicAddresses?countRecords=true&maxpagesize=1",
    )
    .await;
    assert_eq!(keys(&list, "id"), ["address-1"]);
    assert_eq!(record_count(&list), Some(2), "only the account's tenant's");
    let item = &list.body["value"][0];
    assert_eq!(item["tenantId"], TENANT);
    assert_eq!(item["cityOrTown"], "Reston");
    let next = follow(&app, &next_link(&list).expect("a second page")).await;
    assert_eq!(keys(&next, "id"), ["address-2"]);
    assert_eq!(next_link(&next), None);

    let one = get(&app, "/accounts/contoso/teamsCivicAddresses/address-1").await;
    assert_eq!(one.status, 200, "{one:?}");
    assert_eq!(
        &one.body, item,
        "the single GET answers what the list holds"
    );
    // Another tenant's address is not the account's.
    get(&app, "/accounts/contoso/teamsCivicAddresses/address-3")
        .await
        .assert_error(404, "NotFound");
    let filtered_list = filtered(
        &app,
        "/accounts/fabrikam/teamsCivicAddresses",
        "country eq 'US' and validationStatus eq 'validated'",
        "",
    )
    .await;
    assert_eq!(keys(&filtered_list, "id"), ["address-3"]);
}

#[tokio::test]
async fn the_openapi_document_describes_the_lists_and_the_dashboard() {
    let app = spawn_app().await;
    let document = app
        .send(app.client.get(format!("{}/openapi.json", app.address)))
        .await;
    assert_eq!(document.status, 200, "{document:?}");
    for path in [
        "/accounts",
        "/accounts/{accountName}/numbers",
        "/numbers",
        "/teamsRequestsForInformation",
        "/accounts/{accountName}/teamsCivicAddresses",
        "/accounts/{accountName}/teamsCivicAddresses/{civicAddressId}",
        "/dashboard/numbers/totals",
        "/dashboard/consents/totals",
        "/dashboard/activity",
        "/dashboard/feed",
    ] {
        let get = &document.body["paths"][path]["get"];
        assert!(get.is_object(), "{path} is described");
        let reference = get["responses"]["200"]["content"]
            .as_object()
            .and_then(|c| c.values().next())
            .and_then(|c| c["schema"]["$ref"].as_str())
            .unwrap_or_else(|| panic!("{path} answers a described body"));
        let name = reference.trim_start_matches("#/components/schemas/");
        assert!(
            document.body["components"]["schemas"][name].is_object(),
            "{path}: {reference} is defined"
        );
    }
    let page = &document.body["components"]["schemas"]["Page_NumberResource"];
    assert!(page["properties"]["value"].is_object(), "{page}");
    assert!(page["properties"]["nextLink"].is_object(), "{page}");
}
