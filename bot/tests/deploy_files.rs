//! The files that deploy Polity say what they should: the container image runs `polity run`
//! unprivileged, with its database on a volume and a health check on `/healthz`; the systemd
//! unit runs it as a user of its own, hardened; LICENSE is the license Cargo.toml names. They
//! are read as text, relative to this package's directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use polity::config::DEFAULT_HTTP_LISTEN;
use std::path::PathBuf;

/// A file of the repository, by its path from the repository's root.
fn read(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

/// Whitespace made single spaces, so phrases match across line breaks.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A Dockerfile's instructions, `(KEYWORD, arguments)`, continuation lines joined and comments
/// left out.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
                out.push((keyword.to_ascii_uppercase(), words(args)));
                current.clear();
            }
        }
    }
    assert!(current.is_empty(), "a continuation line ends the file");
    out
}

#[test]
fn the_image_builds_polity_and_runs_it_unprivileged_on_a_volume_with_a_health_check() {
    let all = instructions(&read("deploy/Dockerfile"));
    let stages: Vec<usize> = all.iter().enumerate().filter(|(_, (k, _))| k == "FROM").map(|(i, _)| i).collect();
    assert!(stages.len() >= 2, "a build stage and a runtime stage: {all:?}");
    let (build, runtime) = (&all[stages[0]..stages[1]], &all[*stages.last().unwrap()..]);
    assert!(build[0].1.starts_with("rust:"), "the build stage is Rust's image: {build:?}");
    assert!(
        build.iter().any(|(k, a)| k == "RUN"
            && a.contains("cargo build")
            && a.contains("--release")
            && a.contains("--locked")
            && a.contains("-p polity")),
        "{build:?}"
    );
    let find =
        |keyword: &str| -> Vec<&String> { runtime.iter().filter(|(k, _)| k == keyword).map(|(_, a)| a).collect() };

    assert!(find("COPY").iter().any(|a| a.starts_with("--from=") && a.contains("polity")), "{runtime:?}");
    let user = find("USER");
    let user = user.last().expect("the runtime stage names a USER");
    let name = user.split(':').next().unwrap();
    assert!(!["root", "0"].contains(&name), "the image runs as root: USER {user}");

    let healthcheck = find("HEALTHCHECK");
    let healthcheck = healthcheck.last().expect("a HEALTHCHECK");
    assert!(healthcheck.contains("CMD") && healthcheck.contains("/healthz"), "HEALTHCHECK {healthcheck}");

    let volumes = find("VOLUME");
    assert!(volumes.iter().any(|v| v.contains("/data")), "a VOLUME for /data: {volumes:?}");
    let env = find("ENV").iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" ");
    assert!(env.contains("DATABASE_URL=\"sqlite:///data/"), "the database on the volume: ENV {env}");
    let port = DEFAULT_HTTP_LISTEN.port();
    assert!(env.contains(&format!("POLITY_HTTP_LISTEN=\"0.0.0.0:{port}\"")), "every interface: ENV {env}");
    assert!(healthcheck.contains("POLITY_HTTP_LISTEN"), "the check follows the port: {healthcheck}");
    let exposed = find("EXPOSE");
    assert!(exposed.iter().any(|e| e.split_whitespace().any(|p| p == port.to_string())), "EXPOSE {exposed:?}");

    assert!(find("ENTRYPOINT").last().is_some_and(|e| e.contains("polity")), "{runtime:?}");
    assert!(find("CMD").last().is_some_and(|c| c.contains("\"run\"")), "{runtime:?}");
}

#[test]
fn the_build_context_leaves_out_target_and_secrets() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert!(patterns.iter().any(|p| p.trim_end_matches('/') == "target"), "{patterns:?}");
    assert!(patterns.contains(&"**/polity.toml"), "polity.toml holds the secret key: {patterns:?}");
}

/// A unit file's `(section, key, value)`s, in order.
fn unit(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not a setting: {line}"));
        out.push((section.clone(), key.trim().to_string(), value.trim().to_string()));
    }
    out
}

#[test]
fn the_service_runs_polity_as_its_own_user_hardened() {
    let settings = unit(&read("deploy/polity.service"));
    let all = |section: &str, key: &str| -> Vec<&str> {
        settings.iter().filter(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v.as_str()).collect()
    };
    let one = |section: &str, key: &str| -> &str {
        all(section, key).last().copied().unwrap_or_else(|| panic!("[{section}] has no {key}="))
    };
    let yes = |value: &str| ["yes", "true", "on", "1"].contains(&value);

    let user = one("Service", "User");
    assert!(!["root", "0"].contains(&user), "User={user}");
    let exec = one("Service", "ExecStart");
    assert!(exec.split_whitespace().next().unwrap().ends_with("/polity") && exec.ends_with(" run"), "{exec}");
    assert_eq!(one("Service", "Restart"), "on-failure");
    assert!(yes(one("Service", "NoNewPrivileges")));
    assert_eq!(one("Service", "ProtectSystem"), "strict");
    assert!(!one("Service", "EnvironmentFile").is_empty());

    let state = format!("/var/lib/{}", one("Service", "StateDirectory"));
    assert_eq!(one("Service", "WorkingDirectory"), state, "Polity runs in its state directory");
    let writable: Vec<&str> = all("Service", "ReadWritePaths").iter().flat_map(|v| v.split_whitespace()).collect();
    assert!(writable.contains(&state.as_str()), "ReadWritePaths={writable:?}");

    assert!(one("Unit", "After").contains("network-online.target"));
    assert_eq!(one("Install", "WantedBy"), "multi-user.target");
}

/// Phrases that the text of the license `id` (an SPDX identifier) holds.
fn phrases(id: &str) -> Vec<&'static str> {
    const AGPL3: [&str; 2] = ["GNU AFFERO GENERAL PUBLIC LICENSE", "Version 3, 19 November 2007"];
    const GPL3: [&str; 2] = ["GNU GENERAL PUBLIC LICENSE", "Version 3, 29 June 2007"];
    const LATER: &str = "either version 3 of the License, or (at your option) any later version";
    match id {
        "AGPL-3.0-or-later" => [&AGPL3[..], &[LATER, "GNU Affero General Public License as published by"]].concat(),
        "AGPL-3.0-only" => AGPL3.to_vec(),
        "GPL-3.0-or-later" => [&GPL3[..], &[LATER]].concat(),
        "GPL-3.0-only" => GPL3.to_vec(),
        "MIT" => vec!["Permission is hereby granted, free of charge", "THE SOFTWARE IS PROVIDED \"AS IS\""],
        "Apache-2.0" => vec!["Apache License", "Version 2.0, January 2004"],
        other => panic!("LICENSE is not checked for {other}: add its phrases here"),
    }
}

#[test]
fn the_license_is_the_one_cargo_toml_names() {
    let manifest = read("Cargo.toml");
    let mut section = "";
    let mut license = None;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[workspace.package]"
            && let Some(value) = line.strip_prefix("license").map(str::trim_start).and_then(|l| l.strip_prefix('='))
        {
            license = Some(value.trim().trim_matches('"').to_string());
        }
    }
    let license = license.expect("[workspace.package] names a license");
    assert!(read("bot/Cargo.toml").contains("license.workspace = true"), "polity takes the workspace's license");

    let text = words(&read("LICENSE"));
    assert!(text.contains("Copyright (C)") && text.contains("The Polity developers"), "the copyright holder");
    for id in license.split(" OR ").flat_map(|part| part.split(" AND ")) {
        let id = id.trim_matches(|c: char| c == '(' || c == ')' || c.is_whitespace());
        for phrase in phrases(id) {
            assert!(text.contains(phrase), "LICENSE is not {id}'s text: it lacks \"{phrase}\"");
        }
    }
}

/// `systemd-analyze verify` accepts the unit, where the machine has it (with `ExecStart`
/// pointed at a binary that exists here, since Polity is not installed).
#[test]
fn systemd_verifies_the_unit_where_it_can() {
    let Ok(version) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed here");
        return;
    };
    assert!(version.status.success());
    let unit = read("deploy/polity.service");
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    let unit = unit.replace(exec, "ExecStart=/bin/true");
    let dir = std::env::temp_dir().join(format!("polity_unit_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("polity.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    // Only what the unit says counts: this machine may lack a running systemd.
    let about_unit: Vec<&str> = said.lines().filter(|l| l.contains("polity.service")).collect();
    assert!(about_unit.is_empty(), "{said}");
}
