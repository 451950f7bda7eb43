//! Peers: two real argus processes on 127.0.0.1 that watch each other
//! through signed heartbeats (over proxies the tests can cut), deliver
//! each notification once while both live, take over on kill -9, and
//! rejoin without a duplicate page; the dead-man's switch; health checks.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// While both live, each group is notified once; kill -9 the delivering
/// peer and the other delivers new alerts within position × timeout and
/// pages `ArgusPeerDown`; restart it and it takes delivery back without
/// repeating what its partner sent meanwhile.
#[test]
fn one_delivery_while_both_live_failover_on_kill_and_rejoin_without_duplicates() {
    let mut p = Pair::start(PairTiming::FAST);
    p.wait(20, "the first notification", || {
        (!p.firing("1").is_empty()).then_some(())
    });
    // The second peer held its copy (or had already heard it was sent):
    // nothing more arrives once the hold is over.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(p.firing("1").len(), 1, "{:#?}", p.hook.json_bodies());
    assert_eq!(metric(p.peer(0), "argus_peer_up", "argus-b"), 1.0);
    assert_eq!(metric(p.peer(1), "argus_peer_up", "argus-a"), 1.0);
    // What the peers see, and the cluster as amtool shows it.
    let peers = p.peer(1).api("/api/v1/peers");
    assert_eq!(peers[0]["id"], "argus-a");
    assert_eq!(peers[0]["up"], true);
    assert_eq!(peers[0]["configMismatch"], false);
    assert_eq!(peers[1]["isSelf"], true);
    let status = p.peer(0).get_json("/api/v2/status");
    assert_eq!(status["cluster"]["name"], "argus-a");
    assert_eq!(status["cluster"]["peers"].as_array().unwrap().len(), 2);

    // kill -9 the first peer; a new alert is delivered by the second.
    p.peers[0].as_mut().unwrap().kill9();
    let killed = Instant::now();
    p.signals(&[1, 2]);
    p.wait(15, "the new alert from the surviving peer", || {
        (!p.firing("2").is_empty()).then_some(())
    });
    let took = killed.elapsed();
    let down = p.wait(15, "ArgusPeerDown", || {
        p.hook
            .json_bodies()
            .into_iter()
            .find(|b| b["groupLabels"]["alertname"] == "ArgusPeerDown" && b["status"] == "firing")
    });
    assert_eq!(down["alerts"][0]["labels"]["peer"], "argus-a");
    assert_eq!(down["alerts"][0]["labels"]["severity"], "critical");
    assert_eq!(metric(p.peer(1), "argus_peer_up", "argus-a"), 0.0);
    eprintln!("failover delivery {took:?} after kill -9");

    // Restart it: it learns what its partner delivered and sends no
    // copy; the partner resolves ArgusPeerDown.
    p.spawn(0);
    p.wait(15, "ArgusPeerDown resolved", || {
        p.hook
            .json_bodies()
            .into_iter()
            .find(|b| b["groupLabels"]["alertname"] == "ArgusPeerDown" && b["status"] == "resolved")
    });
    p.wait(10, "the peers to see each other", || {
        (metric(p.peer(1), "argus_peer_up", "argus-a") == 1.0).then_some(())
    });
    // A new alert after the rejoin: delivered once, by the first peer.
    p.signals(&[1, 2, 3]);
    p.wait(15, "the alert after the rejoin", || {
        (!p.firing("3").is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    for n in ["1", "2", "3"] {
        assert_eq!(
            p.firing(n).len(),
            1,
            "n={n}: {:#?}\nlogs:\n{}",
            p.firing(n),
            p.logs()
        );
    }
    let downs = p
        .hook
        .json_bodies()
        .into_iter()
        .filter(|b| b["groupLabels"]["alertname"] == "ArgusPeerDown")
        .count();
    assert_eq!(downs, 2, "one page and one resolve");
}

/// Heartbeats cut both ways: each peer thinks the other dead and
/// delivers — duplicates, never silence — and when the partition heals
/// they converge and count the duplicates.
#[test]
fn a_partition_duplicates_and_heals() {
    let p = Pair::start(PairTiming::FAST);
    p.wait(20, "the first notification", || {
        (!p.firing("1").is_empty()).then_some(())
    });
    // Settled (the held copy dropped) before the cut.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(p.firing("1").len(), 1);
    for x in &p.proxies {
        x.set_cut(true);
    }
    p.wait(15, "both to see the other down", || {
        (metric(p.peer(0), "argus_peer_up", "argus-b") == 0.0
            && metric(p.peer(1), "argus_peer_up", "argus-a") == 0.0)
            .then_some(())
    });
    p.signals(&[1, 4]);
    p.wait(15, "the alert from both sides", || {
        (p.firing("4").len() >= 2).then_some(())
    });
    for x in &p.proxies {
        x.set_cut(false);
    }
    p.wait(15, "the duplicate counted once they meet again", || {
        let d = metric(p.peer(0), "argus_peer_duplicate_notifications_total", "")
            + metric(p.peer(1), "argus_peer_duplicate_notifications_total", "");
        (d >= 1.0).then_some(())
    });
    p.wait(10, "both up", || {
        (metric(p.peer(0), "argus_peer_up", "argus-b") == 1.0
            && metric(p.peer(1), "argus_peer_up", "argus-a") == 1.0)
            .then_some(())
    });
    // Converged: a new alert is delivered once again.
    p.signals(&[1, 4, 5]);
    p.wait(15, "the alert after healing", || {
        (!p.firing("5").is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(p.firing("5").len(), 1, "{:#?}", p.hook.json_bodies());
    assert_eq!(p.firing("4").len(), 2, "bounded: one per side");
    assert_eq!(p.firing("1").len(), 1);
}

/// Unsigned, wrongly signed, tampered, replayed and stale heartbeats are
/// refused and counted; the secret never reaches the log.
#[test]
fn forged_and_replayed_heartbeats_are_refused() {
    let p = Pair::start(PairTiming::FAST);
    let a = p.peer(0);
    let url = format!("{}/api/v1/peers/heartbeat", a.url());
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let body = |ts: i64| {
        format!(
            r#"{{"id":"argus-b","start_time":1,"config_hash":"x","time":{ts},"full":false,"sync":{{"nflog":[],"silences":[]}}}}"#
        )
    };
    let post = |ts: Option<i64>, sig: Option<String>, b: &str| {
        let mut h: Vec<(String, String)> = Vec::new();
        if let Some(ts) = ts {
            h.push(("X-Argus-Peer-Timestamp".into(), ts.to_string()));
        }
        if let Some(s) = sig {
            h.push(("X-Argus-Peer-Signature".into(), s));
        }
        let hs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        http_request_with("POST", &url, Some(b), &hs).unwrap().0
    };
    let key = PEER_SECRET.as_bytes();
    let t = now();
    let b = body(t);
    assert_eq!(post(None, None, &b), 401, "unsigned");
    assert_eq!(
        post(
            Some(t),
            Some(argus::ha::sign(b"wrong", t, b.as_bytes())),
            &b
        ),
        401,
        "another secret"
    );
    let tampered = b.replace("\"full\":false", "\"full\":true");
    assert_eq!(
        post(
            Some(t),
            Some(argus::ha::sign(key, t, b.as_bytes())),
            &tampered
        ),
        401,
        "tampered body"
    );
    let old = t - 3_600_000;
    assert_eq!(
        post(
            Some(old),
            Some(argus::ha::sign(key, old, body(old).as_bytes())),
            &body(old)
        ),
        401,
        "stale"
    );
    let t2 = now() + 1000;
    let b2 = body(t2);
    let sig = argus::ha::sign(key, t2, b2.as_bytes());
    assert_eq!(post(Some(t2), Some(sig.clone()), &b2), 200, "valid");
    assert_eq!(post(Some(t2), Some(sig), &b2), 401, "replayed");
    for reason in ["unsigned", "bad_signature", "stale", "replayed"] {
        assert!(
            metric(
                a,
                "argus_peer_heartbeat_failures_total",
                &format!("reason=\"{reason}\"")
            ) >= 1.0,
            "{reason}"
        );
    }
    assert!(!a.log().contains(PEER_SECRET), "the secret is in the log");
}

/// The dead-man's switch pings while the Watchdog goes through
/// evaluation and routing, and calls the failure URL (and stops
/// pinging) once it does not.
#[test]
fn the_deadmans_switch_pings_while_the_chain_works() {
    let (ping, fail, hook) = (Recorder::start(), Recorder::start(), Recorder::start());
    let tmp = tempfile::tempdir().unwrap();
    let rules = |expr: &str| {
        format!(
            "groups:\n  - name: meta\n    rules:\n      - alert: Watchdog\n        expr: {expr}\n        labels: {{severity: none}}\n"
        )
    };
    std::fs::write(tmp.path().join("rules.yml"), rules("vector(1)")).unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_wait: 0s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{}/hook\n",
            hook.addr()
        ),
    )
    .unwrap();
    let cfg = format!(
        "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  routing_file: alertmanager.yml\ndeadman:\n  url: http://{}/ping\n  fail_url: http://{}/fail\n  interval: 1s\n",
        ping.addr(),
        fail.addr()
    );
    let a = Argus::start_in(tmp.path(), &cfg, &["--rules.alert.resend-delay", "1s"]);
    a.wait_for(15, "three pings", || {
        (ping.taken().len() >= 3).then_some(())
    });
    assert!(fail.taken().is_empty(), "no failure while healthy");
    assert!(ping.taken()[0].0.starts_with("GET /ping "));
    // Break the chain: the Watchdog no longer fires.
    std::fs::write(tmp.path().join("rules.yml"), rules("vector(1) < 0")).unwrap();
    a.signal("HUP");
    a.wait_for(15, "the failure URL", || {
        (!fail.taken().is_empty()).then_some(())
    });
    let pings = ping.taken().len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ping.taken().len(), pings, "pings stopped");
    assert!(
        fail.taken().len() >= 2,
        "the failure URL is called every interval"
    );
    // Repaired, and the switch moved to another URL by a reload.
    let moved = Recorder::start();
    std::fs::write(tmp.path().join("rules.yml"), rules("vector(1)")).unwrap();
    std::fs::write(
        tmp.path().join("argus.yml"),
        cfg.replace(
            &format!("{}/ping", ping.addr()),
            &format!("{}/ping", moved.addr()),
        ),
    )
    .unwrap();
    a.signal("HUP");
    a.wait_for(15, "pings at the new URL", || {
        (moved.taken().len() >= 2).then_some(())
    });
}

/// `argus check health` exits 0 on a ready instance, 1 with the reason
/// on a not-ready one or an unreachable URL.
#[test]
fn check_health_reports_readiness() {
    let hook_port = free_port(); // nothing listens: deliveries fail
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: vector(1)\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:{hook_port}/hook\n"
        ),
    )
    .unwrap();
    let cfg = "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  routing_file: alertmanager.yml\n  delivery:\n    retry_initial: 100ms\n    retry_max: 200ms\n    breaker_failures: 2\n    breaker_cooldown: 1h\n";
    let a = Argus::start_in(tmp.path(), cfg, &[]);
    let health = |url: &str| argus_cli(["check", "health", "--url", url, "--timeout", "2s"]);
    let (code, out) = health(&a.url());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Ready"), "{out}");
    // The only receiver fails until its circuit opens: not ready.
    let (code, out) = a.wait_for(20, "not ready", || {
        let (c, o) = health(&a.url());
        (c == Some(1)).then_some((c, o))
    });
    assert_eq!(code, Some(1));
    assert!(
        out.contains("every receiver integration is failing") && out.contains("hook/webhook/0"),
        "{out}"
    );
    let (code, out) = health(&format!("http://127.0.0.1:{}", free_port()));
    assert_eq!(code, Some(1));
    assert!(out.contains("cannot reach"), "{out}");
}

/// `--peers.self` must name a member; the error says which exist.
#[test]
fn an_unknown_peer_id_is_refused_at_start() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("secret"), PEER_SECRET).unwrap();
    std::fs::write(
        d.path().join("argus.yml"),
        "peers:\n  self: argus-a\n  members:\n    - {id: argus-a, url: 'http://127.0.0.1:1'}\n    - {id: argus-b, url: 'http://127.0.0.1:2'}\n  secret_file: secret\n",
    )
    .unwrap();
    let out = std::process::Command::new(argus_bin())
        .arg("run")
        .arg("--config")
        .arg(d.path().join("argus.yml"))
        .args([
            "--web.listen-address",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .arg("--storage.path")
        .arg(d.path().join("data"))
        .args(["--peers.self", "argus-c"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--peers.self \"argus-c\" is not one of peers.members (argus-a, argus-b)"),
        "{err}"
    );
}

/// Three peers: the first delivers; killed, the second takes over (the
/// third still holds for it); both killed, the third delivers alone.
/// Each group once throughout.
#[test]
fn three_peers_fail_over_in_order() {
    let mut p = Pair::start_n(PairTiming::FAST, 3);
    p.wait(20, "the first notification", || {
        (!p.firing("1").is_empty()).then_some(())
    });
    let sender = |n: &str, p: &Pair| -> Vec<usize> {
        p.firing(n).iter().filter_map(|b| p.sender(b)).collect()
    };
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sender("1", &p), vec![0]);
    p.peers[0].as_mut().unwrap().kill9();
    p.signals(&[1, 2]);
    p.wait(15, "the second peer's delivery", || {
        (!p.firing("2").is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sender("2", &p), vec![1], "{:#?}", p.firing("2"));
    // ArgusPeerDown for argus-a: raised by both survivors, paged once.
    let downs: Vec<_> = p
        .hook
        .json_bodies()
        .into_iter()
        .filter(|b| b["groupLabels"]["alertname"] == "ArgusPeerDown" && b["status"] == "firing")
        .collect();
    assert_eq!(downs.len(), 1, "{downs:#?}");
    p.peers[1].as_mut().unwrap().kill9();
    p.signals(&[1, 2, 3]);
    p.wait(20, "the third peer's delivery", || {
        (!p.firing("3").is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sender("3", &p), vec![2], "{:#?}", p.firing("3"));
    for n in ["1", "2"] {
        assert_eq!(p.firing(n).len(), 1, "n={n}");
    }
}

/// A peer whose rule files differ raises `ArgusPeerConfigMismatch` on its
/// partner (and `/api/v1/peers` says so); it clears when they agree.
#[test]
fn a_config_mismatch_is_an_alert() {
    let p = Pair::start(PairTiming::FAST);
    p.wait(20, "the first notification", || {
        (!p.firing("1").is_empty()).then_some(())
    });
    let rules = p.dirs[1].path().join("rules.yml");
    let original = std::fs::read_to_string(&rules).unwrap();
    std::fs::write(
        &rules,
        original.replace("severity: page", "severity: ticket"),
    )
    .unwrap();
    p.peer(1).signal("HUP");
    let m = p.wait(15, "ArgusPeerConfigMismatch", || {
        p.hook.json_bodies().into_iter().find(|b| {
            b["groupLabels"]["alertname"] == "ArgusPeerConfigMismatch" && b["status"] == "firing"
        })
    });
    assert_eq!(m["alerts"][0]["labels"]["severity"], "warning");
    let peers = p.peer(0).api("/api/v1/peers");
    assert_eq!(peers[1]["configMismatch"], true, "{peers}");
    std::fs::write(&rules, original).unwrap();
    p.peer(1).signal("HUP");
    p.wait(15, "the mismatch cleared", || {
        (p.peer(0).api("/api/v1/peers")[1]["configMismatch"] == false).then_some(())
    });
}

/// `argus check config` reads the peer secret as `run` does: a missing
/// or empty file is an error naming `peers.secret_file`.
#[test]
fn check_config_reads_the_peer_secret() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("argus.yml");
    std::fs::write(
        &cfg,
        "peers:\n  self: argus-a\n  members:\n    - {id: argus-a, url: 'http://127.0.0.1:1'}\n    - {id: argus-b, url: 'http://127.0.0.1:2'}\n  secret_file: secret\n",
    )
    .unwrap();
    let check = || {
        let (code, out) = argus_cli([
            std::ffi::OsStr::new("check"),
            "config".as_ref(),
            cfg.as_os_str(),
        ]);
        (code == Some(0), out)
    };
    let (ok, err) = check();
    assert!(
        !ok && err.contains("peers.secret_file") && err.contains("cannot read"),
        "{err}"
    );
    std::fs::write(d.path().join("secret"), "  \n").unwrap();
    let (ok, err) = check();
    assert!(!ok && err.contains("is empty"), "{err}");
    std::fs::write(d.path().join("secret"), PEER_SECRET).unwrap();
    let (ok, err) = check();
    assert!(ok, "{err}");
}

/// A silence created on one peer mutes on the other within a moment —
/// its heartbeat goes out right after the change, not at the next
/// interval (5 s here).
#[test]
fn a_silence_reaches_the_partner_at_once() {
    let p = Pair::start(PairTiming::DEFAULT);
    p.wait(20, "the first notification", || {
        (!p.firing("1").is_empty()).then_some(())
    });
    // Past the start-up exchange, so the next scheduled heartbeat is
    // seconds away.
    std::thread::sleep(Duration::from_secs(1));
    let body = r#"{"matchers":[{"name":"n","value":"9","isRegex":false,"isEqual":true}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2100-01-01T00:00:00Z","createdBy":"ops","comment":"maintenance"}"#;
    let (code, out) = http_request_with(
        "POST",
        &format!("{}/api/v2/silences", p.peer(0).url()),
        Some(body),
        &[("Content-Type", "application/json")],
    )
    .unwrap();
    assert_eq!(code, 200, "{out}");
    let id: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = id["silenceID"].as_str().unwrap().to_string();
    let sent = Instant::now();
    p.wait(5, "the silence on the partner", || {
        let list = p.peer(1).get_json("/api/v2/silences");
        list.as_array()?
            .iter()
            .any(|s| s["id"] == id.as_str())
            .then_some(())
    });
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
}

/// A surviving peer restarted while its partner is down keeps
/// `ArgusPeerDown` firing with its first start: no resolve, no second
/// page.
#[test]
fn peer_down_survives_a_restart_of_the_survivor() {
    let mut p = Pair::start(PairTiming::FAST);
    p.wait(20, "the first notification", || {
        (!p.firing("1").is_empty()).then_some(())
    });
    p.peers[1].as_mut().unwrap().kill9();
    let down = p.wait(15, "ArgusPeerDown", || {
        p.hook
            .json_bodies()
            .into_iter()
            .find(|b| b["groupLabels"]["alertname"] == "ArgusPeerDown" && b["status"] == "firing")
    });
    let started = down["alerts"][0]["startsAt"].clone();
    // Restart the survivor, then wait well past its peer timeout and the
    // alert's end.
    assert_eq!(p.peers[0].as_mut().unwrap().stop().0, Some(0));
    p.spawn(0);
    std::thread::sleep(Duration::from_secs(8));
    let downs: Vec<serde_json::Value> = p
        .hook
        .json_bodies()
        .into_iter()
        .filter(|b| b["groupLabels"]["alertname"] == "ArgusPeerDown")
        .collect();
    assert_eq!(downs.len(), 1, "{downs:#?}\nlogs:\n{}", p.logs());
    let alerts = p.peer(0).get_json("/api/v2/alerts");
    let a = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "ArgusPeerDown")
        .unwrap_or_else(|| panic!("{alerts:#?}"));
    assert_eq!(a["status"]["state"], "active");
    // The webhook writes Go's RFC 3339 (trailing zeros cut), the API
    // milliseconds: compare the instants.
    let ms = |v: &serde_json::Value| argus::model::parse_rfc3339(v.as_str().unwrap());
    assert_eq!(ms(&a["startsAt"]), ms(&started));
}
