//! `nmp import numbers FILE.csv --account NAME`, as an operator runs it.

use std::process::Command;

use commands::CommandService;
use domain::{AccountName, AccountServices, SyncableService, TenantId};
use store::{EventMetadata, EventStore};

const NMP: &str = env!("CARGO_BIN_EXE_nmp");

fn database_url(name: &str) -> String {
    let server = std::env::var("NMP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let slash = server.rfind('/').expect("a database URL");
    format!("{}/{name}", &server[..slash])
}

#[tokio::test]
async fn import_reports_each_refused_row_and_its_exit_code_says_whether_all_went_in() {
    let name = format!("nmp_cli_import_{}", std::process::id());
    let url = database_url(&name);
    let pool = store::connect(&url, 2).await.expect("database");
    let commands = CommandService::new(EventStore::new(pool.clone()));
    commands
        .create_or_replace_account(
            &AccountName::parse("contoso").unwrap(),
            None,
            AccountServices {
                teams_tenant_id: Some(
                    TenantId::parse("a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a").unwrap(),
                ),
                teams_operator_connect: Some(SyncableService {
                    enabled: true,
                    sync_enabled: false,
                }),
                ..AccountServices::default()
            },
            &commands::Preconditions::none(),
            &EventMetadata::system("test"),
        )
        .await
        .expect("the account");
    let dir = std::env::temp_dir().join(format!("nmp-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("numbers.csv");
    let header = "telephoneNumber,serviceDetails_teamsOperatorConnect_enabled,\
                  serviceDetails_teamsOperatorConnect_configuration_usage,\
                  serviceDetails_teamsOperatorConnect_configuration_choosableCapabilities";
    std::fs::write(
        &file,
        format!(
            "{header}\n+15105850001,true,CallingUserAssignment,InboundCalling\n\
             +15105850002,true,Sometimes,InboundCalling\n\
             +15105850003,true,CallingUserAssignment,InboundCalling;OutboundCalling\n"
        ),
    )
    .unwrap();
    let results = dir.join("results.csv");
    let run = |args: &[&str]| {
        Command::new(NMP)
            .args(args)
            .env("NMP_DATABASE_URL", &url)
            .env_remove("NMP_CONFIG")
            .output()
            .expect("nmp runs")
    };
    let file_arg = file.to_str().unwrap();
    let results_arg = results.to_str().unwrap();

    // Checked only: nothing written, the refused row named, exit 1.
    let checked = run(&[
        "import",
        "numbers",
        file_arg,
        "--account",
        "contoso",
        "--check-only",
    ]);
    assert_eq!(checked.status.code(), Some(1), "{checked:?}");
    let said = String::from_utf8_lossy(&checked.stderr);
    assert!(
        said.contains(
            "row 2: serviceDetails_teamsOperatorConnect_configuration_usage: InvalidUsage"
        ),
        "{said}"
    );
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'number'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(events, 0);

    // Imported: the two good rows go in, the results file says what became of each.
    let imported = run(&[
        "import",
        "numbers",
        file_arg,
        "--account",
        "contoso",
        "--results",
        results_arg,
    ]);
    assert_eq!(imported.status.code(), Some(1), "{imported:?}");
    assert_eq!(
        String::from_utf8_lossy(&imported.stdout).trim(),
        "2 created, 0 updated, 1 refused"
    );
    let out = std::fs::read_to_string(&results).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1].ends_with(",created,,,"), "{out}");
    assert!(lines[2].contains(",refused,InvalidUsage,"), "{out}");
    assert!(lines[3].ends_with(",created,,,"), "{out}");

    // Every row good: exit 0.
    std::fs::write(
        &file,
        format!("{header}\n+15105850001,true,CallingUserAssignment,OutboundCalling\n"),
    )
    .unwrap();
    let again = run(&["import", "numbers", file_arg, "--account", "contoso"]);
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "0 created, 1 updated, 0 refused"
    );

    // A file or an account that cannot be used: exit 2.
    let missing = run(&["import", "numbers", file_arg, "--account", "nobody"]);
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    std::fs::write(&file, "telephoneNumber,phone\n+15105850001,1\n").unwrap();
    let bad = run(&["import", "numbers", file_arg, "--account", "contoso"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown column 'phone'"));

    pool.close().await;
    let admin = sqlx::PgPool::connect(&database_url("postgres"))
        .await
        .unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}
