//! The development stack publishes nothing to other hosts: its default secret and the
//! simulator (which has no authentication) are reachable from this host only.

fn compose() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docker-compose.yml"
    ))
    .expect("docker-compose.yml")
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
}
