//! The deployment files, checked against the code they deploy: `docker-compose.yml`,
//! `deploy/prometheus.yml` and the Kubernetes manifests in `deploy/k8s` parse, name images and
//! settings that exist (every `NMP_*` variable is one `Settings` reads, and the values load),
//! and wire the components the way nmp expects (component names `nmp serve` knows, every
//! component deployed, probes on `/healthz` and `/readyz`, Prometheus scraping every nmp
//! service). The development stack publishes nothing to other hosts: its default secret and
//! the simulator (which has no authentication) are reachable from this host only.
//!
//! No YAML crate is in the workspace, so [`yaml`] reads the block-style subset these files use
//! (mappings, sequences, flow sequences, quoted scalars, anchors, aliases and merge keys) and
//! refuses anything else, so a file that drifts outside it fails here rather than being
//! misread.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use yaml::Yaml;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(path: &str) -> Yaml {
    let mut documents = yaml::parse(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(documents.len(), 1, "{path}: one document");
    documents.remove(0)
}

fn compose() -> String {
    read("docker-compose.yml")
}

/// The `NMP_*` variables `Settings` reads: the string literals of `settings.rs` outside its
/// tests.
fn settings_variables() -> BTreeSet<String> {
    let source = read("services/nmp/src/settings.rs");
    let code = source.split("#[cfg(test)]").next().unwrap();
    let mut names = BTreeSet::new();
    for piece in code.split('"').skip(1).step_by(2) {
        if piece.starts_with("NMP_")
            && piece.len() > 4
            && piece
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            names.insert(piece.to_string());
        }
    }
    for expected in ["NMP_DATABASE_URL", "NMP_NATS_URL", "NMP_SHUTDOWN_SECS"] {
        assert!(names.contains(expected), "settings.rs was read: {names:?}");
    }
    names
}

/// `${NAME:-default}` as Compose fills it in with NAME unset.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${...}") + start;
        let inner = &rest[start + 2..end];
        let default = inner.split_once(":-").map(|(_, d)| d).unwrap_or("");
        out.push_str(default);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Loads `Settings` from exactly these variables, as `nmp serve` would, and checks the token
/// keys it would accept on its address.
fn load_settings(what: &str, env: &BTreeMap<String, String>) -> nmp::Settings {
    let settings = nmp::Settings::load_from(None, |name| env.get(name).cloned())
        .unwrap_or_else(|e| panic!("{what}: nmp refuses its settings: {e:#}"));
    let keys = settings
        .jwt
        .key_source(&settings.http_addr, &settings.nats.url)
        .unwrap_or_else(|e| panic!("{what}: nmp refuses its token keys: {e:#}"));
    assert_ne!(keys, nmp::KeySource::Development, "{what}");
    settings
}

fn assert_known_variables(what: &str, names: impl IntoIterator<Item = String>) {
    let known = settings_variables();
    for name in names {
        if name.starts_with("NMP_") {
            assert!(
                known.contains(&name),
                "{what} sets {name}, which nmp does not read (it reads {known:?})"
            );
        }
    }
}

/// The components of `serve --components a,b`, each one `nmp serve` knows.
fn components_of(what: &str, args: &[String]) -> Vec<String> {
    assert_eq!(args.first().map(String::as_str), Some("serve"), "{what}");
    let at = args
        .iter()
        .position(|a| a == "--components")
        .unwrap_or_else(|| panic!("{what} names its components: {args:?}"));
    let names: Vec<String> = args[at + 1].split(',').map(str::to_string).collect();
    for name in &names {
        assert!(
            nmp::COMPONENTS.contains(&name.as_str()),
            "{what} runs '{name}', which nmp serve does not know ({:?})",
            nmp::COMPONENTS
        );
    }
    nmp::Components::parse(&names).unwrap_or_else(|e| panic!("{what}: {e}"));
    names
}

fn strings(value: &Yaml) -> Vec<String> {
    value.seq().iter().map(|v| v.str().to_string()).collect()
}

#[test]
fn every_published_port_of_the_compose_file_is_on_loopback() {
    let text = compose();
    let mut published = 0;
    let mut in_ports = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        if trimmed == "ports:" {
            in_ports = true;
            continue;
        }
        if in_ports {
            match trimmed.strip_prefix("- ") {
                Some(entry) => {
                    let entry = entry.trim_matches('"');
                    assert!(
                        entry.starts_with("127.0.0.1:"),
                        "a port published to every interface: {line}"
                    );
                    published += 1;
                }
                None => in_ports = false,
            }
        }
    }
    assert!(published >= 4, "the ports were read: {published}");
    // The simulator listens on the containers' network, so it must be told it is public.
    assert!(text.contains(r#"command: ["sim", "--public"]"#));
    // The same, read as YAML.
    let file = parse("docker-compose.yml");
    for (name, service) in file.get("services").map_entries() {
        for port in service.find("ports").map(strings).unwrap_or_default() {
            assert!(port.starts_with("127.0.0.1:"), "{name} publishes {port}");
        }
    }
}

#[test]
fn the_compose_file_runs_every_component_as_its_own_service_from_one_image() {
    let file = parse("docker-compose.yml");
    let services = file.get("services");
    let names: BTreeSet<&str> = services.map_entries().map(|(n, _)| n).collect();
    for needed in ["postgres", "nats", "jaeger", "prometheus", "simulator"] {
        assert!(names.contains(needed), "compose has {needed}: {names:?}");
    }
    assert!(
        strings(services.get("nats").get("command")).contains(&"-js".to_string()),
        "NATS runs JetStream"
    );
    assert_eq!(
        services
            .get("jaeger")
            .get("environment")
            .get("COLLECTOR_OTLP_ENABLED")
            .str(),
        "true"
    );

    let mut deployed = BTreeSet::new();
    let mut nmp_services = BTreeSet::new();
    for (name, service) in services.map_entries() {
        let image = service.get("image").str();
        assert!(
            image.contains(':') && !image.ends_with(":latest"),
            "{name}: the image {image} has a pinned tag"
        );
        if image != "nmp:dev" {
            assert!(service.find("build").is_none(), "{name}");
            continue;
        }
        // The nmp image: built from the repository's Dockerfile.
        let build = service.get("build");
        assert_eq!(build.get("context").str(), ".");
        let dockerfile = build.get("dockerfile").str();
        let recipe = read(dockerfile);
        assert!(
            recipe.contains(r#"ENTRYPOINT ["nmp"]"#) && recipe.contains("EXPOSE 8080"),
            "{name}: {dockerfile} runs nmp on 8080"
        );
        let command = strings(service.get("command"));
        if command.first().map(String::as_str) == Some("sim") {
            continue;
        }
        nmp_services.insert(name.to_string());
        for component in components_of(name, &command) {
            assert!(
                deployed.insert(component.clone()),
                "{component} runs in two services"
            );
        }

        let environment: BTreeMap<String, String> = service
            .get("environment")
            .map_entries()
            .map(|(k, v)| (k.to_string(), interpolate(v.str())))
            .collect();
        assert_known_variables(name, environment.keys().cloned());
        let settings = load_settings(name, &environment);
        assert_eq!(settings.http_addr.port(), 8080, "{name}");
        // Where the settings point: the services of this file.
        let host_of = |url: &str| {
            let rest = url.split_once("://").unwrap().1;
            let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            rest.split([':', '/']).next().unwrap().to_string()
        };
        assert_eq!(host_of(&settings.database_url), "postgres", "{name}");
        assert_eq!(host_of(&settings.nats.url), "nats", "{name}");
        let backend = settings.backend_url.as_deref().expect("a backend URL");
        assert_eq!(host_of(backend), "simulator", "{name}");
        let otlp = &environment["OTEL_EXPORTER_OTLP_ENDPOINT"];
        assert_eq!(otlp, "http://jaeger:4317", "{name}: traces go to Jaeger");
        assert_eq!(environment["OTEL_SERVICE_NAME"], name);

        let depends = service.get("depends_on");
        for needed in ["postgres", "nats"] {
            assert_eq!(
                depends.get(needed).get("condition").str(),
                "service_healthy",
                "{name} waits for {needed}"
            );
        }
        // The image has no HTTP client: bash asks /readyz on the port nmp listens on.
        let test = strings(service.get("healthcheck").get("test"));
        assert_eq!(test[..3], ["CMD", "bash", "-c"], "{name}");
        assert!(
            test[3].contains("/dev/tcp/127.0.0.1/8080") && test[3].contains("GET /readyz "),
            "{name}: {test:?}"
        );
    }
    let all: BTreeSet<String> = nmp::COMPONENTS.iter().map(|c| c.to_string()).collect();
    assert_eq!(deployed, all, "every component runs in one service");
    assert!(nmp_services.len() >= 5, "{nmp_services:?}");

    // Prometheus scrapes /metrics of exactly the nmp services, on the port they listen on.
    let prometheus = services.get("prometheus");
    assert!(
        strings(prometheus.get("volumes"))
            .contains(&"./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro".to_string())
    );
    let config = parse("deploy/prometheus.yml");
    let mut targets = BTreeSet::new();
    for job in config.get("scrape_configs").seq() {
        assert_eq!(job.get("metrics_path").str(), "/metrics");
        for group in job.get("static_configs").seq() {
            targets.extend(strings(group.get("targets")));
        }
    }
    let expected: BTreeSet<String> = nmp_services.iter().map(|s| format!("{s}:8080")).collect();
    assert_eq!(targets, expected, "Prometheus scrapes every nmp service");
}

#[test]
fn the_kubernetes_manifests_deploy_every_component_with_probes_and_budgets() {
    let kustomization = parse("deploy/k8s/kustomization.yaml");
    let image = kustomization.get("images").seq()[0].get("name").str();
    let mut by_kind: BTreeMap<String, Vec<Yaml>> = BTreeMap::new();
    for resource in strings(kustomization.get("resources")) {
        let document = parse(&format!("deploy/k8s/{resource}"));
        assert!(!document.get("apiVersion").str().is_empty(), "{resource}");
        let kind = document.get("kind").str().to_string();
        by_kind.entry(kind).or_default().push(document);
    }
    let config = &by_kind["ConfigMap"][0];
    let secret = &by_kind["Secret"][0];
    let mut environment: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in config
        .get("data")
        .map_entries()
        .chain(secret.get("stringData").map_entries())
    {
        environment.insert(key.to_string(), value.str().to_string());
    }
    assert_known_variables("the ConfigMap and Secret", environment.keys().cloned());
    let settings = load_settings("the ConfigMap and Secret", &environment);
    let http_port = settings.http_addr.port();

    let pod_labels = |deployment: &Yaml| -> BTreeMap<String, String> {
        deployment
            .get("spec")
            .get("template")
            .get("metadata")
            .get("labels")
            .map_entries()
            .map(|(k, v)| (k.to_string(), v.str().to_string()))
            .collect()
    };
    let selects = |selector: &Yaml, labels: &BTreeMap<String, String>| {
        selector
            .get("matchLabels")
            .map_entries()
            .all(|(k, v)| labels.get(k).map(String::as_str) == Some(v.str()))
    };
    let budgets = by_kind
        .get("PodDisruptionBudget")
        .cloned()
        .unwrap_or_default();

    let mut deployed = BTreeSet::new();
    let mut budget_spent = 0;
    for deployment in &by_kind["Deployment"] {
        let name = deployment.get("metadata").get("name").str();
        let spec = deployment.get("spec");
        let labels = pod_labels(deployment);
        assert!(selects(spec.get("selector"), &labels), "{name}");
        let pod = spec.get("template").get("spec");
        let container = &pod.get("containers").seq()[0];
        assert_eq!(container.get("image").str(), image, "{name}");
        deployed.extend(components_of(name, &strings(container.get("args"))));

        for source in container.get("envFrom").seq() {
            if let Some(reference) = source.find("configMapRef") {
                assert_eq!(
                    reference.get("name").str(),
                    config.get("metadata").get("name").str()
                );
            }
            if let Some(reference) = source.find("secretRef") {
                assert_eq!(
                    reference.get("name").str(),
                    secret.get("metadata").get("name").str()
                );
            }
        }
        let mut own = environment.clone();
        for variable in container.find("env").map(Yaml::seq).unwrap_or_default() {
            let key = variable.get("name").str().to_string();
            if let Some(value) = variable.find("value") {
                own.insert(key.clone(), value.str().to_string());
            }
            assert_known_variables(name, [key]);
        }
        let settings = load_settings(name, &own);
        let replicas: u64 = spec.get("replicas").str().parse().unwrap();
        if settings.backend_url.is_some() && (settings.saga.calls_per_minute > 0) {
            let args = strings(container.get("args"));
            if args[2].split(',').any(|c| c == "saga" || c == "sync") {
                budget_spent += replicas * u64::from(settings.saga.calls_per_minute);
            }
        }

        // Probes: alive on /healthz (which touches nothing), ready on /readyz.
        let port_name = container.get("ports").seq()[0].get("name").str();
        assert_eq!(
            container.get("ports").seq()[0].get("containerPort").str(),
            http_port.to_string(),
            "{name} exposes NMP_HTTP_ADDR's port"
        );
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            let get = container.get(probe).get("httpGet");
            assert_eq!(get.get("path").str(), path, "{name} {probe}");
            assert_eq!(get.get("port").str(), port_name, "{name} {probe}");
        }
        let requests = container.get("resources").get("requests");
        assert!(!requests.get("cpu").str().is_empty(), "{name}");
        assert!(!requests.get("memory").str().is_empty(), "{name}");
        assert!(
            container
                .get("resources")
                .get("limits")
                .find("memory")
                .is_some(),
            "{name}"
        );

        // Kubernetes waits long enough for nmp's own graceful stop (and the preStop pause).
        let grace: u64 = pod
            .get("terminationGracePeriodSeconds")
            .str()
            .parse()
            .unwrap();
        let pause: u64 = container
            .find("lifecycle")
            .map(|l| {
                strings(l.get("preStop").get("exec").get("command"))[1]
                    .parse()
                    .unwrap()
            })
            .unwrap_or(0);
        assert!(
            grace > settings.shutdown_secs + pause,
            "{name}: {grace} s of grace for NMP_SHUTDOWN_SECS {} + {pause}",
            settings.shutdown_secs
        );

        // A disruption budget covers every deployment that runs more than one pod.
        let replicas: u32 = spec.get("replicas").str().parse().unwrap();
        let budget = budgets
            .iter()
            .find(|b| selects(b.get("spec").get("selector"), &labels));
        assert!(
            budget.is_some() || replicas < 2,
            "{name} has a PodDisruptionBudget"
        );
    }
    let all: BTreeSet<String> = nmp::COMPONENTS.iter().map(|c| c.to_string()).collect();
    assert_eq!(deployed, all, "every component is deployed");
    // The saga's pods share the backend's limit: together they keep to the default budget.
    assert!(
        budget_spent <= u64::from(nmp::Settings::default().saga.calls_per_minute),
        "the saga's pods together may call the backend {budget_spent} times a minute"
    );

    // The Service sends traffic to the pods serving the API and portal, on their named port.
    for service in &by_kind["Service"] {
        let selector: BTreeMap<String, String> = service
            .get("spec")
            .get("selector")
            .map_entries()
            .map(|(k, v)| (k.to_string(), v.str().to_string()))
            .collect();
        let target = by_kind["Deployment"]
            .iter()
            .find(|d| {
                let labels = pod_labels(d);
                selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .expect("the Service selects a Deployment");
        let container = &target
            .get("spec")
            .get("template")
            .get("spec")
            .get("containers")
            .seq()[0];
        let args = strings(container.get("args"));
        assert!(args[2].split(',').any(|c| c == "api"), "{args:?}");
        for port in service.get("spec").get("ports").seq() {
            assert_eq!(
                port.get("targetPort").str(),
                container.get("ports").seq()[0].get("name").str()
            );
        }
    }
}

/// Words of `text` that start with `prefix` and go on with `allowed` characters.
fn words_with(text: &str, prefix: &str, allowed: fn(char) -> bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| allowed(c) || c == '_')
        {
            continue;
        }
        let word: String = text[at..].chars().take_while(|c| allowed(*c)).collect();
        found.insert(word.trim_end_matches('_').to_string());
    }
    found
}

#[test]
fn the_runbook_and_deployment_notes_name_settings_metrics_and_commands_that_exist() {
    let known = settings_variables();
    let metrics = read("services/metrics/src/lib.rs");
    let cli = read("services/nmp/src/main.rs");
    for path in ["docs/operations.md", "deploy/README.md"] {
        let text = read(path);
        let upper = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
        for name in words_with(&text, "NMP_", upper) {
            // Not settings: compose's password variable and the stream's name.
            if ["NMP_DEV_POSTGRES_PASSWORD", "NMP_EVENTS"].contains(&name.as_str()) {
                continue;
            }
            assert!(
                known.contains(&name),
                "{path} names {name}, which nmp does not read"
            );
        }
        let lower = |c: char| c.is_ascii_lowercase() || c == '_';
        for name in words_with(&text, "nmp_", lower) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            // Functions and tables of the schema are not metrics.
            if base.starts_with("nmp_account_lock") || base == "nmp_append_batch" {
                continue;
            }
            assert!(
                metrics.contains(&format!("\"{base}\"")),
                "{path} names the metric {name}, which nmp does not record"
            );
        }
    }
    // The subcommands the runbook tells operators to run.
    let runbook = read("docs/operations.md");
    for (command, variant) in [
        ("nmp projections rebuild", "Rebuild {"),
        ("nmp audit verify", "Audit {"),
        ("nmp audit export", "Audit {"),
        ("nmp token", "Token {"),
        ("serve --components", "Serve {"),
    ] {
        assert!(runbook.contains(command), "{command}");
        assert!(cli.contains(variant), "nmp has {command}");
    }
    let audit = read("services/nmp/src/audit.rs");
    assert!(audit.contains("    Verify,") && audit.contains("    Export {"));
}

#[test]
fn the_yaml_reader_refuses_what_it_does_not_read() {
    assert!(yaml::parse("a: 1\n\tb: 2\n").is_err(), "tabs");
    assert!(yaml::parse("a: |\n  text\n").is_err(), "block scalars");
    assert!(yaml::parse("a: *missing\n").is_err(), "unknown alias");
    assert!(yaml::parse("a: 1\na: 2\n").is_err(), "duplicate key");
    assert!(yaml::parse("a:\n  - 1\n  b: 2\n").is_err(), "mixed block");
    let parsed = yaml::parse("x: &x\n  k: 'it''s'\ny:\n  <<: *x\n  l: [\"a, b\", c] # note\n")
        .unwrap()
        .remove(0);
    assert_eq!(parsed.get("y").get("k").str(), "it's");
    assert_eq!(strings(parsed.get("y").get("l")), ["a, b", "c"]);
}

/// A reader for the block-style YAML subset of the deployment files.
mod yaml {
    use std::collections::HashMap;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Yaml {
        Map(Vec<(String, Yaml)>),
        Seq(Vec<Yaml>),
        Str(String),
        Null,
    }

    impl Yaml {
        pub fn find(&self, key: &str) -> Option<&Yaml> {
            match self {
                Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        pub fn get(&self, key: &str) -> &Yaml {
            self.find(key)
                .unwrap_or_else(|| panic!("no '{key}' in {self:?}"))
        }

        pub fn map_entries(&self) -> impl Iterator<Item = (&str, &Yaml)> {
            match self {
                Yaml::Map(entries) => entries.iter().map(|(k, v)| (k.as_str(), v)),
                other => panic!("not a mapping: {other:?}"),
            }
        }

        pub fn seq(&self) -> &[Yaml] {
            match self {
                Yaml::Seq(items) => items,
                other => panic!("not a sequence: {other:?}"),
            }
        }

        pub fn str(&self) -> &str {
            match self {
                Yaml::Str(s) => s,
                other => panic!("not a scalar: {other:?}"),
            }
        }
    }

    struct Line {
        number: usize,
        indent: usize,
        text: String,
    }

    struct Parser {
        lines: Vec<Line>,
        at: usize,
        anchors: HashMap<String, Yaml>,
    }

    type Result<T> = std::result::Result<T, String>;

    /// Every document of `text`.
    pub fn parse(text: &str) -> Result<Vec<Yaml>> {
        let mut documents = vec![Vec::new()];
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            if raw.trim_end() == "---" {
                documents.push(Vec::new());
                continue;
            }
            let content = strip_comment(raw);
            if content.trim().is_empty() {
                continue;
            }
            let indent = content.len() - content.trim_start_matches(' ').len();
            if content[indent..].starts_with('\t') {
                return Err(format!("line {number}: a tab in the indentation"));
            }
            documents.last_mut().unwrap().push(Line {
                number,
                indent,
                text: content[indent..].trim_end().to_string(),
            });
        }
        let mut out = Vec::new();
        for lines in documents.into_iter().filter(|d| !d.is_empty()) {
            let mut parser = Parser {
                lines,
                at: 0,
                anchors: HashMap::new(),
            };
            let indent = parser.lines[0].indent;
            let value = parser.block(indent)?;
            if let Some(line) = parser.lines.get(parser.at) {
                return Err(format!("line {}: unexpected indentation", line.number));
            }
            out.push(value);
        }
        Ok(out)
    }

    /// The line without its comment: a `#` after a space (or at the start), outside quotes.
    fn strip_comment(line: &str) -> &str {
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        for (i, c) in line.char_indices() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if (c == '"' || c == '\'') && " [,:-".contains(previous) => quote = Some(c),
                None if c == '#' && previous.is_whitespace() => return &line[..i],
                None => {}
            }
            previous = c;
        }
        line
    }

    /// Where `key: value` splits: the first `: ` (or a final `:`) outside quotes.
    fn split_key(text: &str) -> Option<(&str, &str)> {
        if text.starts_with(['"', '\'', '[', '{']) {
            return None;
        }
        let bytes = text.as_bytes();
        for i in 0..bytes.len() {
            if bytes[i] == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ') {
                return Some((text[..i].trim(), text[i + 1..].trim()));
            }
        }
        None
    }

    impl Parser {
        fn error<T>(&self, message: &str) -> Result<T> {
            let number = self.lines.get(self.at).map_or(0, |l| l.number);
            Err(format!("line {number}: {message}"))
        }

        /// The block starting at the current line, indented `indent`.
        fn block(&mut self, indent: usize) -> Result<Yaml> {
            let first = &self.lines[self.at];
            if first.text == "-" || first.text.starts_with("- ") {
                self.sequence(indent)
            } else {
                self.mapping(indent)
            }
        }

        fn sequence(&mut self, indent: usize) -> Result<Yaml> {
            let mut items = Vec::new();
            while let Some(line) = self.lines.get(self.at) {
                if line.indent < indent {
                    break;
                }
                if line.indent > indent {
                    return self.error("unexpected indentation");
                }
                if !(line.text == "-" || line.text.starts_with("- ")) {
                    return self.error("a mapping key among sequence items");
                }
                let rest = line.text[1..].trim_start().to_string();
                if rest.is_empty() {
                    self.at += 1;
                    items.push(self.nested(indent)?);
                } else if split_key(&rest).is_some() {
                    // `- key: value`: a mapping whose keys line up after the dash.
                    let offset = line.text.len() - rest.len();
                    self.lines[self.at].indent = indent + offset;
                    self.lines[self.at].text = rest;
                    items.push(self.mapping(indent + offset)?);
                } else {
                    self.at += 1;
                    items.push(self.value(&rest)?);
                }
            }
            Ok(Yaml::Seq(items))
        }

        fn mapping(&mut self, indent: usize) -> Result<Yaml> {
            let mut entries: Vec<(String, Yaml)> = Vec::new();
            let mut merged: Vec<(String, Yaml)> = Vec::new();
            while let Some(line) = self.lines.get(self.at) {
                if line.indent < indent {
                    break;
                }
                if line.indent > indent {
                    return self.error("unexpected indentation");
                }
                let Some((key, rest)) = split_key(&line.text) else {
                    return self.error("expected `key: value`");
                };
                let (key, rest) = (key.to_string(), rest.to_string());
                if rest.starts_with('|') || rest.starts_with('>') {
                    return self.error("block scalars are not read");
                }
                self.at += 1;
                let (anchor, rest) = match rest.strip_prefix('&') {
                    Some(named) => {
                        let (name, rest) = named.split_once(' ').unwrap_or((named, ""));
                        (Some(name.to_string()), rest.trim().to_string())
                    }
                    None => (None, rest),
                };
                let value = if rest.is_empty() {
                    self.nested(indent)?
                } else {
                    self.value(&rest)?
                };
                if let Some(anchor) = anchor {
                    self.anchors.insert(anchor, value.clone());
                }
                if key == "<<" {
                    match value {
                        Yaml::Map(more) => merged.extend(more),
                        _ => return self.error("`<<` merges a mapping"),
                    }
                    continue;
                }
                if entries.iter().any(|(k, _)| *k == key) {
                    return self.error(&format!("duplicate key '{key}'"));
                }
                entries.push((key, value));
            }
            for (key, value) in merged {
                if !entries.iter().any(|(k, _)| *k == key) {
                    entries.push((key, value));
                }
            }
            Ok(Yaml::Map(entries))
        }

        /// The block under a key or dash at `indent`: deeper lines, or a sequence at the
        /// same indentation under a key; nothing is null.
        fn nested(&mut self, indent: usize) -> Result<Yaml> {
            match self.lines.get(self.at) {
                Some(line) if line.indent > indent => {
                    let indent = line.indent;
                    self.block(indent)
                }
                Some(line)
                    if line.indent == indent
                        && (line.text == "-" || line.text.starts_with("- ")) =>
                {
                    self.sequence(indent)
                }
                _ => Ok(Yaml::Null),
            }
        }

        /// An inline value: alias, flow sequence, empty flow mapping or scalar.
        fn value(&self, text: &str) -> Result<Yaml> {
            if let Some(name) = text.strip_prefix('*') {
                return match self.anchors.get(name) {
                    Some(value) => Ok(value.clone()),
                    None => self.error(&format!("unknown alias *{name}")),
                };
            }
            if let Some(inner) = text.strip_prefix('[') {
                let Some(inner) = inner.strip_suffix(']') else {
                    return self.error("an unclosed flow sequence");
                };
                let mut items = Vec::new();
                let mut quote: Option<char> = None;
                let mut start = 0;
                for (i, c) in inner.char_indices() {
                    match quote {
                        Some(q) if c == q => quote = None,
                        Some(_) => {}
                        None if c == '"' || c == '\'' => quote = Some(c),
                        None if c == ',' => {
                            items.push(self.scalar(inner[start..i].trim())?);
                            start = i + 1;
                        }
                        None => {}
                    }
                }
                if !inner[start..].trim().is_empty() {
                    items.push(self.scalar(inner[start..].trim())?);
                }
                return Ok(Yaml::Seq(items));
            }
            if text == "{}" {
                return Ok(Yaml::Map(Vec::new()));
            }
            if text.starts_with('{') {
                return self.error("flow mappings are not read");
            }
            self.scalar(text)
        }

        fn scalar(&self, text: &str) -> Result<Yaml> {
            if let Some(inner) = text.strip_prefix('\'') {
                let Some(inner) = inner.strip_suffix('\'') else {
                    return self.error("an unclosed single-quoted scalar");
                };
                return Ok(Yaml::Str(inner.replace("''", "'")));
            }
            if let Some(inner) = text.strip_prefix('"') {
                let Some(inner) = inner.strip_suffix('"') else {
                    return self.error("an unclosed double-quoted scalar");
                };
                let mut out = String::new();
                let mut chars = inner.chars();
                while let Some(c) = chars.next() {
                    if c != '\\' {
                        out.push(c);
                        continue;
                    }
                    match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('r') => out.push('\r'),
                        Some('t') => out.push('\t'),
                        Some(c @ ('"' | '\\' | '/')) => out.push(c),
                        other => return self.error(&format!("escape \\{other:?}")),
                    }
                }
                return Ok(Yaml::Str(out));
            }
            if text.starts_with(['&', '*', '!', '|', '>', '%', '@', '`']) {
                return self.error(&format!("'{text}' is not read"));
            }
            Ok(Yaml::Str(text.to_string()))
        }
    }
}
