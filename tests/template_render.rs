//! `argus template render`: what each receiver of the shipped routing
//! would send, rendered by the delivery code without sending.

mod common;

use std::process::Command;

use common::argus_bin;

fn render(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(argus_bin())
        .args(["template", "render"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_shipped_receiver_renders_with_secrets_hidden() {
    let cfg = "alerting/alertmanager.yml";
    let (ok, out, err) = render(&["--config", cfg, "--receiver", "pager"]);
    assert!(ok, "{err}");
    assert!(out.contains("== slack/0 ==\nPOST <url>\n"), "{out}");
    assert!(
        out.contains("\"title\": \"[FIRING:2] ExampleAlert api\""),
        "{out}"
    );
    assert!(
        out.contains("== pagerduty/0 ==\nPOST https://events.pagerduty.com/<redacted>\n"),
        "{out}"
    );
    assert!(out.contains("\"routing_key\": \"<secret>\""), "{out}");
    assert!(out.contains("\"event_action\": \"trigger\""), "{out}");

    let (ok, out, err) = render(&["--config", cfg, "--receiver", "email-info"]);
    assert!(ok, "{err}");
    assert!(out.contains("== email/0 ==\nemail via smtp.example.org:587 from argus@example.org to team@example.org:"), "{out}");
    assert!(
        out.contains("Subject: [FIRING:2] ExampleAlert api"),
        "{out}"
    );
    assert!(out.contains("Content-Type: multipart/alternative"), "{out}");

    let (ok, out, err) = render(&["--config", cfg, "--receiver", "deadman"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"version\": \"4\""), "{out}");
    // The dead man's switch does not send resolves: the resolved sample
    // alert is left out.
    assert_eq!(out.matches("\"status\": \"resolved\"").count(), 0, "{out}");

    let (ok, _, err) = render(&["--config", cfg, "--receiver", "nobody"]);
    assert!(!ok);
    assert!(
        err.contains(
            "no receiver named \"nobody\" (receivers: pager, slack-warnings, email-info, deadman)"
        ),
        "{err}"
    );
}

#[test]
fn alerts_come_from_a_file_and_bad_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("alerts.json");
    std::fs::write(
        &f,
        r#"[{"labels":{"alertname":"DiskFull","severity":"warning","service":"db"},"annotations":{"summary":"disk 97% full"},"startsAt":"2026-01-01T00:00:00Z"}]"#,
    )
    .unwrap();
    let path = f.to_str().unwrap();
    let (ok, out, err) = render(&[
        "--config",
        "alerting/alertmanager.yml",
        "--receiver",
        "slack-warnings",
        "--alerts",
        path,
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("\"title\": \"[FIRING:1] DiskFull db\""),
        "{out}"
    );
    assert!(out.contains("disk 97% full"), "{out}");
    assert!(out.contains("Since 2026-01-01 00:00 UTC"), "{out}");
    std::fs::write(&f, r#"[{"labels":{"a":"b"},"startsAt":"yesterday"}]"#).unwrap();
    let (ok, _, err) = render(&[
        "--config",
        "alerting/alertmanager.yml",
        "--receiver",
        "pager",
        "--alerts",
        path,
    ]);
    assert!(!ok);
    assert!(
        err.contains("alerts.json: alert 0: invalid time \"yesterday\""),
        "{err}"
    );
}
