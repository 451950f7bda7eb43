//! `dns_sd_configs`: argus looks its targets up through a DNS server
//! stand-in on 127.0.0.1 (UDP, and TCP for a truncated answer), named by
//! a resolv.conf (`ARGUS_RESOLV_CONF`) with a search domain, scrapes
//! them with the `__meta_dns_*` labels, and follows record changes.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// What the stand-in answers: (name, type) → SRV (target, port) or A
/// records; names in `truncate` are answered with TC over UDP.
#[derive(Default)]
struct Zone {
    srv: BTreeMap<String, Vec<(String, u16)>>,
    a: BTreeMap<String, Vec<Ipv4Addr>>,
    truncate: Vec<String>,
    queries: Vec<(String, u16, &'static str)>,
}

fn encode_name(out: &mut Vec<u8>, name: &str) {
    for l in name.trim_end_matches('.').split('.') {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
}

/// The answer to query `q`; `udp` answers for the UDP path.
fn answer(zone: &Mutex<Zone>, q: &[u8], udp: bool) -> Vec<u8> {
    let mut at = 12;
    let mut name = String::new();
    while q[at] != 0 {
        let l = q[at] as usize;
        name.push_str(std::str::from_utf8(&q[at + 1..at + 1 + l]).unwrap());
        name.push('.');
        at += 1 + l;
    }
    let qtype = u16::from_be_bytes([q[at + 1], q[at + 2]]);
    let question_end = at + 5;
    let mut z = zone.lock().unwrap();
    z.queries
        .push((name.clone(), qtype, if udp { "udp" } else { "tcp" }));
    let mut records: Vec<(u16, Vec<u8>)> = Vec::new();
    if qtype == 33 {
        for (t, p) in z.srv.get(&name).cloned().unwrap_or_default() {
            let mut rd = vec![0, 10, 0, 5];
            rd.extend_from_slice(&p.to_be_bytes());
            encode_name(&mut rd, &t);
            records.push((33, rd));
        }
    } else if qtype == 1 {
        for ip in z.a.get(&name).cloned().unwrap_or_default() {
            records.push((1, ip.octets().to_vec()));
        }
    }
    let known = z.srv.contains_key(&name) || z.a.contains_key(&name);
    let tc = udp && z.truncate.contains(&name);
    let mut m = q[..2].to_vec();
    m.push(0x81 | if tc { 0x02 } else { 0 });
    m.push(if known { 0x80 } else { 0x83 }); // NXDOMAIN for unknown names
    m.extend_from_slice(&[0, 1]);
    let n = if tc { 0 } else { records.len() as u16 };
    m.extend_from_slice(&n.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&q[12..question_end]);
    if !tc {
        for (t, rd) in records {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
            m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            m.extend_from_slice(&rd);
        }
    }
    m
}

/// A DNS server on 127.0.0.1 (the same port over UDP and TCP).
fn dns_server(zone: Arc<Mutex<Zone>>) -> u16 {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    let tcp = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let z = zone.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = udp.recv_from(&mut buf) else {
                continue;
            };
            let a = answer(&z, &buf[..n], true);
            let _ = udp.send_to(&a, from);
        }
    });
    std::thread::spawn(move || {
        for c in tcp.incoming() {
            let Ok(mut c) = c else { continue };
            let mut len = [0u8; 2];
            if c.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            if c.read_exact(&mut q).is_err() {
                continue;
            }
            let a = answer(&zone, &q, false);
            let _ = c.write_all(&(a.len() as u16).to_be_bytes());
            let _ = c.write_all(&a);
        }
    });
    port
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn srv_and_a_records_become_targets() {
    let t1 = Target::text("dns_metric 1\n");
    let t2 = Target::text("dns_metric 2\n");
    let t3 = Target::text("dns_metric 3\n");
    let zone = Arc::new(Mutex::new(Zone::default()));
    {
        let mut z = zone.lock().unwrap();
        z.srv.insert(
            "_metrics._tcp.svc.test.".into(),
            vec![("127.0.0.1.".into(), t1.port)],
        );
        z.a.insert("hosts.svc.test.".into(), vec![Ipv4Addr::LOCALHOST]);
        // Answered over TCP only.
        z.srv.insert(
            "_big._tcp.svc.test.".into(),
            vec![("127.0.0.1.".into(), t3.port)],
        );
        z.truncate.push("_big._tcp.svc.test.".into());
    }
    let port = dns_server(zone.clone());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("resolv.conf"),
        format!("nameserver 127.0.0.1:{port}\nsearch svc.test\noptions ndots:3\n"),
    )
    .unwrap();
    // `_metrics._tcp` has fewer dots than ndots: the search list first.
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: srv\n    dns_sd_configs:\n      - names: [_metrics._tcp, _big._tcp]\n        refresh_interval: 1s\n  - job_name: a\n    dns_sd_configs:\n      - names: [hosts.svc.test.]\n        type: a\n        port: {}\n        refresh_interval: 1s\n    relabel_configs:\n      - source_labels: [__meta_dns_name]\n        target_label: dns_name\n",
        t2.port
    );
    std::fs::write(d.join("argus.yml"), cfg).unwrap();
    let http = free_port();
    let log = std::fs::File::create(d.join("argus.log")).unwrap();
    let child = Command::new(argus_bin())
        .args(["run", "--config"])
        .arg(d.join("argus.yml"))
        .arg("--web.listen-address")
        .arg(format!("127.0.0.1:{http}"))
        .arg("--storage.path")
        .arg(d.join("data"))
        .env("ARGUS_RESOLV_CONF", d.join("resolv.conf"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _run = Running(child);
    let base = format!("http://127.0.0.1:{http}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(http_get(&format!("{base}/-/ready")), Ok((200, _))) {
        assert!(Instant::now() < deadline, "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let federate = || {
        let (_, body) = http_get(&format!(
            "{base}/federate?match[]={}",
            urlencode("{__name__=\"dns_metric\"}")
        ))
        .unwrap();
        let mut v: Vec<(String, f64)> = parse_federate(&body);
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let got = wait_for(20, "three DNS targets scraped", || {
        let f = federate();
        (f.len() == 3).then_some(f)
    });
    let mut want = vec![
        (
            format!(
                "dns_metric{{dns_name=\"hosts.svc.test.\",instance=\"127.0.0.1:{}\",job=\"a\"}}",
                t2.port
            ),
            2.0,
        ),
        (
            format!(
                "dns_metric{{instance=\"127.0.0.1:{}\",job=\"srv\"}}",
                t1.port
            ),
            1.0,
        ),
        (
            format!(
                "dns_metric{{instance=\"127.0.0.1:{}\",job=\"srv\"}}",
                t3.port
            ),
            3.0,
        ),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
    let (_, targets) = http_get(&format!("{base}/api/v1/targets?scrapePool=srv")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&targets).unwrap();
    let t = v["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["scrapeUrl"]
                .as_str()
                .unwrap()
                .contains(&t1.port.to_string())
        })
        .unwrap()
        .clone();
    assert_eq!(t["discoveredLabels"]["__meta_dns_name"], "_metrics._tcp");
    assert_eq!(
        t["discoveredLabels"]["__meta_dns_srv_record_target"],
        "127.0.0.1."
    );
    assert_eq!(
        t["discoveredLabels"]["__meta_dns_srv_record_port"],
        t1.port.to_string()
    );
    {
        let z = zone.lock().unwrap();
        assert!(
            z.queries
                .iter()
                .any(|q| q.0 == "_big._tcp.svc.test." && q.2 == "tcp")
        );
        // The search domain was tried first.
        let first = z
            .queries
            .iter()
            .find(|q| q.0.starts_with("_metrics"))
            .unwrap();
        assert_eq!(first.0, "_metrics._tcp.svc.test.");
        assert_eq!(first.1, 33);
    }
    // The SRV record moves to another port: the old target goes.
    zone.lock().unwrap().srv.insert(
        "_metrics._tcp.svc.test.".into(),
        vec![("127.0.0.1.".into(), t2.port)],
    );
    wait_for(20, "the moved SRV target", || {
        let f = federate();
        f.iter()
            .any(|(s, _)| {
                s == &format!(
                    "dns_metric{{instance=\"127.0.0.1:{}\",job=\"srv\"}}",
                    t2.port
                )
            })
            .then_some(())
    });
    wait_for(20, "the old target gone", || {
        (!federate()
            .iter()
            .any(|(s, _)| s.contains(&format!("127.0.0.1:{}\",job=\"srv", t1.port))))
        .then_some(())
    });
    let (_, m) = http_get(&format!("{base}/metrics")).unwrap();
    assert!(m.contains("argus_sd_dns_lookups_total"), "{m}");
}

#[test]
fn dns_settings_are_checked_as_prometheus_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    for (cfg, want) in [
        (
            "    dns_sd_configs:\n      - names: []\n",
            "dns_sd_configs[0].names: DNS-SD config must contain at least one SRV record name",
        ),
        (
            "    dns_sd_configs:\n      - names: [a.example]\n        type: A\n",
            "dns_sd_configs[0].port: a port is required in DNS-SD configs for all record types except SRV",
        ),
        (
            "    dns_sd_configs:\n      - names: [a.example]\n        type: TXT\n",
            "invalid DNS-SD records type \"TXT\"",
        ),
    ] {
        let f = dir.path().join("p.yml");
        std::fs::write(&f, format!("scrape_configs:\n  - job_name: a\n{cfg}")).unwrap();
        let (code, out) = argus_cli(["check".as_ref(), "config".as_ref(), f.as_os_str()]);
        assert_eq!(code, Some(1), "{cfg}: {out}");
        assert!(out.contains(want), "{cfg}: {out}");
    }
}
