//! The CLI: check config, --version, reload (HTTP and SIGHUP), file_sd,
//! graceful shutdown.

mod common;

use std::process::Command;

use common::*;

fn check(yaml: &str) -> (i32, String, String) {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("p.yml");
    std::fs::write(&f, yaml).unwrap();
    let o = Command::new(argus_bin())
        .args(["check", "config"])
        .arg(&f)
        .output()
        .unwrap();
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).replace(&f.display().to_string(), "FILE"),
        String::from_utf8_lossy(&o.stderr).replace(&f.display().to_string(), "FILE"),
    )
}

#[test]
fn check_config_reports_file_line_col_and_key_path() {
    let (code, out, _) =
        check("scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['h:1']}]\n");
    assert_eq!(code, 0);
    assert!(out.contains("SUCCESS"));
    let (code, _, err) = check(
        "scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: c\n    relabel_configs:\n      - action: replacee\n",
    );
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "FILE:6:9: scrape_configs[2].relabel_configs[0].action: unknown relabel action \"replacee\" (one of replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase)"
    );
    let (code, _, err) =
        check("scrape_configs:\n  - job_name: a\n    scrape_interval: 10s\n    sample_limt: 5\n");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("FILE:4:5: scrape_configs[0].sample_limt: field \"sample_limt\" is not allowed here (did you mean \"sample_limit\"?)"),
        "{err}"
    );
    let (code, _, err) = check("remote_write: []\n");
    assert_eq!(code, 1);
    assert!(
        err.contains("\"remote_write\" is a Prometheus setting that argus does not support"),
        "{err}"
    );
    // alerting is read; the parts argus lacks are refused where they are.
    let (code, _, err) = check(
        "alerting:\n  alertmanagers:\n    - static_configs: [{targets: ['am:9093']}]\n      oauth2: {client_id: x}\n",
    );
    assert_eq!(code, 1);
    assert!(
        err.starts_with("FILE:4:7: ")
            && err.contains("\"oauth2\" is a Prometheus setting that argus does not support"),
        "{err}"
    );
    let (code, _, err) = check(
        "alerting:\n  alertmanagers:\n    - static_configs: [{targets: ['am:9093']}]\n      api_version: v1\n",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("alerting.alertmanagers[0].api_version: unsupported Alertmanager API version"),
        "{err}"
    );
    let o = Command::new(argus_bin())
        .args(["check", "config", "/nonexistent.yml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent.yml: cannot read"));
}

#[test]
fn version_has_commit_and_date() {
    let o = Command::new(argus_bin()).arg("--version").output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        s.starts_with(&format!("argus {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{s}"
    );
    assert!(s.contains(", built 20"), "{s}");
}

fn job(name: &str, addr: &str) -> String {
    format!("  - job_name: {name}\n    static_configs: [{{targets: ['{addr}']}}]\n")
}

/// A restarted loop starts with an empty scrape cache, so its first scrape
/// reports every series as added for a whole interval (1 s here); polling
/// faster than that for a few intervals after a reload catches it.
fn assert_loop_kept(a: &Argus, instance: &str) {
    let end = std::time::Instant::now() + std::time::Duration::from_millis(2500);
    while std::time::Instant::now() < end {
        let f = a.federate(&format!("scrape_series_added{{instance=\"{instance}\"}}"));
        assert_eq!(f[0].1, 0.0, "the loop of {instance} restarted on reload");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

const HEAD: &str = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n";

#[test]
fn reload_good_and_bad_keeps_unchanged_loops() {
    let t1 = Target::text("one 1\n");
    let t2 = Target::text("two 2\n");
    let mut a = Argus::start(&format!("{HEAD}{}", job("one", &t1.addr())), &[]);
    wait_for(10, "first scrape", || {
        (a.federate("one").len() == 1).then_some(())
    });
    // Wait until job one's loop is past its first scrape (series_added 0).
    wait_for(10, "steady state", || {
        let f = a.federate("scrape_series_added{job=\"one\"}");
        (f.first()?.1 == 0.0).then_some(())
    });

    // Good reload via HTTP adds a job; job one keeps its loop.
    std::fs::write(
        &a.config,
        format!("{HEAD}{}{}", job("one", &t1.addr()), job("two", &t2.addr())),
    )
    .unwrap();
    let (code, body) = http_request("POST", &format!("{}/-/reload", a.url()), None).unwrap();
    assert_eq!(code, 200, "{body}");
    assert_loop_kept(&a, &t1.addr());
    wait_for(10, "job two scraped", || {
        (a.federate("two").len() == 1).then_some(())
    });

    // A reload that only adds a target to job one keeps the loop of the
    // target that was already there.
    let t3 = Target::text("three 3\n");
    std::fs::write(
        &a.config,
        format!(
            "{HEAD}  - job_name: one\n    static_configs: [{{targets: ['{}', '{}']}}]\n{}",
            t1.addr(),
            t3.addr(),
            job("two", &t2.addr())
        ),
    )
    .unwrap();
    let (code, body) = http_request("POST", &format!("{}/-/reload", a.url()), None).unwrap();
    assert_eq!(code, 200, "{body}");
    assert_loop_kept(&a, &t1.addr());
    wait_for(10, "new target in job one", || {
        (a.federate("three").len() == 1).then_some(())
    });

    // Bad reload is refused with the error; the old config keeps running.
    std::fs::write(
        &a.config,
        format!("{HEAD}  - job_name: one\n    scrape_interval: nope\n"),
    )
    .unwrap();
    let (code, body) = http_request("POST", &format!("{}/-/reload", a.url()), None).unwrap();
    assert_eq!(code, 500);
    assert!(
        body.contains("argus.yml:6:22: scrape_configs[0].scrape_interval: not a valid duration string: \"nope\""),
        "{body}"
    );
    let m = http_get(&format!("{}/metrics", a.url())).unwrap().1;
    assert!(m.contains("argus_config_last_reload_successful 0"));
    assert!(a.target(&t2.addr()).is_some());

    // SIGHUP reload removes job two; its series go stale.
    std::fs::write(&a.config, format!("{HEAD}{}", job("one", &t1.addr()))).unwrap();
    a.signal("HUP");
    wait_for(10, "job two removed and stale", || {
        (a.target(&t2.addr()).is_none() && a.federate("two").is_empty()).then_some(())
    });
    assert!(a.log().contains("configuration reloaded"));

    // Graceful shutdown: exit 0 well within 10 s, snapshot written.
    let (code, took) = a.stop();
    assert_eq!(code, Some(0));
    assert!(took.as_secs() < 10, "{took:?}");
    assert!(a.dir.join("data/head.snapshot").exists());
}

#[test]
fn file_sd_changes_are_picked_up_without_restart() {
    let t1 = Target::text("fsd 1\n");
    let t2 = Target::text("fsd 2\n");
    let d = tempfile::tempdir().unwrap();
    let targets = d.path().join("targets.json");
    std::fs::write(
        &targets,
        format!(
            "[{{\"targets\": [\"{}\"], \"labels\": {{\"env\": \"a\"}}}}]",
            t1.addr()
        ),
    )
    .unwrap();
    let a = Argus::start_in(
        d.path(),
        &format!(
            "{HEAD}  - job_name: fsd\n    file_sd_configs:\n      - files: ['*.json', 'more/*.yml']\n        refresh_interval: 1m\n"
        ),
        &[],
    );
    wait_for(10, "file_sd target", || {
        (a.federate("fsd").len() == 1).then_some(())
    });
    assert!(a.federate("fsd")[0].0.contains("env=\"a\""));
    // A new YAML file appears, the JSON one changes.
    std::fs::create_dir(d.path().join("more")).unwrap();
    std::fs::write(
        d.path().join("more/x.yml"),
        format!("- targets: ['{}']\n  labels: {{env: b}}\n", t2.addr()),
    )
    .unwrap();
    std::fs::write(&targets, "[]").unwrap();
    let f = wait_for(10, "file_sd update", || {
        let f = a.federate("fsd");
        (f.len() == 1 && f[0].0.contains("env=\"b\"")).then_some(f)
    });
    assert_eq!(f[0].1, 2.0);
    // A broken file keeps its last good targets and is counted.
    std::fs::write(d.path().join("more/x.yml"), "- targets: [\n").unwrap();
    wait_for(10, "read error counted", || {
        let m = http_get(&format!("{}/metrics", a.url())).ok()?.1;
        m.contains("argus_sd_file_read_errors_total 1")
            .then_some(())
    });
    assert!(a.target(&t2.addr()).is_some());
}

#[test]
fn inline_routing_is_checked_with_positions_in_the_config_file() {
    let (code, _, err) = check(
        "alerting:\n  routing:\n    route:\n      receiver: nobody\n    receivers:\n      - name: team\n",
    );
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "FILE:4:7: alerting.routing.route.receiver: undefined receiver \"nobody\" used in route"
    );
    let (code, _, err) = check(
        "alerting:\n  routing_file: am.yml\n  routing:\n    route: {receiver: a}\n    receivers: [{name: a}]\n",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("at most one of routing & routing_file"),
        "{err}"
    );
    let (code, out, err) = check(
        "alerting:\n  routing:\n    route: {receiver: a}\n    receivers: [{name: a}]\n  delivery:\n    rate_limits: {slack: 2/s}\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SUCCESS"));
    let (code, _, err) =
        check("alerting:\n  delivery:\n    rate_limits: {sms: 2/s, slack: fast}\n");
    assert_eq!(code, 1);
    assert!(
        err.contains("alerting.delivery.rate_limits.sms: unknown integration type"),
        "{err}"
    );
    assert!(
        err.contains("alerting.delivery.rate_limits.slack: invalid rate \"fast\""),
        "{err}"
    );
}
