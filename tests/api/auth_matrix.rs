//! Who may do what: each of the eight roles against each operation, and each way a bearer
//! token can be refused. A refused request never writes anything.

use auth::{Permission, Role};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tests::{Answer, TENANT, TestApp, account_body, number_body, number_path, spawn_app};

/// The operations of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    GetAccount,
    PutAccount,
    DeleteAccount,
    GetNumber,
    PutNumber,
    DeleteNumber,
    CreateOrUpdateNumbers,
    DeleteNumbers,
    GetConsent,
    PatchConsent,
}

/// One row of the matrix: the operation, the permission it needs, and its answer when allowed
/// (on the fixture `fixture()` sets up).
struct Row {
    op: Op,
    needs: Permission,
    success: u16,
}

const fn row(op: Op, needs: Permission, success: u16) -> Row {
    Row { op, needs, success }
}

#[rustfmt::skip]
const MATRIX: [Row; 10] = [
    row(Op::GetAccount, Permission::Read, 200),
    row(Op::PutAccount, Permission::Write, 200),
    row(Op::DeleteAccount, Permission::Delete, 204),
    row(Op::GetNumber, Permission::Read, 200),
    row(Op::PutNumber, Permission::Write, 201),
    row(Op::DeleteNumber, Permission::Delete, 204),
    row(Op::CreateOrUpdateNumbers, Permission::Write, 200),
    row(Op::DeleteNumbers, Permission::Delete, 204),
    row(Op::GetConsent, Permission::Read, 200),
    row(Op::PatchConsent, Permission::Write, 200),
];

/// What each role grants, written out independently of `auth`'s own table.
fn role_grants(role: Role, permission: Permission) -> bool {
    match role {
        Role::Admin | Role::AdminUser => true,
        Role::Read | Role::ReadUser => permission == Permission::Read,
        Role::Write | Role::WriteUser => permission == Permission::Write,
        Role::Delete | Role::DeleteUser => permission == Permission::Delete,
    }
}

/// Resources of one matrix cell: an account with one number, and a number not created yet.
struct Fixture {
    account: String,
    number: String,
    spare: String,
}

/// Creates, as an administrator, a fresh account `acct-<cell>` with one number, so that every
/// cell starts from the same state whatever the cells before it did.
async fn fixture(app: &TestApp, cell: usize) -> Fixture {
    let fixture = Fixture {
        account: format!("acct-{cell}"),
        number: format!("+1510555{:04}", cell * 2),
        spare: format!("+1510555{:04}", cell * 2 + 1),
    };
    let put = app
        .put_account(&fixture.account, &account_body(&fixture.account))
        .await;
    assert_eq!(put.status, 201, "fixture account: {put:?}");
    let put = app
        .put_number(
            &fixture.account,
            &fixture.number,
            &number_body(&fixture.account, &fixture.number),
        )
        .await;
    assert_eq!(put.status, 201, "fixture number: {put:?}");
    fixture
}

/// The request for `op` on `fixture` with `token` (none: no Authorization header).
fn operation(
    app: &TestApp,
    op: Op,
    fixture: &Fixture,
    token: Option<&str>,
    note: &str,
) -> RequestBuilder {
    let account = fixture.account.as_str();
    let consent = format!("/teamsRequestsForInformation/{TENANT}");
    match op {
        Op::GetAccount => app.request_as(Method::GET, &format!("/accounts/{account}"), token),
        Op::PutAccount => {
            // A real change, so that an allowed replace writes an event.
            let mut body = account_body(account);
            body["serviceDetails"]["teamsPhoneMobile"] =
                json!({"enabled": true, "syncEnabled": false});
            app.request_as(Method::PUT, &format!("/accounts/{account}"), token)
                .json(&body)
        }
        Op::DeleteAccount => app.request_as(
            Method::DELETE,
            &format!("/accounts/{account}?deleteNumbers=true"),
            token,
        ),
        Op::GetNumber => app.request_as(Method::GET, &number_path(account, &fixture.number), token),
        Op::PutNumber => app
            .request_as(Method::PUT, &number_path(account, &fixture.spare), token)
            .json(&number_body(account, &fixture.spare)),
        Op::DeleteNumber => app.request_as(
            Method::DELETE,
            &number_path(account, &fixture.number),
            token,
        ),
        Op::CreateOrUpdateNumbers => app
            .request_as(
                Method::POST,
                &format!("/accounts/{account}:createOrUpdateNumbers"),
                token,
            )
            .json(&json!({"numbers": [number_body(account, &fixture.spare)]})),
        Op::DeleteNumbers => app
            .request_as(
                Method::POST,
                &format!("/accounts/{account}:deleteNumbers"),
                token,
            )
            .json(&json!({"numbers": [{"telephoneNumber": fixture.number}]})),
        Op::GetConsent => app.request_as(Method::GET, &consent, token),
        Op::PatchConsent => app
            .request_as(Method::PATCH, &consent, token)
            .header("content-type", "application/merge-patch+json")
            // A comment of its own per request, so that each allowed patch is a change.
            .body(
                json!({"customerRelationship": {"status": "CustomerContacted", "comment": note}})
                    .to_string(),
            ),
    }
}

fn is_write(op: Op) -> bool {
    !matches!(op, Op::GetAccount | Op::GetNumber | Op::GetConsent)
}

#[tokio::test]
async fn every_role_against_every_operation() {
    let app = spawn_app().await;
    app.record_consent(TENANT).await;
    let mut failures = Vec::new();
    let mut cell = 0;
    for role in Role::ALL {
        let token = app.token(&[role]);
        for row in &MATRIX {
            cell += 1;
            let fixture = fixture(&app, cell).await;
            let before = app.event_count().await;
            let note = format!("cell {cell}: {role}");
            let answer = app
                .send(operation(&app, row.op, &fixture, Some(&token), &note))
                .await;
            let after = app.event_count().await;
            let allowed = role_grants(role, row.needs);
            let what = format!("{role} / {:?} (needs {})", row.op, row.needs);
            if allowed {
                if answer.status != row.success {
                    failures.push(format!(
                        "{what}: allowed, expected {}, got {answer:?}",
                        row.success
                    ));
                }
                if is_write(row.op) && after <= before {
                    failures.push(format!("{what}: allowed write recorded no event"));
                }
                if !is_write(row.op) && after != before {
                    failures.push(format!("{what}: a read wrote {} events", after - before));
                }
            } else {
                let code = answer.body["error"]["code"].as_str().unwrap_or("");
                if answer.status != 403
                    || code != "Forbidden"
                    || answer.header("x-ms-error-code") != Some("Forbidden")
                {
                    failures.push(format!("{what}: expected 403 Forbidden, got {answer:?}"));
                }
                if after != before {
                    failures.push(format!(
                        "{what}: a refused request wrote {} events",
                        after - before
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn user_roles_grant_exactly_what_their_machine_twins_grant() {
    let twins = [
        (Role::Admin, Role::AdminUser),
        (Role::Read, Role::ReadUser),
        (Role::Write, Role::WriteUser),
        (Role::Delete, Role::DeleteUser),
    ];
    for (machine, person) in twins {
        for permission in Permission::ALL {
            assert_eq!(
                machine.grants(permission),
                person.grants(permission),
                "{machine} vs {person} on {permission}"
            );
            assert_eq!(
                machine.grants(permission),
                role_grants(machine, permission),
                "{machine} on {permission}"
            );
        }
    }
}

/// The action of `POST /accounts/{name}:{action}` may come with its colon percent-encoded
/// (`%3A`, `%3a`): the router decodes the segment, so the permission check must see the same
/// action. Encoded or not, :deleteNumbers needs Delete and :createOrUpdateNumbers Write.
#[tokio::test]
async fn an_encoded_colon_does_not_change_the_permission_an_action_needs() {
    let app = spawn_app().await;
    let mut failures = Vec::new();
    let mut cell = 0;
    for role in Role::ALL {
        let token = app.token(&[role]);
        for colon in ["%3A", "%3a"] {
            for (action, needs, success) in [
                ("deleteNumbers", Permission::Delete, 204),
                ("createOrUpdateNumbers", Permission::Write, 200),
            ] {
                cell += 1;
                let fixture = fixture(&app, cell).await;
                let account = &fixture.account;
                let body = if action == "deleteNumbers" {
                    json!({"numbers": [{"telephoneNumber": fixture.number}]})
                } else {
                    json!({"numbers": [number_body(account, &fixture.spare)]})
                };
                let path = format!("/accounts/{account}{colon}{action}");
                let before = app.event_count().await;
                let answer = app
                    .send(
                        app.request_as(Method::POST, &path, Some(&token))
                            .json(&body),
                    )
                    .await;
                let written = app.event_count().await - before;
                let what = format!("{role} / POST {path} (needs {needs})");
                if role_grants(role, needs) {
                    if answer.status != success {
                        failures.push(format!(
                            "{what}: allowed, expected {success}, got {answer:?}"
                        ));
                    }
                } else {
                    if answer.status != 403 {
                        failures.push(format!("{what}: expected 403 Forbidden, got {answer:?}"));
                    }
                    if written != 0 {
                        failures.push(format!("{what}: a refused request wrote {written} events"));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn combined_roles_add_up() {
    let app = spawn_app().await;
    let fixture = fixture(&app, 1).await;
    let token = app.token(&[Role::ReadUser, Role::Delete]);
    let read = app
        .send(operation(&app, Op::GetNumber, &fixture, Some(&token), ""))
        .await;
    assert_eq!(read.status, 200, "{read:?}");
    let events = app.event_count().await;
    app.send(operation(&app, Op::PutNumber, &fixture, Some(&token), ""))
        .await
        .assert_error(403, "Forbidden");
    assert_eq!(app.event_count().await, events);
    let deleted = app
        .send(operation(
            &app,
            Op::DeleteNumber,
            &fixture,
            Some(&token),
            "",
        ))
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
}

#[tokio::test]
async fn a_token_without_roles_is_forbidden_everything() {
    let app = spawn_app().await;
    app.record_consent(TENANT).await;
    let fixture = fixture(&app, 1).await;
    let events = app.event_count().await;
    let no_roles = app.token(&[]);
    let unknown_role = sign(
        &app.secret,
        &json!({"sub": "someone", "roles": ["ProvisioningAPI.Superuser", "Admin"], "exp": now() + 600}),
    );
    for (label, token) in [("no roles", &no_roles), ("unknown roles", &unknown_role)] {
        for row in &MATRIX {
            let answer = app
                .send(operation(&app, row.op, &fixture, Some(token), label))
                .await;
            assert_eq!(answer.status, 403, "{label} / {:?}: {answer:?}", row.op);
            assert_eq!(answer.error_code(), "Forbidden", "{label} / {:?}", row.op);
        }
    }
    assert_eq!(app.event_count().await, events, "refusals write nothing");
}

// ---- tokens that are refused -----------------------------------------------------------------

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Signs `claims` with HS256 and `secret`.
fn sign(secret: &str, claims: &Value) -> String {
    sign_with(Algorithm::HS256, secret, claims)
}

fn sign_with(algorithm: Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

fn admin_claims(exp: i64) -> Value {
    json!({"sub": "mallory", "roles": ["ProvisioningAPI.Admin"], "iat": now(), "exp": exp})
}

fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// Sends a write (PUT of a new account) with `authorization` as the header (none: no header),
/// asserts 401 with `code` and a `WWW-Authenticate: Bearer` challenge, and that nothing was
/// written.
async fn unauthorised(app: &TestApp, authorization: Option<&str>, code: &str) -> Answer {
    let before = app.event_count().await;
    let mut request = app
        .request_as(Method::PUT, "/accounts/intruder", None)
        .json(&account_body("intruder"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let answer = app.send(request).await;
    assert_eq!(answer.status, 401, "{authorization:?}: {answer:?}");
    assert_eq!(answer.error_code(), code, "{authorization:?}: {answer:?}");
    assert_eq!(
        answer.header("www-authenticate"),
        Some("Bearer"),
        "{authorization:?}: {answer:?}"
    );
    assert_eq!(
        app.event_count().await,
        before,
        "a refused request writes nothing"
    );
    app.get_account("intruder")
        .await
        .assert_error(404, "NotFound");
    answer
}

#[tokio::test]
async fn no_authorization_header_is_a_missing_token() {
    let app = spawn_app().await;
    app.record_consent(TENANT).await;
    let fixture = fixture(&app, 1).await;
    unauthorised(&app, None, "MissingToken").await;
    // Every operation asks for a token, reads included.
    let events = app.event_count().await;
    for row in &MATRIX {
        let answer = app.send(operation(&app, row.op, &fixture, None, "")).await;
        assert_eq!(answer.status, 401, "{:?}: {answer:?}", row.op);
        assert_eq!(answer.error_code(), "MissingToken", "{:?}", row.op);
        assert_eq!(
            answer.header("www-authenticate"),
            Some("Bearer"),
            "{:?}",
            row.op
        );
    }
    assert_eq!(app.event_count().await, events);
}

#[tokio::test]
async fn other_schemes_and_empty_bearers_are_missing_tokens() {
    let app = spawn_app().await;
    let admin = app.admin();
    for header in [
        "Basic dXNlcjpwYXNz".to_string(),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        format!("Token {admin}"),
        admin.clone(),
    ] {
        unauthorised(&app, Some(&header), "MissingToken").await;
    }
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app().await;
    // Beyond the 30 s of allowed clock skew.
    let expired = sign(&app.secret, &admin_claims(now() - 3600));
    unauthorised(&app, Some(&format!("Bearer {expired}")), "TokenExpired").await;
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused() {
    let app = spawn_app().await;
    let mut claims = admin_claims(now() + 7200);
    claims["nbf"] = json!(now() + 3600);
    let early = sign(&app.secret, &claims);
    unauthorised(&app, Some(&format!("Bearer {early}")), "TokenNotYetValid").await;
}

#[tokio::test]
async fn a_token_without_an_expiry_is_refused() {
    let app = spawn_app().await;
    let endless = sign(
        &app.secret,
        &json!({"sub": "mallory", "roles": ["ProvisioningAPI.Admin"]}),
    );
    let answer = unauthorised(&app, Some(&format!("Bearer {endless}")), "MalformedToken").await;
    assert!(answer.body["error"]["message"].is_string());
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin();
    let header = b64(&json!({"alg": "HS256", "typ": "JWT"}));
    for token in [
        "not-a-jwt".to_string(),
        "a.b".to_string(),
        "a.b.c.d".to_string(),
        "!!!.???.***".to_string(),
        format!("{header}.%%%.sig"),
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode("not json"),
            b64(&admin_claims(now() + 600))
        ),
        // A valid token cut short.
        admin[..admin.len() / 2].to_string(),
    ] {
        unauthorised(&app, Some(&format!("Bearer {token}")), "MalformedToken").await;
    }
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_refused() {
    let app = spawn_app().await;
    let forged = auth::mint_token(
        b"some-other-secret-of-a-decent-length!!",
        "mallory",
        &[Role::Admin],
        std::time::Duration::from_secs(600),
    );
    unauthorised(
        &app,
        Some(&format!("Bearer {forged}")),
        "InvalidTokenSignature",
    )
    .await;
    // nmp's public development secret is no key either, when another secret is configured.
    let development = auth::mint_token(
        auth::DEVELOPMENT_SECRET.as_bytes(),
        "mallory",
        &[Role::Admin],
        std::time::Duration::from_secs(600),
    );
    unauthorised(
        &app,
        Some(&format!("Bearer {development}")),
        "InvalidTokenSignature",
    )
    .await;
}

#[tokio::test]
async fn a_token_whose_claims_were_changed_is_refused() {
    let app = spawn_app().await;
    // A genuine Read token whose payload is swapped for one granting Admin.
    let read = app.token(&[Role::Read]);
    let parts: Vec<&str> = read.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&json!({"sub": "test-user", "roles": ["ProvisioningAPI.Admin"], "exp": now() + 600})),
        parts[2]
    );
    unauthorised(
        &app,
        Some(&format!("Bearer {tampered}")),
        "InvalidTokenSignature",
    )
    .await;
}

#[tokio::test]
async fn unsigned_alg_none_tokens_are_refused() {
    let app = spawn_app().await;
    let payload = b64(&admin_claims(now() + 600));
    let genuine = app.admin();
    let genuine_signature = genuine.rsplit('.').next().expect("signature");
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(&json!({"alg": alg, "typ": "JWT"}));
        for signature in ["", genuine_signature] {
            let token = format!("{header}.{payload}.{signature}");
            unauthorised(
                &app,
                Some(&format!("Bearer {token}")),
                "UnsupportedTokenAlgorithm",
            )
            .await;
        }
    }
}

#[tokio::test]
async fn only_hs256_is_accepted_with_a_shared_secret() {
    let app = spawn_app().await;
    for algorithm in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign_with(algorithm, &app.secret, &admin_claims(now() + 600));
        unauthorised(
            &app,
            Some(&format!("Bearer {token}")),
            "UnsupportedTokenAlgorithm",
        )
        .await;
    }
    // The same claims under HS256 are fine: the refusals above are about the algorithm only.
    let token = sign(&app.secret, &admin_claims(now() + 600));
    let answer = app
        .send(
            app.request_as(Method::PUT, "/accounts/welcome", Some(&token))
                .json(&account_body("welcome")),
        )
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
}

#[tokio::test]
async fn authentication_comes_before_any_other_check() {
    let app = spawn_app().await;
    // Without a token, a bad api-version or body is not even looked at.
    let answer = app
        .send(
            app.client
                .put(format!(
                    "{}/accounts/bad.name?api-version=1999-01-01",
                    app.address
                ))
                .header("content-type", "text/plain")
                .body("nonsense"),
        )
        .await;
    answer.assert_error(401, "MissingToken");
    // Without the permission, neither.
    let read = app.token(&[Role::Read]);
    let answer = app
        .send(
            app.client
                .put(format!("{}/accounts/bad.name", app.address))
                .bearer_auth(&read)
                .body("nonsense"),
        )
        .await;
    answer.assert_error(403, "Forbidden");
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn health_needs_no_token() {
    let app = spawn_app().await;
    let health = app
        .send(app.client.get(format!("{}/healthz", app.address)))
        .await;
    assert_eq!(health.status, 200, "{health:?}");
    let openapi = app
        .send(app.client.get(format!("{}/openapi.json", app.address)))
        .await;
    assert_eq!(openapi.status, 200, "{openapi:?}");
    // A bad token does not spoil a request that needs none.
    let health = app
        .send(
            app.client
                .get(format!("{}/healthz", app.address))
                .header("authorization", "Bearer not-a-jwt"),
        )
        .await;
    assert_eq!(health.status, 200, "{health:?}");
}
