//! The portal's numbers over real HTTP: the lists of one account and of all, filtered and
//! paged; adding numbers by hand; a 10,000-row CSV upload with bad rows (preview, import in the
//! background, progress, result file); a custom SIP header changed after a review; several
//! numbers deleted after confirming; export and upload again as a round trip; and what a
//! read-only user sees and is refused.

use std::time::{Duration, Instant};

use auth::Role;
use serde_json::{Value, json};
use tests::portal::{client, form_token, page_of, portal_app, post_form, signed_in};
use tests::projections::{ReadSide, wait_until_projected};
use tests::{TENANT, TestApp, account_body, number_body};

const SETTLE: Duration = Duration::from_secs(30);

/// Rows of a portal list: each number's live sync cell.
fn rows(html: &str) -> usize {
    html.matches(r#"data-live="number:"#).count()
}

/// The `href` of the list's "Next page" link, unescaped.
fn next_link(html: &str) -> Option<String> {
    let before = html.split(">Next page</a>").next()?;
    if before.len() == html.len() {
        return None;
    }
    let href = before.rsplit("href=\"").next()?.split('"').next()?;
    Some(href.replace("&amp;", "&"))
}

/// An Operator Connect number with an address, as the portal wants one for calling users.
fn addressed_number(account: &str, number: &str, sip: &str, address: &str) -> Value {
    json!({
        "telephoneNumber": number,
        "accountName": account,
        "serviceDetails": {"teamsOperatorConnect": {
            "enabled": true,
            "configuration": {
                "usage": "CallingUserAssignment",
                "choosableCapabilities": ["InboundCalling", "OutboundCalling"],
                "civicAddressId": address
            }
        }},
        "configuration": {"customSipHeader": sip}
    })
}

/// Adds numbers through the API, a hundred at a time.
async fn add_numbers(app: &TestApp, account: &str, bodies: Vec<Value>) {
    for chunk in bodies.chunks(100) {
        let answer = app
            .upsert_numbers(account, &json!({"numbers": chunk}))
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
}

#[tokio::test]
async fn lists_of_one_account_and_of_all_are_filtered_and_paged_keeping_the_filter() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_account("fabrikam", &account_body("fabrikam")).await;
    let contoso: Vec<Value> = (0..60)
        .map(|i| {
            let mut body = number_body("contoso", &format!("+1510585{i:04}"));
            if i % 2 == 1 {
                body["configuration"]["customSipHeader"] = json!("odd-gw");
            }
            body
        })
        .collect();
    add_numbers(&app, "contoso", contoso).await;
    add_numbers(
        &app,
        "fabrikam",
        (0..3)
            .map(|i| number_body("fabrikam", &format!("+4420790{i:05}")))
            .collect(),
    )
    .await;
    wait_until_projected(&app, SETTLE).await;
    let session = signed_in(&app, &[Role::ReadUser]).await;

    // One account's numbers, fifty to a page, then the rest after the last key.
    let (status, first) = page_of(&app, &session, "/portal/accounts/contoso/numbers").await;
    assert_eq!(status, 200);
    assert_eq!(rows(&first), 50);
    assert!(first.contains("60 numbers in all"), "the total");
    assert!(!first.contains("+4420790"), "only the account's numbers");
    let next = next_link(&first).expect("a next page");
    assert!(next.contains("after=%2B15105850049"), "{next}");
    let (_, second) = page_of(&app, &session, &next).await;
    assert_eq!(rows(&second), 10);
    assert!(second.contains("+15105850050") && !second.contains("+15105850049<"));
    assert!(next_link(&second).is_none(), "the last page");

    // A filter narrows the list, and its next page keeps it.
    let (_, odd) = page_of(
        &app,
        &session,
        "/portal/accounts/contoso/numbers?sip=odd-gw&number=1510585",
    )
    .await;
    assert_eq!(rows(&odd), 30);
    assert!(odd.contains("30 numbers in all match this filter"));
    assert!(
        odd.contains(r#"value="odd-gw""#),
        "the form shows the filter"
    );
    let (_, prefix) = page_of(
        &app,
        &session,
        "/portal/accounts/contoso/numbers?number=%2B151058500",
    )
    .await;
    assert_eq!(rows(&prefix), 50);
    assert!(prefix.contains("60 numbers in all"));
    let (_, tens) = page_of(
        &app,
        &session,
        "/portal/accounts/contoso/numbers?number=+1510585001",
    )
    .await;
    assert_eq!(rows(&tens), 10, "numbers starting +1510585001");

    // Across accounts: every account's numbers, and the account as a filter.
    let (status, all) = page_of(
        &app,
        &session,
        "/portal/numbers?service=teamsOperatorConnect",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(rows(&all), 50);
    assert!(
        !all.contains("in all"),
        "every account's numbers are not counted (it would read them all)"
    );
    let next = next_link(&all).expect("a next page");
    assert!(
        next.starts_with("/portal/numbers?service=teamsOperatorConnect&after="),
        "the next page keeps the filter: {next}"
    );
    let (_, rest) = page_of(&app, &session, &next).await;
    assert_eq!(rows(&rest), 13);
    assert!(rest.contains("+442079000002"), "fabrikam's too");
    let (_, fabrikam) = page_of(&app, &session, "/portal/numbers?account=fabrikam").await;
    assert_eq!(rows(&fabrikam), 3);
    assert!(fabrikam.contains(r#"href="/portal/accounts/fabrikam/numbers""#));

    // Values are bound, never pasted: a quote in a filter finds nothing and breaks nothing.
    let (status, injected) = page_of(
        &app,
        &session,
        "/portal/numbers?sip=x%27%20or%20%271%27%3D%271",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(rows(&injected), 0);
    assert!(injected.contains("No number matches this filter"));
    let (status, _) = page_of(&app, &session, "/portal/accounts/nobody/numbers").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn numbers_added_by_hand_need_an_address_for_calling_users_and_nothing_is_written_on_bad_input()
 {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.record_civic_address(TENANT, "addr-1", "Redmond").await;
    wait_until_projected(&app, SETTLE).await;
    let session = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;

    let (status, form) = page_of(&app, &session, "/portal/accounts/contoso/numbers/new").await;
    assert_eq!(status, 200);
    let csrf = form_token(&form);
    assert!(
        form.contains(
            "A number for calling users needs a civic address or location, unless the enterprise may update its address."
        ),
        "the rule is said beside the field before sending"
    );
    assert!(form.contains(r#"value="a:addr-1""#), "the tenant's address");
    assert!(form.contains(r#"value="l:addr-1-floor-1""#), "its location");
    assert!(form.contains("ELIN ELIN-1"));
    for id in [
        "service",
        "numbers",
        "sip",
        "usage",
        "place",
        "allow_update",
    ] {
        assert!(
            form.contains(&format!(r#"<label for="{id}">"#)),
            "label for {id}"
        );
    }
    let events = app.event_count().await;
    let path = "/portal/accounts/contoso/numbers/new";

    // A calling-user number without an address: the error stands beside the picker.
    let base = |numbers: &'static str, place: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("service", "teamsOperatorConnect".to_string()),
            ("numbers", numbers.to_string()),
            ("sip", "contoso-gw".to_string()),
            ("usage", "CallingUserAssignment".to_string()),
            ("capability", "InboundCalling".to_string()),
            ("capability", "OutboundCalling".to_string()),
            ("place", place.to_string()),
        ]
    };
    let send = |fields: Vec<(&'static str, String)>| {
        let app = &app;
        let session = session.clone();
        async move {
            let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(app, &session, path, &form).await
        }
    };
    let (status, html) = send(base("+15105850001\n+15105850002", "")).await;
    assert_eq!(status, 400);
    let place_error = html
        .split(r#"<p class="error" id="place-error" role="alert">"#)
        .nth(1)
        .expect("an error beside the address picker");
    assert!(
        place_error.starts_with("A number for calling users needs a civic address or location."),
        "{place_error}"
    );
    assert!(html.contains(r#"aria-describedby="place-hint place-error""#));
    assert!(
        html.contains("+15105850001\n+15105850002"),
        "what was typed stays"
    );
    assert_eq!(app.event_count().await, events, "nothing written");

    // A bad number among good ones: named beside the numbers; nothing written.
    let (status, html) = send(base("+15105850001, 12345 +15105850002", "a:addr-1")).await;
    assert_eq!(status, 400);
    let numbers_error = html
        .split(r#"id="numbers-error" role="alert">"#)
        .nth(1)
        .expect("an error beside the numbers");
    assert!(
        numbers_error
            .split("</p>")
            .next()
            .unwrap()
            .contains("12345"),
        "{numbers_error}"
    );
    assert_eq!(app.event_count().await, events, "nothing written");

    // No capability: the API's rule, beside the capabilities.
    let mut fields = base("+15105850001", "a:addr-1");
    fields.retain(|(k, _)| *k != "capability");
    let (status, html) = send(fields).await;
    assert_eq!(status, 400);
    assert!(
        html.contains(r#"id="capabilities-error" role="alert""#),
        "{html}"
    );
    assert_eq!(app.event_count().await, events, "nothing written");

    // Several numbers pasted at once, at a location of the tenant's address.
    let (status, location) = send(base(
        "+15105850001, +15105850002\n+15105850003",
        "l:addr-1-floor-1",
    ))
    .await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(location, "/portal/accounts/contoso/numbers?added=3");
    for number in ["+15105850001", "+15105850002", "+15105850003"] {
        let answer = app.get_number("contoso", number).await;
        assert_eq!(answer.status, 200, "{number}");
        let configuration = &answer.body["serviceDetails"]["teamsOperatorConnect"]["configuration"];
        assert_eq!(configuration["civicAddressId"], "addr-1");
        assert_eq!(configuration["locationId"], "addr-1-floor-1");
        assert_eq!(configuration["usage"], "CallingUserAssignment");
        assert_eq!(
            configuration["choosableCapabilities"],
            json!(["InboundCalling", "OutboundCalling"])
        );
        assert_eq!(
            answer.body["configuration"]["customSipHeader"],
            "contoso-gw"
        );
    }

    // Without an address, when the enterprise may update it.
    let mut fields = base("+15105850004", "");
    fields.push(("allow_update", "true".to_string()));
    let (status, _) = send(fields).await;
    assert_eq!(status, 303);
    let answer = app.get_number("contoso", "+15105850004").await;
    assert_eq!(
        answer.body["serviceDetails"]["teamsOperatorConnect"]["configuration"]["allowTenantAddressUpdate"],
        true
    );
}

/// A `multipart/form-data` body as a browser sends the upload form.
fn multipart(csrf: &str, file_name: &str, csv: &str) -> (String, Vec<u8>) {
    let boundary = "----nmpTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(csv.as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Uploads a CSV file through the portal's form: the status and where it sends the browser
/// (or the page).
async fn upload(app: &TestApp, session: &str, account: &str, csv: &str) -> (u16, String) {
    let (_, form) = page_of(
        app,
        session,
        &format!("/portal/accounts/{account}/uploads/new"),
    )
    .await;
    let csrf = form_token(&form);
    let (content_type, body) = multipart(&csrf, "numbers.csv", csv);
    let answer = client()
        .post(format!("{}/portal/accounts/{account}/uploads", app.address))
        .header("cookie", session)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("sent");
    let status = answer.status().as_u16();
    let location = answer
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    (status, location.unwrap_or(answer.text().await.unwrap()))
}

/// Presses Import on a preview and follows the progress until the import is done; answers
/// the progress seen on the way.
async fn import(app: &TestApp, session: &str, upload_page: &str) -> Vec<(u64, u64)> {
    let (_, preview) = page_of(app, session, upload_page).await;
    let csrf = form_token(&preview);
    let (status, location) = post_form(app, session, upload_page, &[("csrf", &csrf)]).await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(location, upload_page);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let progress: Value = client()
            .get(format!("{}{upload_page}/progress", app.address))
            .header("cookie", session)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        let done = progress["done"].as_u64().unwrap();
        let total = progress["total"].as_u64().unwrap();
        seen.push((done, total));
        if progress["stage"] == "done" {
            return seen;
        }
        assert_eq!(progress["stage"], "importing", "{progress}");
        assert!(Instant::now() < deadline, "the import ends: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each row's result in a result file, by its first cell.
fn results_by_number(csv: &str) -> Vec<(String, String)> {
    csv.lines()
        .skip(1)
        .map(|line| {
            let number = line.split(',').next().unwrap().to_string();
            let result = if line.contains(",created,") {
                "created".to_string()
            } else if line.contains(",updated,") {
                "updated".to_string()
            } else {
                let after = line.split(",refused,").nth(1).expect(line);
                let mut cells = after.split(',');
                format!(
                    "refused {} {}",
                    cells.next().unwrap(),
                    cells.next().unwrap()
                )
            };
            (number, result)
        })
        .collect()
}

#[tokio::test]
async fn a_ten_thousand_row_upload_is_checked_first_then_imported_in_the_background_with_a_result_per_row()
 {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_account("fabrikam", &account_body("fabrikam")).await;
    app.record_civic_address(TENANT, "addr-1", "Redmond").await;
    // Held by another account: its row is refused.
    let taken = app
        .put_number(
            "fabrikam",
            "+14255550100",
            &addressed_number("fabrikam", "+14255550100", "gw", "addr-1"),
        )
        .await;
    assert_eq!(taken.status, 201);
    let session = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;

    let mut csv = String::from(
        "telephoneNumber,serviceDetails_teamsOperatorConnect_enabled,\
         serviceDetails_teamsOperatorConnect_configuration_usage,\
         serviceDetails_teamsOperatorConnect_configuration_choosableCapabilities,\
         serviceDetails_teamsOperatorConnect_configuration_civicAddressId,\
         configuration_customSipHeader\n",
    );
    for row in 1..=10_000u32 {
        let mut number = format!("+1425555{:04}", row - 1);
        let mut usage = "CallingUserAssignment";
        let mut capabilities = "InboundCalling;OutboundCalling";
        let mut address = "addr-1";
        match row {
            17 => number = "12345".to_string(),
            500 => usage = "Nonsense",
            2000 => capabilities = "InboundCalling;Flying",
            9000 => address = "",
            9999 => number = "+14255550000".to_string(),
            _ => {}
        }
        csv.push_str(&format!(
            "{number},true,{usage},{capabilities},{address},gw-{row}\n"
        ));
    }
    let bad: &[(u32, &str, &str)] = &[
        (17, "telephoneNumber", "InvalidTelephoneNumber"),
        (101, "telephoneNumber", "NumberInAnotherAccount"),
        (
            500,
            "serviceDetails_teamsOperatorConnect_configuration_usage",
            "InvalidUsage",
        ),
        (
            2000,
            "serviceDetails_teamsOperatorConnect_configuration_choosableCapabilities",
            "InvalidCapability",
        ),
        (
            9000,
            "serviceDetails_teamsOperatorConnect_configuration_civicAddressId",
            "CivicAddressRequired",
        ),
        (9999, "telephoneNumber", "DuplicateNumber"),
    ];
    let events = app.event_count().await;

    // The preview: every bad row with its row, column and rule; nothing written.
    let started = Instant::now();
    let (status, page) = upload(&app, &session, "contoso", &csv).await;
    assert_eq!(status, 303, "{page}");
    assert!(
        page.starts_with("/portal/accounts/contoso/uploads/"),
        "{page}"
    );
    let upload_page = page;
    let (status, preview) = page_of(&app, &session, &upload_page).await;
    assert_eq!(status, 200);
    assert!(
        preview.contains("numbers.csv: 10000 rows."),
        "the file and its rows"
    );
    assert!(
        preview.contains("<strong>9994 rows can go in</strong>"),
        "{preview}"
    );
    assert!(preview.contains("6 refused"));
    for (row, column, rule) in bad {
        let cells = format!("<td>{row}</td><td>{column}</td><td>{rule}</td>");
        assert!(preview.contains(&cells), "row {row} refused: {cells}");
    }
    assert!(preview.contains("Import 9994 rows"));
    assert_eq!(app.event_count().await, events, "a preview writes nothing");
    let check: String = client()
        .get(format!("{}{upload_page}/check.csv", app.address))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(check.lines().count(), 10_001);
    assert_eq!(check.matches(",refused,").count(), 6);

    // Import: the progress goes up to every row, and the page then shows the result.
    let seen = import(&app, &session, &upload_page).await;
    assert_eq!(seen.last(), Some(&(10_000, 10_000)));
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress only goes up: {seen:?}"
    );
    let (_, done) = page_of(&app, &session, &upload_page).await;
    assert!(
        done.contains("numbers.csv: 9994 numbers created, 0 updated, 6 refused."),
        "{done}"
    );
    for (row, column, rule) in bad {
        assert!(done.contains(&format!("<td>{row}</td><td>{column}</td><td>{rule}</td>")));
    }

    // The result file names each row's outcome.
    let results = client()
        .get(format!("{}{upload_page}/results.csv", app.address))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(results.headers()["content-type"], "text/csv; charset=utf-8");
    let results = results.text().await.unwrap();
    assert!(
        results
            .lines()
            .next()
            .unwrap()
            .ends_with("result,errorCode,errorColumn,errorMessage")
    );
    let outcomes = results_by_number(&results);
    assert_eq!(outcomes.len(), 10_000);
    for (index, (number, outcome)) in outcomes.iter().enumerate() {
        let row = index as u32 + 1;
        match bad.iter().find(|(r, ..)| *r == row) {
            Some((_, column, rule)) => {
                assert_eq!(outcome, &format!("refused {rule} {column}"), "row {row}")
            }
            None => assert_eq!(outcome, "created", "row {row} ({number})"),
        }
    }

    // Every good row is stored, as the API shows (the read side may take a while for 10,000
    // numbers on a machine running many tests at once).
    wait_until_projected(&app, Duration::from_secs(120)).await;
    println!(
        "10,000 rows checked, imported and visible in {:?}",
        started.elapsed()
    );
    let listed = app
        .send(app.request(
            reqwest::Method::GET,
            "/accounts/contoso/numbers?countRecords=true&maxpagesize=1",
        ))
        .await;
    assert_eq!(listed.header("x-ms-record-count"), Some("9994"));
    let stored = app.get_number("contoso", "+14255559876").await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.body["configuration"]["customSipHeader"], "gw-9877");
    assert_eq!(app.get_number("contoso", "+14255550499").await.status, 404);
    assert_eq!(app.get_number("contoso", "+14255559998").await.status, 404);
    assert_eq!(
        app.get_number("fabrikam", "+14255550100").await.body["configuration"]["customSipHeader"],
        "gw",
        "another account's number is left alone"
    );

    // The same preview cannot be imported twice.
    let (status, location) = post_form(
        &app,
        &session,
        &upload_page,
        &[("csrf", &form_token(&done))],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, upload_page.as_str()));
}

#[tokio::test]
async fn a_bad_file_is_refused_beside_the_file_field() {
    let app = portal_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    let session = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;
    let (status, html) = upload(&app, &session, "contoso", "telephoneNumber,phone\n+1,2\n").await;
    assert_eq!(status, 400);
    let error = html
        .split(r#"id="file-error" role="alert">"#)
        .nth(1)
        .expect("an error beside the file field");
    assert!(error.starts_with("Unknown column 'phone'"), "{error}");
    let many = format!("telephoneNumber\n{}", "+15105850001\n".repeat(10_001));
    let (status, html) = upload(&app, &session, "contoso", &many).await;
    assert_eq!(status, 400);
    assert!(
        html.contains("at most 10000 may be imported at once"),
        "{html}"
    );
}

#[tokio::test]
async fn a_custom_sip_header_is_reviewed_before_it_is_uploaded() {
    let app = portal_app().await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_number(
        "contoso",
        "+15105850001",
        &number_body("contoso", "+15105850001"),
    )
    .await;
    let session = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;
    let path = "/portal/accounts/contoso/numbers/%2B15105850001";
    let (status, html) = page_of(&app, &session, path).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"data-live="number:+15105850001""#),
        "its sync state"
    );
    assert!(html.contains(r#"href="/portal/history/number/%2B15105850001""#));
    assert!(html.contains(r#"value="contoso-commsgw""#));
    let csrf = form_token(&html);
    let header_path = format!("{path}/sip-header");

    // A bad value: said beside the field; nothing written.
    let events = app.event_count().await;
    let (status, html) = post_form(
        &app,
        &session,
        &header_path,
        &[("csrf", &csrf), ("step", "review"), ("sip", "not valid!")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains(r#"id="sip-error" role="alert""#), "{html}");
    assert!(html.contains(r#"value="not valid!""#));

    // The review shows the change and writes nothing.
    let (status, review) = post_form(
        &app,
        &session,
        &header_path,
        &[("csrf", &csrf), ("step", "review"), ("sip", "fabrikam-sbc")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        review.contains("<dd>contoso-commsgw</dd>") && review.contains("<dd>fabrikam-sbc</dd>")
    );
    assert!(review.contains("Upload the change"));
    assert_eq!(app.event_count().await, events, "a review writes nothing");

    // Upload.
    let (status, location) = post_form(
        &app,
        &session,
        &header_path,
        &[("csrf", &csrf), ("step", "upload"), ("sip", "fabrikam-sbc")],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(location, format!("{path}?saved=1"));
    let answer = app.get_number("contoso", "+15105850001").await;
    assert_eq!(
        answer.body["configuration"]["customSipHeader"],
        "fabrikam-sbc"
    );
    let (_, saved) = page_of(&app, &session, &location).await;
    assert!(saved.contains("The custom SIP header is recorded"));

    // Removing it: an empty value, reviewed, then uploaded.
    let (_, review) = post_form(
        &app,
        &session,
        &header_path,
        &[("csrf", &csrf), ("step", "review"), ("sip", "")],
    )
    .await;
    assert!(review.contains("none (removed)"));
    post_form(
        &app,
        &session,
        &header_path,
        &[("csrf", &csrf), ("step", "upload"), ("sip", "")],
    )
    .await;
    let answer = app.get_number("contoso", "+15105850001").await;
    assert!(
        answer.body["configuration"]["customSipHeader"].is_null(),
        "{answer:?}"
    );

    // A number of another account is not found under this one.
    let (status, _) = page_of(
        &app,
        &session,
        "/portal/accounts/fabrikam/numbers/%2B15105850001",
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn several_numbers_are_deleted_after_confirming() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    let numbers = ["+15105850001", "+15105850002", "+15105850003"];
    add_numbers(
        &app,
        "contoso",
        numbers.iter().map(|n| number_body("contoso", n)).collect(),
    )
    .await;
    wait_until_projected(&app, SETTLE).await;

    // A writer who may not delete sees no way to.
    let writer = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;
    let (_, list) = page_of(&app, &writer, "/portal/accounts/contoso/numbers").await;
    assert!(!list.contains(r#"type="checkbox""#));
    assert!(!list.contains("Delete the selected numbers"));
    let (status, _) = post_form(
        &app,
        &writer,
        "/portal/accounts/contoso/numbers/delete",
        &[
            ("csrf", &form_token(&list)),
            ("step", "delete"),
            ("number", numbers[0]),
        ],
    )
    .await;
    assert_eq!(status, 403);

    let session = signed_in(&app, &[Role::ReadUser, Role::DeleteUser]).await;
    let (_, list) = page_of(&app, &session, "/portal/accounts/contoso/numbers").await;
    assert_eq!(list.matches(r#"type="checkbox" id="pick-"#).count(), 3);
    assert!(
        list.contains(r#"<label class="visually-hidden" for="pick-0">Select +15105850001</label>"#)
    );
    let csrf = form_token(&list);
    let events = app.event_count().await;

    // Confirm first: the numbers are listed, nothing is deleted yet.
    let (status, confirm) = post_form(
        &app,
        &session,
        "/portal/accounts/contoso/numbers/delete",
        &[
            ("csrf", &csrf),
            ("step", "confirm"),
            ("number", numbers[0]),
            ("number", numbers[2]),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(confirm.contains("Delete 2 numbers of contoso?"));
    assert!(confirm.contains("<li>+15105850001</li>") && confirm.contains("<li>+15105850003</li>"));
    assert!(!confirm.contains("<li>+15105850002</li>"));
    assert_eq!(
        app.event_count().await,
        events,
        "nothing deleted before confirming"
    );

    // None selected: said, nothing done.
    let (status, none) = post_form(
        &app,
        &session,
        "/portal/accounts/contoso/numbers/delete",
        &[("csrf", &csrf), ("step", "confirm")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(none.contains("No number was selected"));

    let (status, location) = post_form(
        &app,
        &session,
        "/portal/accounts/contoso/numbers/delete",
        &[
            ("csrf", &csrf),
            ("step", "delete"),
            ("number", numbers[0]),
            ("number", numbers[2]),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(location, "/portal/accounts/contoso/numbers?deleted=2");
    // The backend releases them (as the saga records), which deletes them.
    app.backend_accepts(&[numbers[0], numbers[2]]).await;
    assert_eq!(app.get_number("contoso", numbers[0]).await.status, 404);
    assert_eq!(app.get_number("contoso", numbers[2]).await.status, 404);
    assert_eq!(app.get_number("contoso", numbers[1]).await.status, 200);
    wait_until_projected(&app, SETTLE).await;
    let (_, list) = page_of(&app, &session, &location).await;
    assert!(list.contains("2 numbers being deleted"));
    assert_eq!(rows(&list), 1);
}

#[tokio::test]
async fn an_exported_list_uploaded_again_is_a_round_trip() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.record_civic_address(TENANT, "addr-1", "Redmond").await;
    let mut bodies: Vec<Value> = (0..5)
        .map(|i| {
            addressed_number(
                "contoso",
                &format!("+1510585000{i}"),
                &format!("gw-{i}"),
                "addr-1",
            )
        })
        .collect();
    bodies[1]["serviceDetails"]["teamsOperatorConnect"]["configuration"]["usage"] =
        json!("ConferenceAssignment");
    bodies[2]["serviceDetails"]["teamsOperatorConnect"]["configuration"]["allowTenantAddressUpdate"] =
        json!(true);
    bodies[3]["serviceDetails"]["teamsOperatorConnect"]["assignmentStatus"] = json!("assigned");
    add_numbers(&app, "contoso", bodies).await;
    wait_until_projected(&app, SETTLE).await;
    let session = signed_in(&app, &[Role::ReadUser, Role::WriteUser]).await;

    let export = |query: &'static str| {
        let app = &app;
        let session = session.clone();
        async move {
            let answer = client()
                .get(format!(
                    "{}/portal/accounts/contoso/numbers/export.csv{query}",
                    app.address
                ))
                .header("cookie", &session)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
            assert_eq!(answer.headers()["content-type"], "text/csv; charset=utf-8");
            assert!(
                answer.headers()["content-disposition"]
                    .to_str()
                    .unwrap()
                    .starts_with("attachment")
            );
            answer.text().await.unwrap()
        }
    };
    let exported = export("").await;
    assert_eq!(exported.lines().count(), 6);
    assert!(exported.starts_with("telephoneNumber,accountName,configuration_customSipHeader,"));
    assert!(exported.contains("+15105850001,contoso,gw-1,true,,ConferenceAssignment,InboundCalling;OutboundCalling,,addr-1"));
    // The export follows the list's filter.
    let filtered = export("?sip=gw-3").await;
    assert_eq!(filtered.lines().count(), 2);
    assert!(filtered.contains("+15105850003,contoso,gw-3,true,assigned,"));

    let (status, upload_page) = upload(&app, &session, "contoso", &exported).await;
    assert_eq!(status, 303, "{upload_page}");
    let (_, preview) = page_of(&app, &session, &upload_page).await;
    assert!(
        preview.contains("<strong>5 rows can go in</strong>; none is refused."),
        "{preview}"
    );
    import(&app, &session, &upload_page).await;
    let results = client()
        .get(format!("{}{upload_page}/results.csv", app.address))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let outcomes = results_by_number(&results);
    assert_eq!(outcomes.len(), 5);
    assert!(outcomes.iter().all(|(_, o)| o == "updated"), "{outcomes:?}");
    wait_until_projected(&app, SETTLE).await;
    assert_eq!(
        export("").await,
        exported,
        "export, upload, export: the same file"
    );
}

#[tokio::test]
async fn a_read_only_user_sees_no_write_actions_and_is_refused_when_forcing_one() {
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.put_number(
        "contoso",
        "+15105850001",
        &number_body("contoso", "+15105850001"),
    )
    .await;
    wait_until_projected(&app, SETTLE).await;
    let session = signed_in(&app, &[Role::ReadUser]).await;

    let (status, list) = page_of(&app, &session, "/portal/accounts/contoso/numbers").await;
    assert_eq!(status, 200);
    assert_eq!(rows(&list), 1);
    for action in [
        "Add numbers",
        "Upload a CSV file",
        "Delete the selected",
        r#"type="checkbox""#,
    ] {
        assert!(!list.contains(action), "no {action}");
    }
    assert!(
        list.contains("Export as CSV"),
        "reading and exporting are allowed"
    );
    let (_, number) = page_of(
        &app,
        &session,
        "/portal/accounts/contoso/numbers/%2B15105850001",
    )
    .await;
    assert!(!number.contains("Review the change"));
    assert!(!number.contains("sip-header"));
    let csrf = form_token(&number);

    let events = app.event_count().await;
    let (status, _) = page_of(&app, &session, "/portal/accounts/contoso/numbers/new").await;
    assert_eq!(status, 403);
    let (status, _) = page_of(&app, &session, "/portal/accounts/contoso/uploads/new").await;
    assert_eq!(status, 403);
    let (status, _) = post_form(
        &app,
        &session,
        "/portal/accounts/contoso/numbers/new",
        &[
            ("csrf", &csrf),
            ("service", "teamsDirectRouting"),
            ("numbers", "+15105850009"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post_form(
        &app,
        &session,
        "/portal/accounts/contoso/numbers/%2B15105850001/sip-header",
        &[("csrf", &csrf), ("step", "upload"), ("sip", "forced")],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post_form(
        &app,
        &session,
        "/portal/accounts/contoso/numbers/delete",
        &[
            ("csrf", &csrf),
            ("step", "delete"),
            ("number", "+15105850001"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    let (content_type, body) = multipart(&csrf, "n.csv", "telephoneNumber\n+15105850009\n");
    let forced = client()
        .post(format!("{}/portal/accounts/contoso/uploads", app.address))
        .header("cookie", &session)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status(), 403);
    assert_eq!(app.event_count().await, events, "nothing written");

    // And a form without the page's token is refused whatever the role.
    let admin = signed_in(&app, &[Role::AdminUser]).await;
    let (status, _) = post_form(
        &app,
        &admin,
        "/portal/accounts/contoso/numbers/delete",
        &[
            ("csrf", "guessed"),
            ("step", "delete"),
            ("number", "+15105850001"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(app.get_number("contoso", "+15105850001").await.status, 200);
}

/// A CSV file of `rows` Operator Connect numbers for calling users at `addr-1`, three of them
/// bad (rows 2, 3 and 4), written to a file of the test's own.
fn csv_file(rows: u32) -> std::path::PathBuf {
    let mut csv = String::from(
        "telephoneNumber,serviceDetails_teamsOperatorConnect_enabled,\
         serviceDetails_teamsOperatorConnect_configuration_usage,\
         serviceDetails_teamsOperatorConnect_configuration_choosableCapabilities,\
         serviceDetails_teamsOperatorConnect_configuration_civicAddressId\n",
    );
    for row in 1..=rows {
        let line = match row {
            2 => "12065550002,true,CallingUserAssignment,InboundCalling,addr-1".to_string(),
            3 => format!("+1206555{row:04},true,Nonsense,InboundCalling,addr-1"),
            4 => format!("+1206555{row:04},true,CallingUserAssignment,InboundCalling,"),
            _ => format!("+1206555{row:04},true,CallingUserAssignment,InboundCalling,addr-1"),
        };
        csv.push_str(&line);
        csv.push('\n');
    }
    let path = std::env::temp_dir().join(format!("nmp-upload-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&path, csv).expect("the CSV file is written");
    path
}

#[tokio::test]
async fn in_a_browser_staff_upload_a_file_with_bad_rows_see_the_preview_and_watch_the_import() {
    use tests::browser::Browser;
    let app = portal_app().await;
    let _read = ReadSide::start(&app).await;
    app.put_account("contoso", &account_body("contoso")).await;
    app.record_civic_address(TENANT, "addr-1", "Redmond").await;
    add_numbers(
        &app,
        "contoso",
        vec![addressed_number(
            "contoso",
            "+15105850001",
            "contoso-gw",
            "addr-1",
        )],
    )
    .await;
    wait_until_projected(&app, SETTLE).await;
    let file = csv_file(400);
    let browser = Browser::start().await;
    browser.sign_in(&app, Role::AdminUser).await;

    // The lists.
    browser.open(&app, "/portal/numbers").await;
    assert_eq!(browser.status().await, 200);
    browser.check_page("numbers-all").await;
    browser.open(&app, "/portal/accounts/contoso/numbers").await;
    browser.check_page("numbers-account").await;

    // Adding by hand: the rule beside the address picker, before and after sending.
    browser
        .click(r#"a[href="/portal/accounts/contoso/numbers/new"]"#)
        .await;
    assert!(
        browser
            .text("#place-hint")
            .await
            .contains("needs a civic address")
    );
    browser.check_page("numbers-new").await;
    browser.fill("#numbers", "+15105850002\n+15105850003").await;
    browser.choose("#usage", "CallingUserAssignment").await;
    browser.click(r#"main form button[type="submit"]"#).await;
    assert_eq!(browser.status().await, 400);
    assert!(
        browser
            .text("#place-error")
            .await
            .starts_with("A number for calling users needs a civic address or location.")
    );
    browser.check_page("numbers-new-error").await;
    browser.choose("#place", "l:addr-1-floor-1").await;
    browser.click(r#"main form button[type="submit"]"#).await;
    browser
        .wait_for_text("main", "2 numbers added", Duration::from_secs(10))
        .await;

    // Upload: the preview names the bad rows; nothing is written yet.
    browser
        .open(&app, "/portal/accounts/contoso/uploads/new")
        .await;
    browser.check_page("numbers-upload").await;
    browser.upload("#file", &file).await;
    browser.click(r#"main form button[type="submit"]"#).await;
    let heading = browser
        .wait_for_text("h1", "Check the upload", Duration::from_secs(20))
        .await;
    assert_eq!(heading, "Check the upload to contoso");
    let table = browser.text("table.rows").await;
    for expected in [
        "2 telephoneNumber InvalidTelephoneNumber",
        "3 serviceDetails_teamsOperatorConnect_configuration_usage InvalidUsage",
        "4 serviceDetails_teamsOperatorConnect_configuration_civicAddressId CivicAddressRequired",
    ] {
        assert!(table.contains(expected), "{expected} in {table}");
    }
    assert!(browser.text("main").await.contains("397 rows can go in"));
    browser.check_page("numbers-upload-preview").await;
    let events = app.event_count().await;

    // Import, with the event store held for a moment so that the progress page is seen; it
    // then shows the result by itself.
    let mut hold = app.pool.begin().await.expect("a transaction");
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .expect("the event store is held");
    browser.click(r#"main form button[type="submit"]"#).await;
    let status = browser
        .wait_for_text("#import-status", "rows done", Duration::from_secs(10))
        .await;
    assert!(status.ends_with("of 400 rows done"), "{status}");
    assert_eq!(browser.text("h1").await, "Importing into contoso");
    browser.check_page("numbers-upload-progress").await;
    assert_eq!(app.event_count().await, events, "held: nothing written yet");
    hold.rollback().await.expect("released");
    browser
        .wait_for_text("h1", "Import into contoso done", Duration::from_secs(60))
        .await;
    assert!(
        browser
            .text("main")
            .await
            .contains("397 numbers created, 0 updated, 3 refused.")
    );
    browser.check_page("numbers-upload-result").await;
    let _ = std::fs::remove_file(&file);

    // A number: its page, a SIP header reviewed, then uploaded.
    browser
        .open(&app, "/portal/accounts/contoso/numbers/%2B15105850001")
        .await;
    browser.check_page("numbers-number").await;
    browser.fill("#sip", "fabrikam-sbc").await;
    browser.click(r#"main form button[type="submit"]"#).await;
    browser
        .wait_for_text("h1", "Review the change", Duration::from_secs(10))
        .await;
    browser.check_page("numbers-number-review").await;
    browser.click(r#"main form button[type="submit"]"#).await;
    browser
        .wait_for_text(
            "main",
            "The custom SIP header is recorded",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        app.get_number("contoso", "+15105850001").await.body["configuration"]["customSipHeader"],
        "fabrikam-sbc"
    );

    // Deleting: tick two numbers, confirm.
    wait_until_projected(&app, SETTLE).await;
    browser.open(&app, "/portal/accounts/contoso/numbers").await;
    browser.click("#pick-0").await;
    browser.click("#pick-1").await;
    browser
        .click(r#"main form[action$="/delete"] button[type="submit"]"#)
        .await;
    browser
        .wait_for_text(
            "h1",
            "Delete 2 numbers of contoso?",
            Duration::from_secs(10),
        )
        .await;
    browser.check_page("numbers-delete-confirm").await;
    browser.click(r#"main form button[type="submit"]"#).await;
    browser
        .wait_for_text("main", "2 numbers being deleted", Duration::from_secs(10))
        .await;
    browser.close().await;
}
