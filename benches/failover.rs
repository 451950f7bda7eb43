//! Peers under failure, measured with real argus processes on 127.0.0.1
//! (the same pair the tests in tests/ha.rs run):
//!
//! - `failover`: a steady stream of new alerts (a new group every 200 ms)
//!   while the delivering peer is killed with SIGKILL and restarted 20
//!   times; reports detection and resumption times per failover and, at
//!   the end, lost notifications (groups never notified) and duplicates
//!   (groups notified more than once).
//! - `heartbeat`: the cost of the heartbeats with 1,000 active alerts at
//!   the default interval and timeout (5 s, 15 s): CPU per peer against a
//!   lone instance with the same load, and bytes per second through the
//!   peers' links.
//!
//! `cargo bench --bench failover [-- failover|heartbeat]`

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn failover(cycles: usize) {
    let mut p = Pair::start(PairTiming::FAST);
    p.wait(30, "the first notification", || {
        (!p.firing("1").is_empty()).then_some(())
    });
    // The stream: a new alert (its own group) every 200 ms.
    let next = Arc::new(AtomicU32::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let (t2, n2, s2) = (p.target.clone_handle(), next.clone(), stop.clone());
    let streamer = std::thread::spawn(move || {
        while !s2.load(Ordering::SeqCst) {
            let n = n2.fetch_add(1, Ordering::SeqCst) + 1;
            let text: String = (1..=n)
                .map(|i| format!("signal{{n=\"{i}\"}} 1\n"))
                .collect();
            t2.set_text(&text);
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut detect = Vec::new();
    let mut resume = Vec::new();
    for cycle in 0..cycles {
        std::thread::sleep(Duration::from_secs(3));
        let n_at_kill = next.load(Ordering::SeqCst);
        p.peers[0].as_mut().unwrap().kill9();
        let killed = Instant::now();
        p.wait(30, "detection", || {
            (metric(p.peer(1), "argus_peer_up", "argus-a") == 0.0).then_some(())
        });
        let detected = killed.elapsed();
        // Delivery resumed: the survivor sends a group that started
        // after the kill.
        p.wait(30, "delivery by the survivor", || {
            p.hook
                .json_bodies()
                .iter()
                .any(|b| {
                    p.sender(b) == Some(1)
                        && b["groupLabels"]["n"]
                            .as_str()
                            .and_then(|n| n.parse::<u32>().ok())
                            .is_some_and(|n| n > n_at_kill)
                })
                .then_some(())
        });
        let resumed = killed.elapsed();
        eprintln!(
            "failover {:>2}: detected after {:>5.2} s, delivery resumed after {:>5.2} s ({:+.2} s after detection)",
            cycle + 1,
            detected.as_secs_f64(),
            resumed.as_secs_f64(),
            resumed.as_secs_f64() - detected.as_secs_f64()
        );
        detect.push(detected.as_secs_f64());
        resume.push(resumed.as_secs_f64() - detected.as_secs_f64());
        p.spawn(0);
        p.wait(30, "the rejoin", || {
            (metric(p.peer(1), "argus_peer_up", "argus-a") == 1.0
                && metric(p.peer(0), "argus_peer_up", "argus-b") == 1.0)
                .then_some(())
        });
    }
    stop.store(true, Ordering::SeqCst);
    streamer.join().unwrap();
    std::thread::sleep(Duration::from_secs(6));
    let last = next.load(Ordering::SeqCst);
    let (mut lost, mut dups, mut dup_groups) = (Vec::new(), 0, 0);
    for n in 1..=last {
        match p.firing(&n.to_string()).len() {
            0 => lost.push(n),
            1 => {}
            k => {
                dups += k - 1;
                dup_groups += 1;
            }
        }
    }
    let max = |v: &[f64]| v.iter().cloned().fold(f64::MIN, f64::max);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "failover: {cycles} kill -9 failovers, {last} groups streamed (heartbeat 0.5 s, timeout 2 s)"
    );
    println!(
        "  detection: mean {:.2} s, max {:.2} s (bound: timeout + heartbeat = 2.5 s)",
        mean(&detect),
        max(&detect)
    );
    println!(
        "  delivery resumed after detection: mean {:.2} s, max {:.2} s (bound: position × timeout = 2 s)",
        mean(&resume),
        max(&resume)
    );
    println!(
        "  lost: {} {:?}; duplicated groups: {dup_groups} ({dups} extra notifications, {:.2} per failover)",
        lost.len(),
        lost,
        dups as f64 / cycles as f64
    );
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit_once(") ").map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (11 and 12 after the name).
    (ticks(11) + ticks(12)) / 100.0
}

fn heartbeat(alerts: u32, secs: u64) {
    let p = Pair::start(PairTiming::DEFAULT);
    let text: String = (1..=alerts)
        .map(|i| format!("signal{{n=\"{i}\"}} 1\n"))
        .collect();
    p.target.set_text(&text);
    p.wait(120, "every alert notified", || {
        (p.hook.json_bodies().len() as u32 >= alerts).then_some(())
    });
    std::thread::sleep(Duration::from_secs(20));
    // The same load on a lone instance (no peers).
    let solo_dir = tempfile::tempdir().unwrap();
    for f in ["rules.yml", "alertmanager.yml"] {
        std::fs::copy(p.dirs[0].path().join(f), solo_dir.path().join(f)).unwrap();
    }
    let cfg = std::fs::read_to_string(p.dirs[0].path().join("argus.yml")).unwrap();
    let solo_cfg = cfg.split("peers:").next().unwrap().to_string();
    let solo = Argus::start_in(
        solo_dir.path(),
        &solo_cfg,
        &["--rules.alert.resend-delay", "1s"],
    );
    std::thread::sleep(Duration::from_secs(20));
    let pids: Vec<u32> = p
        .peers
        .iter()
        .map(|a| a.as_ref().unwrap().child.as_ref().unwrap().id())
        .collect();
    let solo_pid = solo.child.as_ref().unwrap().id();
    let cpu0: Vec<f64> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    let solo0 = cpu_seconds(solo_pid);
    let bytes0: u64 = p
        .proxies
        .iter()
        .map(|x| x.bytes.load(Ordering::Relaxed))
        .sum();
    std::thread::sleep(Duration::from_secs(secs));
    let cpu: Vec<f64> = pids
        .iter()
        .zip(&cpu0)
        .map(|(p, c)| (cpu_seconds(*p) - c) / secs as f64)
        .collect();
    let solo_cpu = (cpu_seconds(solo_pid) - solo0) / secs as f64;
    let bytes: u64 = p
        .proxies
        .iter()
        .map(|x| x.bytes.load(Ordering::Relaxed))
        .sum::<u64>()
        - bytes0;
    println!("heartbeat: {alerts} active alerts, heartbeat 5 s, timeout 15 s, {secs} s measured");
    println!(
        "  CPU: peer a {:.2}%, peer b {:.2}%, lone instance {:.2}% of a core; heartbeats cost {:.2} points per peer",
        cpu[0] * 100.0,
        cpu[1] * 100.0,
        solo_cpu * 100.0,
        (cpu[0] + cpu[1]) / 2.0 * 100.0 - solo_cpu * 100.0
    );
    println!(
        "  traffic between the peers: {:.0} B/s in all, {:.0} B/s per peer (requests and answers)",
        bytes as f64 / secs as f64,
        bytes as f64 / secs as f64 / 2.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let want = |m: &str| {
        !args.iter().any(|a| a == "failover" || a == "heartbeat") || args.iter().any(|a| a == m)
    };
    if want("failover") {
        failover(20);
    }
    if want("heartbeat") {
        heartbeat(1000, 60);
    }
}
