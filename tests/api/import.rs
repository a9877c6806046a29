//! Importing numbers from CSV (the portal's upload and `nmp import numbers`): 10,000 rows with
//! bad rows among them; every bad row is named with its column and rule before anything is
//! written, and the others go in.

use api::import::{self, RowResult};
use domain::AccountName;
use serde_json::json;
use store::EventMetadata;
use tests::{account_body, number_body, spawn_app};

const HEADER: &str = "telephoneNumber,accountName,configuration_customSipHeader,\
serviceDetails_teamsOperatorConnect_enabled,serviceDetails_teamsOperatorConnect_assignmentStatus,\
serviceDetails_teamsOperatorConnect_configuration_usage,\
serviceDetails_teamsOperatorConnect_configuration_choosableCapabilities,\
serviceDetails_zoomPhoneCloudPeering_enabled";

fn row(number: &str) -> String {
    format!(
        "{number},contoso,contoso-trunk,true,assigned,CallingUserAssignment,InboundCalling;OutboundCalling,"
    )
}

#[tokio::test]
async fn ten_thousand_rows_with_bad_ones_are_checked_then_the_good_ones_imported() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_account("contoso", &account_body("contoso"))
            .await
            .status,
        201
    );
    assert_eq!(
        app.put_account("fabrikam", &account_body("fabrikam"))
            .await
            .status,
        201
    );
    let taken = "+15100000042";
    assert_eq!(
        app.put_number("fabrikam", taken, &number_body("fabrikam", taken))
            .await
            .status,
        201
    );

    let mut lines = vec![HEADER.to_string()];
    for i in 0..10_000 {
        lines.push(row(&format!("+1510{i:07}")));
    }
    // Bad rows, each against one rule (rows count from 1 after the header).
    lines[11] = row("15105550010"); // row 11: no +
    lines[21] = lines[21].replace("InboundCalling;OutboundCalling", "InboundCalling;Teleport"); // row 21
    lines[31] = lines[31].replace(",true,assigned", ",yes,assigned"); // row 31: not a boolean
    lines[41] = format!("{},true", &lines[41][..lines[41].len() - 1]); // row 41: Zoom off the account
    lines[43] = row(taken); // row 43: another account's number
    lines[51] = lines[50].clone(); // row 51: the number of row 50 again
    lines[61] = lines[61].replace(",contoso,", ",fabrikam,"); // row 61: another account named
    let file = lines.join("\n") + "\n";

    let sheet = import::read(file.as_bytes()).expect("a CSV file");
    assert_eq!(sheet.rows.len(), 10_000);
    let account = AccountName::parse("contoso").expect("name");
    let checked = import::check(&app.commands, &account, &sheet)
        .await
        .expect("checked");
    let refused: Vec<(usize, Option<String>, String)> = checked
        .iter()
        .filter_map(|c| c.outcome.as_ref().err())
        .map(|e| (e.row, e.column.clone(), e.code.clone()))
        .collect();
    let oc = "serviceDetails_teamsOperatorConnect";
    assert_eq!(
        refused,
        [
            (
                11,
                Some("telephoneNumber".into()),
                "InvalidTelephoneNumber".into()
            ),
            (
                21,
                Some(format!("{oc}_configuration_choosableCapabilities")),
                "InvalidCapability".into()
            ),
            (31, Some(format!("{oc}_enabled")), "InvalidValue".into()),
            (
                41,
                Some("serviceDetails_zoomPhoneCloudPeering_enabled".into()),
                "ServiceNotEnabledOnAccount".into()
            ),
            (
                43,
                Some("telephoneNumber".into()),
                "NumberInAnotherAccount".into()
            ),
            (51, Some("telephoneNumber".into()), "DuplicateNumber".into()),
            (61, Some("accountName".into()), "AccountNameMismatch".into()),
        ]
    );
    assert_eq!(app.event_count().await, 3, "checking writes nothing");

    let mut reported = Vec::new();
    let results = import::import(
        &app.commands,
        &account,
        checked,
        &EventMetadata::system("test-import"),
        |done, total| reported.push((done, total)),
    )
    .await;
    assert_eq!(results.len(), 10_000);
    let created = results.iter().filter(|r| **r == RowResult::Created).count();
    assert_eq!(created, 10_000 - 7);
    assert_eq!(reported.first(), Some(&(7, 10_000)));
    assert_eq!(reported.last(), Some(&(10_000, 10_000)));
    assert!(reported.windows(2).all(|w| w[0].0 < w[1].0));

    let account = app.get_account("contoso").await;
    assert_eq!(
        account.body["serviceDetails"]["teamsOperatorConnect"]["numberCount"],
        json!(10_000 - 7)
    );
    let number = app.get_number("contoso", "+15100009999").await;
    assert_eq!(number.status, 200);
    assert_eq!(
        number.body["configuration"]["customSipHeader"],
        "contoso-trunk"
    );
    assert_eq!(
        number.body["serviceDetails"]["teamsOperatorConnect"]["configuration"]["choosableCapabilities"],
        json!(["InboundCalling", "OutboundCalling"])
    );

    // The results file: the rows back with their outcome; importing it again updates.
    let out = import::results_csv(&sheet, &results);
    let out_lines: Vec<&str> = out.lines().collect();
    assert_eq!(out_lines.len(), 10_001);
    assert!(out_lines[0].ends_with("result,errorCode,errorColumn,errorMessage"));
    assert!(out_lines[1].contains(",created,,,"), "{}", out_lines[1]);
    assert!(out_lines[43].contains(",refused,NumberInAnotherAccount,telephoneNumber,"));

    let again = import::read(lines[..3].join("\n").as_bytes()).expect("read");
    let checked = import::check(
        &app.commands,
        &AccountName::parse("contoso").unwrap(),
        &again,
    )
    .await
    .expect("checked");
    let results = import::import(
        &app.commands,
        &AccountName::parse("contoso").unwrap(),
        checked,
        &EventMetadata::system("test-import"),
        |_, _| {},
    )
    .await;
    assert_eq!(results, [RowResult::Updated, RowResult::Updated]);
}

#[tokio::test]
async fn an_import_into_an_account_that_does_not_exist_is_refused_whole() {
    let app = spawn_app().await;
    let sheet =
        import::read(format!("{HEADER}\n{}\n", row("+15105850001")).as_bytes()).expect("read");
    let refused = import::check(
        &app.commands,
        &AccountName::parse("nobody").unwrap(),
        &sheet,
    )
    .await;
    assert!(
        matches!(refused, Err(import::ImportError::AccountNotFound(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_example_file_in_the_repository_imports_cleanly() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_account("contoso", &account_body("contoso"))
            .await
            .status,
        201
    );
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/numbers.csv"
    ))
    .expect("the example");
    let sheet = import::read(&bytes).expect("read");
    let account = AccountName::parse("contoso").unwrap();
    let checked = import::check(&app.commands, &account, &sheet)
        .await
        .expect("checked");
    let results = import::import(
        &app.commands,
        &account,
        checked,
        &EventMetadata::system("test-import"),
        |_, _| {},
    )
    .await;
    assert_eq!(results, vec![RowResult::Created; sheet.rows.len()]);
    assert_eq!(sheet.rows.len(), 3);
}

#[tokio::test]
async fn exported_numbers_import_back_unchanged() {
    let app = spawn_app().await;
    let mut account = account_body("contoso");
    account["serviceDetails"]["teamsDirectRouting"] =
        json!({"enabled": true, "syncEnabled": false});
    assert_eq!(app.put_account("contoso", &account).await.status, 201);
    let mut rich = number_body("contoso", "+15105850001");
    rich["serviceDetails"]["teamsOperatorConnect"]["configuration"] = json!({
        "usage": "CallingUserAssignment",
        "choosableCapabilities": ["InboundCalling", "OutboundCalling"],
        "additionalUsages": ["ConferenceAssignment"],
        "civicAddressId": "civic-1", "locationId": "location-1",
        "allowTenantAddressUpdate": true, "displayedCountryCode": "GB"});
    rich["serviceDetails"]["teamsDirectRouting"] = json!({"enabled": true});
    assert_eq!(
        app.put_number("contoso", "+15105850001", &rich)
            .await
            .status,
        201
    );
    let plain = number_body("contoso", "+15105850002");
    assert_eq!(
        app.put_number("contoso", "+15105850002", &plain)
            .await
            .status,
        201
    );

    let mut exported = Vec::new();
    for number in ["+15105850001", "+15105850002"] {
        let read = app.get_number("contoso", number).await;
        exported.push(
            serde_json::from_value::<api::wire::number::NumberResource>(read.body.clone())
                .expect("a number"),
        );
    }
    let file = import::export_csv(&exported);
    let sheet = import::read(file.as_bytes()).expect("the export reads back");
    assert_eq!(sheet.rows.len(), 2);
    let account = AccountName::parse("contoso").unwrap();
    let checked = import::check(&app.commands, &account, &sheet)
        .await
        .expect("checked");
    let before = app.event_count().await;
    let results = import::import(
        &app.commands,
        &account,
        checked,
        &EventMetadata::system("test-import"),
        |_, _| {},
    )
    .await;
    assert_eq!(results, [RowResult::Updated, RowResult::Updated]);
    assert_eq!(
        app.event_count().await,
        before,
        "nothing changed: the round trip is exact"
    );
}
