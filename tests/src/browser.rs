//! The portal in a real browser: headless Chromium driven through its chromedriver over the W3C
//! WebDriver protocol (a small client on the tests' own HTTP client), each page checked with
//! axe-core and photographed at a desk's size and a phone's.
//!
//! Every [`Browser`] starts its own chromedriver on a free port of 127.0.0.1 with a fresh
//! Chromium profile, so tests run in parallel; dropping it kills both. `scripts/test` installs
//! Debian's `chromium` and `chromium-driver` and the axe-core package (`tests/browser`) before any
//! test runs: nothing is downloaded while they run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auth::Role;
use base64::Engine;
use serde_json::{Value, json};

use crate::TestApp;

/// The key under which WebDriver answers an element's reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a step waits for the element it acts on to appear (after a navigation, say).
const FIND_WAIT: Duration = Duration::from_secs(10);

/// The desk's window and the phone's, as the portal promises to work at.
const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);

/// Keys for [`Browser::press`], as WebDriver names them.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";
pub const ARROW_DOWN: &str = "\u{E015}";

/// The most a page's first load may bring: its HTML, style sheets and scripts together.
pub const FIRST_LOAD_BYTES: u64 = 150 * 1024;

/// Tallest screenshot taken of a long page, in CSS pixels.
const TALLEST_SHOT: u64 = 6000;

/// Where axe-core's script is, once `scripts/test` has installed it.
fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules/axe-core/axe.min.js")
}

/// Where the screenshots go: `target/screenshots/` of the workspace (or of `CARGO_TARGET_DIR`).
pub fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("screenshots")
}

/// A headless Chromium, driven through its own chromedriver.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    closed: bool,
}

/// Finds a program on `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Kills a chromedriver and the Chromium it started (they share its process group).
fn kill_group(driver: &mut Child) {
    let _ = Command::new("sh")
        // `kill -9 -GROUP`: the one spelling every shell's kill knows (dash's has no `--`).
        .args(["-c", &format!("kill -9 -{} 2>/dev/null", driver.id())])
        .status();
    let _ = driver.kill();
    let _ = driver.wait();
}

/// Ends a WebDriver session without the async runtime (from `Drop`, when a test failed): a
/// plain HTTP DELETE, so that Chromium quits as it should.
fn end_session(session: &str) {
    use std::io::{Read, Write};
    let Some(rest) = session.strip_prefix("http://") else {
        return;
    };
    let Some((host, path)) = rest.split_once('/') else {
        return;
    };
    let Ok(address) = host.parse::<std::net::SocketAddr>() else {
        return;
    };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))
    else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return;
    }
    // Read the whole answer (chromedriver may keep the connection open): its headers, then
    // as many bytes as they announce.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(read) = stream.read(&mut chunk) {
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                break;
            }
        }
    }
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium at 1280x800.
    pub async fn start() -> Browser {
        let chromedriver = which("chromedriver").expect(
            "chromedriver is not installed: run scripts/test, which installs Debian's chromium and chromium-driver",
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("an HTTP client");
        let mut last_error = String::new();
        // A free port can be taken between finding it and chromedriver binding it: try again.
        for _ in 0..3 {
            let port = free_port();
            let mut command = Command::new(&chromedriver);
            command
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let mut driver = command.spawn().expect("chromedriver starts");
            let base = format!("http://127.0.0.1:{port}");
            if let Err(error) = wait_until_ready(&http, &base, &mut driver).await {
                last_error = error;
                kill_group(&mut driver);
                continue;
            }
            match new_session(&http, &base).await {
                Ok(id) => {
                    let browser = Browser {
                        driver,
                        http,
                        session: format!("{base}/session/{id}"),
                        closed: false,
                    };
                    browser
                        .call(
                            reqwest::Method::POST,
                            "/timeouts",
                            json!({"script": 120_000, "pageLoad": 60_000, "implicit": 0}),
                        )
                        .await;
                    browser.emulate(DESKTOP, false).await;
                    return browser;
                }
                Err(error) => {
                    last_error = error;
                    kill_group(&mut driver);
                }
            }
        }
        panic!("headless Chromium did not start: {last_error}");
    }

    /// Signs in to the portal as it is done by hand: the sign-in page, a pasted bearer token of
    /// `role`, the button; the browser then holds the session cookie.
    /// A writer or deleter also gets `ReadUser`, as staff are given it (the roles are separate
    /// grants and the portal needs reading to show anything).
    pub async fn sign_in(&self, app: &TestApp, role: Role) {
        self.open(app, "/portal/sign-in").await;
        let roles = match role {
            Role::WriteUser | Role::DeleteUser => vec![Role::ReadUser, role],
            other => vec![other],
        };
        self.fill("#token", &app.token(&roles)).await;
        self.click(r#"form[action="/portal/sign-in"] button[type="submit"]"#)
            .await;
        self.wait_for_text("body", "Signed in as", Duration::from_secs(10))
            .await;
    }

    /// Goes to a path of the app (`/portal/...`) and waits until the page has loaded.
    pub async fn open(&self, app: &TestApp, path: &str) {
        self.call(
            reqwest::Method::POST,
            "/url",
            json!({"url": format!("{}{path}", app.address)}),
        )
        .await;
    }

    /// The address of the page shown.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The HTTP status the page shown was answered with (from the page's navigation timing).
    pub async fn status(&self) -> u16 {
        let status = self
            .execute(
                "const n = performance.getEntriesByType('navigation')[0];
                 return n ? n.responseStatus : null;",
                json!([]),
            )
            .await;
        status
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .expect("the page's HTTP status")
    }

    /// Clears a text field (input or textarea) and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            json!({}),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Chooses the option of value `value` in a drop-down.
    pub async fn choose(&self, css: &str, value: &str) {
        let select = self.find(css).await;
        let option = format!(r#"option[value="{}"]"#, value.replace('"', "\\\""));
        let found = self
            .try_call(
                reqwest::Method::POST,
                &format!("/element/{select}/element"),
                json!({"using": "css selector", "value": option}),
            )
            .await
            .unwrap_or_else(|error| panic!("{css} offers no option {value:?}: {error}"));
        let id = element_id(&found);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Clicks an element (a link, a button), waiting for the page it leads to, if any.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.mark_page().await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await;
        self.wait_if_navigating().await;
    }

    /// Presses a key ([`TAB`], [`ENTER`], [`ARROW_DOWN`], a letter) on whatever has the focus;
    /// after Enter or Space, waits for the page it leads to, if any.
    pub async fn press(&self, key: &str) {
        let submits = key == ENTER || key == " ";
        if submits {
            self.mark_page().await;
        }
        self.keys(&[key]).await;
        if submits {
            self.wait_if_navigating().await;
        }
    }

    /// Types text into whatever has the focus, key by key.
    pub async fn type_keys(&self, text: &str) {
        let keys: Vec<String> = text.chars().map(String::from).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.keys(&keys).await;
    }

    /// Presses Tab until the element matching `css` has the focus (at most `most` times), and
    /// checks that every element the focus stops at on the way shows it (an outline or a
    /// shadow); fails naming the stops if it never gets there.
    pub async fn tab_to(&self, css: &str, most: usize) {
        let mut stops = Vec::new();
        for _ in 0..most {
            self.keys(&[TAB]).await;
            let stop = self
                .execute(
                    "const e = document.activeElement;
                     const s = getComputedStyle(e);
                     const shown = (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0)
                       || s.boxShadow !== 'none';
                     return [e.outerHTML.slice(0, 120), shown, e.matches(arguments[0])];",
                    json!([css]),
                )
                .await;
            let html = stop[0].as_str().unwrap_or_default().to_string();
            assert_eq!(
                stop[1],
                json!(true),
                "the focus is not seen on {html} (on {})",
                self.url().await
            );
            if stop[2] == json!(true) {
                return;
            }
            stops.push(html);
        }
        panic!(
            "{most} presses of Tab do not reach {css} on {}; the focus went to:\n{}",
            self.url().await,
            stops.join("\n")
        );
    }

    async fn keys(&self, keys: &[&str]) {
        let actions: Vec<Value> = keys
            .iter()
            .flat_map(|key| {
                [
                    json!({"type": "keyDown", "value": key}),
                    json!({"type": "keyUp", "value": key}),
                ]
            })
            .collect();
        self.call(
            reqwest::Method::POST,
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
    }

    /// Chooses a file for a file input.
    pub async fn upload(&self, css: &str, file: &Path) {
        let file = file
            .canonicalize()
            .unwrap_or_else(|error| panic!("{} cannot be uploaded: {error}", file.display()));
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            json!({ "text": file.to_string_lossy() }),
        )
        .await;
    }

    /// The text of an element, as a person sees it.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/text"),
            Value::Null,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// An attribute of an element (`None` when it has none).
    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/attribute/{name}"),
            Value::Null,
        )
        .await
        .as_str()
        .map(str::to_string)
    }

    /// How many elements match `css` now (no waiting).
    pub async fn count(&self, css: &str) -> usize {
        self.call(
            reqwest::Method::POST,
            "/elements",
            json!({"using": "css selector", "value": css}),
        )
        .await
        .as_array()
        .map_or(0, Vec::len)
    }

    /// The page's HTML as the browser holds it now.
    pub async fn html(&self) -> String {
        self.call(reqwest::Method::GET, "/source", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the element's text contains `needle` (the page may change by itself, from
    /// the live feed) and answers its text; fails with what it said last.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("(no such element)");
        loop {
            if let Ok(found) = self
                .try_call(
                    reqwest::Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await
            {
                let id = element_id(&found);
                if let Ok(text) = self
                    .try_call(
                        reqwest::Method::GET,
                        &format!("/element/{id}/text"),
                        Value::Null,
                    )
                    .await
                {
                    last = text.as_str().unwrap_or_default().to_string();
                    if last.contains(needle) {
                        return last;
                    }
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "after {timeout:?}, {css} on {} still does not say {needle:?}; it says:\n{last}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a script in the page (WebDriver's scripts are not bound by the page's CSP) and
    /// answers what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Runs a script that answers later: it calls its last argument with the answer (as
    /// WebDriver's asynchronous scripts do), within two minutes.
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// What the page's own origin answers at `path` (fetched by the page, with its session
    /// cookie): a file a link offers for download, say.
    pub async fn fetch_text(&self, path: &str) -> String {
        let answer = self
            .execute_async(
                "const [path, done] = arguments;
                 fetch(path, { credentials: 'same-origin' })
                   .then(r => r.text().then(t => done([r.status, t])))
                   .catch(e => done([0, String(e)]));",
                json!([path]),
            )
            .await;
        assert_eq!(answer[0], json!(200), "GET {path} from the page: {answer}");
        answer[1].as_str().unwrap_or_default().to_string()
    }

    /// Posts a form the page does not offer, as someone forcing the portal would: a form built in
    /// the page with `fields`, sent to `action`; the browser then shows the portal's answer.
    pub async fn post_form(&self, action: &str, fields: &[(&str, &str)]) {
        let fields: Vec<Value> = fields.iter().map(|(k, v)| json!([k, v])).collect();
        self.mark_page().await;
        self.execute(
            "const [action, fields] = arguments;
             const form = document.createElement('form');
             form.method = 'post';
             form.action = action;
             for (const [name, value] of fields) {
               const input = document.createElement('input');
               input.type = 'hidden';
               input.name = name;
               input.value = value;
               form.appendChild(input);
             }
             document.body.appendChild(form);
             setTimeout(() => form.submit(), 0);",
            json!([action, fields]),
        )
        .await;
        self.wait_if_navigating().await;
    }

    /// Marks the page shown, and notes when it starts to navigate away (the Navigation API's
    /// `navigate` event, which a link or a form's submission fires).
    async fn mark_page(&self) {
        self.execute(
            "window.nmpLeaving = true;
             window.nmpNavigating = false;
             if (window.navigation && !window.nmpWatching) {
               window.nmpWatching = true;
               navigation.addEventListener('navigate', e => {
                 if (!e.hashChange && !e.downloadRequest) window.nmpNavigating = true;
               });
             }",
            json!([]),
        )
        .await;
    }

    /// After a step on a marked page: when it started a navigation, waits until the next page
    /// has loaded (chromedriver may answer a click before the form's submission begins).
    async fn wait_if_navigating(&self) {
        let clicked = Instant::now();
        let deadline = clicked + Duration::from_secs(60);
        loop {
            let state = self
                .try_call(
                    reqwest::Method::POST,
                    "/execute/sync",
                    json!({
                        "script": "return window.nmpLeaving
                            ? (window.nmpNavigating ? 'leaving' : 'staying')
                            : document.readyState",
                        "args": [],
                    }),
                )
                .await;
            match state.as_ref().ok().and_then(Value::as_str) {
                Some("complete") => return,
                // A submission starts in a task after the click: give it a moment to begin.
                Some("staying") if clicked.elapsed() > Duration::from_millis(250) => return,
                _ if Instant::now() > deadline => return,
                // Leaving, loading, or between two pages.
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Checks the page shown with axe-core at a desk's size and a phone's — it fails on any
    /// serious or critical violation, printing them, on a page wider than the screen, and on a
    /// first load (HTML, style, script) over [`FIRST_LOAD_BYTES`] — then
    /// saves `target/screenshots/{name}-desktop.png` (1280 wide) and `{name}-phone.png` (390
    /// wide), each as tall as the page.
    pub async fn check_page(&self, name: &str) {
        let axe = std::fs::read_to_string(axe_path()).unwrap_or_else(|error| {
            panic!(
                "axe-core is not installed at {} ({error}): run scripts/test, which installs it (npm ci in tests/browser)",
                axe_path().display()
            )
        });
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("the screenshots' folder");
        let page = self.url().await;
        let mut problems = Vec::new();
        let weight = self.first_load_bytes().await;
        println!("{name}: first load {weight} bytes");
        if weight > FIRST_LOAD_BYTES {
            problems.push(format!(
                "its first load is {weight} bytes of HTML, style and script, more than {FIRST_LOAD_BYTES}"
            ));
        }
        for (size, (width, height), mobile) in [("desktop", DESKTOP, false), ("phone", PHONE, true)]
        {
            self.emulate((width, height), mobile).await;
            // Let the page's script see the new size (tables that now scroll, say).
            self.settle().await;
            // Compared with the screen's width, not the window's: a page too wide makes a
            // phone zoom out, and the window grows with it.
            let wide = self
                .execute(
                    "return Math.max(document.documentElement.scrollWidth, document.body ? document.body.scrollWidth : 0)",
                    json!([]),
                )
                .await
                .as_u64()
                .unwrap_or(0);
            if wide > u64::from(width) {
                let culprits = self
                    .execute(
                        "const w = arguments[0];
                         return [...document.querySelectorAll('body *')]
                           .filter(e => e.getBoundingClientRect().right > w + 1)
                           .filter(e => !e.parentElement || e.parentElement.getBoundingClientRect().right <= w + 1)
                           .slice(0, 5)
                           .map(e => e.outerHTML.slice(0, 160))",
                        json!([width]),
                    )
                    .await;
                problems.push(format!(
                    "{size}: the page is {wide} px wide on a {width} px screen, so it scrolls sideways; too wide: {culprits}"
                ));
            }
            for violation in self.axe_violations(&axe).await {
                let impact = violation["impact"].as_str().unwrap_or("unknown");
                let summary = describe(&violation);
                println!("axe on {page} ({size}), {impact}: {summary}");
                if matches!(impact, "serious" | "critical") {
                    problems.push(format!("{size}, {impact}: {summary}"));
                }
            }
            let shot = self.full_page_screenshot(width).await;
            let file = dir.join(format!("{name}-{size}.png"));
            std::fs::write(&file, shot)
                .unwrap_or_else(|error| panic!("cannot write {}: {error}", file.display()));
        }
        self.emulate(DESKTOP, false).await;
        assert!(
            problems.is_empty(),
            "the page {name} ({page}) has accessibility or layout problems:\n{}",
            problems.join("\n")
        );
    }

    /// Closes the browser and its chromedriver.
    pub async fn close(mut self) {
        let _ = self
            .try_call(reqwest::Method::DELETE, "", Value::Null)
            .await;
        self.closed = true;
        kill_group(&mut self.driver);
    }

    /// The bytes of the page shown and of the style sheets and scripts it loaded, as they came
    /// over the wire (or would have, for what the browser had cached).
    async fn first_load_bytes(&self) -> u64 {
        self.execute(
            "const nav = performance.getEntriesByType('navigation')[0];
             const files = performance.getEntriesByType('resource')
               .filter(r => ['link', 'script', 'css'].includes(r.initiatorType));
             return (nav ? nav.encodedBodySize : 0)
               + files.reduce((sum, r) => sum + r.encodedBodySize, 0);",
            json!([]),
        )
        .await
        .as_u64()
        .unwrap_or(0)
    }

    /// axe-core's violations on the page shown.
    async fn axe_violations(&self, axe: &str) -> Vec<Value> {
        // The script is run by WebDriver, not by a <script> tag, so the page's CSP (script-src
        // 'self') does not stop it.
        let loaded = self
            .execute(&format!("{axe}\n;return typeof window.axe;"), json!([]))
            .await;
        assert_eq!(loaded, json!("object"), "axe-core did not load in the page");
        let answer = self
            .call(
                reqwest::Method::POST,
                "/execute/async",
                json!({
                    "script": "const done = arguments[arguments.length - 1];
                        window.axe.run(document, { resultTypes: ['violations'] })
                          .then(r => done(JSON.stringify(r.violations)))
                          .catch(e => done(JSON.stringify({ error: String(e) })));",
                    "args": [],
                }),
            )
            .await;
        let parsed: Value =
            serde_json::from_str(answer.as_str().unwrap_or("null")).expect("axe's answer");
        match parsed {
            Value::Array(violations) => violations,
            other => panic!("axe-core could not check the page: {other}"),
        }
    }

    /// The page's viewport as a desk's or a phone's (Chromium's device emulation, so that
    /// the size is the page's, not the window's with its frame).
    async fn emulate(&self, (width, height): (u32, u32), mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// A PNG of the whole page (up to a limit), `width` CSS pixels wide.
    async fn full_page_screenshot(&self, width: u32) -> Vec<u8> {
        let tall = self
            .execute(
                "return Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0)",
                json!([]),
            )
            .await
            .as_u64()
            .unwrap_or(800)
            .clamp(1, TALLEST_SHOT);
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width, "height": tall, "scale": 1},
                }),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("a screenshot"))
            .expect("a PNG")
    }

    /// Waits two frames, so that the page has laid itself out and run its resize handlers.
    async fn settle(&self) {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            json!({
                "script": "const done = arguments[arguments.length - 1];
                    requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                "args": [],
            }),
        )
        .await;
    }

    /// A Chrome DevTools command, through chromedriver.
    async fn cdp(&self, command: &str, params: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            json!({"cmd": command, "params": params}),
        )
        .await
    }

    /// The element matching `css`, waiting for it to appear.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + FIND_WAIT;
        loop {
            match self
                .try_call(
                    reqwest::Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await
            {
                Ok(found) => return element_id(&found),
                Err(error) if Instant::now() > deadline => {
                    let url = self.url().await;
                    panic!("no element {css} on {url}: {error}");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let what = format!("{method} {path}");
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|error| panic!("WebDriver {what}: {error}"))
    }

    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if method == reqwest::Method::POST {
            request = request.json(&body);
        }
        let answer = request.send().await.map_err(|e| e.to_string())?;
        let status = answer.status();
        let body: Value = answer.json().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body["value"].clone())
        } else {
            Err(format!(
                "{}: {}",
                body["value"]["error"].as_str().unwrap_or("error"),
                body["value"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
            ))
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.closed {
            end_session(&self.session);
            kill_group(&mut self.driver);
        }
    }
}

fn element_id(found: &Value) -> String {
    found[ELEMENT]
        .as_str()
        .expect("an element reference")
        .to_string()
}

/// One axe-core violation in a few lines: the rule, its help and the elements at fault.
fn describe(violation: &Value) -> String {
    let mut text = format!(
        "{} — {} ({})",
        violation["id"].as_str().unwrap_or("?"),
        violation["help"].as_str().unwrap_or(""),
        violation["helpUrl"].as_str().unwrap_or(""),
    );
    for node in violation["nodes"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "\n    at {} {}\n      {}",
            node["target"],
            node["html"].as_str().unwrap_or(""),
            node["failureSummary"]
                .as_str()
                .unwrap_or("")
                .replace('\n', "\n      ")
        ));
    }
    text
}

async fn wait_until_ready(
    http: &reqwest::Client,
    base: &str,
    driver: &mut Child,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("chromedriver exited ({status})"));
        }
        if let Ok(answer) = http.get(format!("{base}/status")).send().await
            && let Ok(status) = answer.json::<Value>().await
            && status["value"]["ready"] == json!(true)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("chromedriver did not answer within 20 s".to_string())
}

async fn new_session(http: &reqwest::Client, base: &str) -> Result<String, String> {
    let mut options = json!({
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-crash-reporter",
            "--disable-extensions",
            "--no-first-run",
            "--window-size=1280,800",
        ],
    });
    if let Some(chromium) = which("chromium") {
        options["binary"] = json!(chromium);
    }
    let answer = http
        .post(format!("{base}/session"))
        .json(&json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": options,
                }
            }
        }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = answer.json().await.map_err(|e| e.to_string())?;
    body["value"]["sessionId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no session: {}", body["value"]["message"]))
}
