//! DNS service discovery (`dns_sd_configs`), as Prometheus does it: every
//! refresh interval each name is looked up (SRV, A, AAAA or MX) through
//! the servers and search list of `/etc/resolv.conf`, over UDP with EDNS0
//! and over TCP when the answer is truncated; one target group per name,
//! with Prometheus's `__meta_dns_*` labels.
//!
//! The DNS messages are built and read here (a question out, the answer
//! section in); every length and name pointer of an answer is checked
//! against the message, so a hostile server gets an error, not a panic.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::discovery::TargetGroup;
use crate::config::DnsSdConfig;

/// How long one exchange with one server may take (Go's DNS client's).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);
/// The UDP answer size argus asks for with EDNS0.
const UDP_SIZE: u16 = 4096;
/// Where the servers and search list come from; `ARGUS_RESOLV_CONF`
/// names another file (containers, tests).
const RESOLV_CONF: &str = "/etc/resolv.conf";

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_MX: u16 = 15;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;
const TYPE_OPT: u16 = 41;

const RCODE_OK: u8 = 0;
const RCODE_NXDOMAIN: u8 = 3;

/// The servers, search domains and `ndots` of a resolv.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvConf {
    /// Name servers; port 53 unless written as `address:port`.
    pub servers: Vec<SocketAddr>,
    /// Search domains.
    pub search: Vec<String>,
    /// Dots a name needs to be tried as given before the search list.
    pub ndots: usize,
}

impl ResolvConf {
    /// Reads resolv.conf text as Go's DNS library does (`nameserver`,
    /// `domain`, `search`, `options ndots:N`; the last `domain`/`search`
    /// wins).
    pub fn parse(text: &str) -> ResolvConf {
        let mut c = ResolvConf {
            servers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut f = line.split_whitespace();
            match f.next() {
                Some("nameserver") => {
                    if let Some(a) = f.next() {
                        let addr = a
                            .parse::<SocketAddr>()
                            .ok()
                            .or_else(|| a.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)));
                        c.servers.extend(addr);
                    }
                }
                Some("domain") => {
                    c.search = f.next().map(|d| vec![d.to_string()]).unwrap_or_default()
                }
                Some("search") => c.search = f.map(str::to_string).collect(),
                Some("options") => {
                    for o in f {
                        if let Some(n) = o.strip_prefix("ndots:").and_then(|n| n.parse().ok()) {
                            c.ndots = std::cmp::min(n, 15);
                        }
                    }
                }
                _ => {}
            }
        }
        c
    }

    /// The resolv.conf in effect.
    pub fn load() -> Result<ResolvConf, String> {
        let path = std::env::var("ARGUS_RESOLV_CONF").unwrap_or_else(|_| RESOLV_CONF.into());
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("could not load resolv.conf {path}: {e}"))?;
        Ok(ResolvConf::parse(&text))
    }

    /// The fully qualified names to try for `name`, in order.
    pub fn name_list(&self, name: &str) -> Vec<String> {
        if name.ends_with('.') {
            return vec![name.to_string()];
        }
        let fqdn = format!("{name}.");
        let labels = name.split('.').filter(|l| !l.is_empty()).count();
        let as_given_first = labels > self.ndots;
        let mut v = Vec::new();
        if as_given_first {
            v.push(fqdn.clone());
        }
        for s in &self.search {
            v.push(format!("{fqdn}{}.", s.trim_end_matches('.')));
        }
        if !as_given_first {
            v.push(fqdn);
        }
        v
    }
}

/// A record of an answer section that discovery uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A mail exchanger's name (fully qualified, with its dot).
    Mx(String),
    /// A service's target name (with its dot) and port.
    Srv(String, u16),
    /// An alias, skipped.
    Cname,
    /// Another type, skipped.
    Other(u16),
}

/// A decoded answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// The response code.
    pub rcode: u8,
    /// Truncated (retry over TCP).
    pub truncated: bool,
    /// The answer section.
    pub records: Vec<Record>,
}

/// A query for `name` (fully qualified) of `qtype`, with EDNS0.
fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00]); // recursion desired
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]); // 1 question, 1 additional
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a valid DNS name"));
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    if m.len() - 12 > 255 {
        return Err(format!("{name:?} is longer than 255 bytes"));
    }
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]); // IN
    // OPT: root name, type, UDP size as class, no extended flags.
    m.push(0);
    m.extend_from_slice(&TYPE_OPT.to_be_bytes());
    m.extend_from_slice(&UDP_SIZE.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Ok(m)
}

fn u16_at(m: &[u8], at: usize) -> Result<u16, String> {
    m.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or_else(|| format!("message ends at byte {} inside a field at {at}", m.len()))
}

/// Reads the name at `at`: (the name with a trailing dot, where the
/// bytes after it start). Pointers must go backwards, so names cannot
/// loop; a name is at most 255 bytes.
fn read_name(m: &[u8], mut at: usize) -> Result<(String, usize), String> {
    let mut name = String::new();
    let mut end = None;
    let mut wire_len = 0usize;
    loop {
        let len = *m
            .get(at)
            .ok_or_else(|| format!("name runs past the message end at byte {at}"))?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                if name.is_empty() {
                    name.push('.');
                }
                return Ok((name, end.unwrap_or(at + 1)));
            }
            0x00 => {
                let label = m
                    .get(at + 1..at + 1 + len as usize)
                    .ok_or_else(|| format!("label at byte {at} runs past the message end"))?;
                wire_len += 1 + label.len();
                if wire_len > 255 {
                    return Err(format!("name at byte {at} is longer than 255 bytes"));
                }
                for &c in label {
                    if c.is_ascii_graphic() && c != b'.' && c != b'\\' {
                        name.push(c as char);
                    } else {
                        name.push_str(&format!("\\{c:03}"));
                    }
                }
                name.push('.');
                at += 1 + len as usize;
            }
            0xc0 => {
                let ptr = usize::from(u16_at(m, at)? & 0x3fff);
                if ptr >= at {
                    return Err(format!("name pointer at byte {at} does not point back"));
                }
                end.get_or_insert(at + 2);
                at = ptr;
            }
            _ => return Err(format!("unknown label type at byte {at}")),
        }
    }
}

/// Decodes a response to query `id`.
pub fn parse_answer(m: &[u8], id: u16) -> Result<Answer, String> {
    if m.len() < 12 {
        return Err(format!(
            "message of {} bytes is shorter than a header",
            m.len()
        ));
    }
    if u16_at(m, 0)? != id {
        return Err("answer to another query (id differs)".into());
    }
    if m[2] & 0x80 == 0 {
        return Err("not a response".into());
    }
    let truncated = m[2] & 0x02 != 0;
    let rcode = m[3] & 0x0f;
    let questions = u16_at(m, 4)?;
    let answers = u16_at(m, 6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = read_name(m, at)?.1 + 4;
    }
    let mut records = Vec::new();
    for _ in 0..answers {
        if truncated && at >= m.len() {
            break;
        }
        let (_, next) = read_name(m, at)?;
        let rtype = u16_at(m, next)?;
        let rdlen = usize::from(u16_at(m, next + 8)?);
        let rdata = next + 10;
        let rend = rdata + rdlen;
        if rend > m.len() {
            return Err(format!("record at byte {at} runs past the message end"));
        }
        let r = match rtype {
            TYPE_A if rdlen == 4 => Record::A(Ipv4Addr::new(
                m[rdata],
                m[rdata + 1],
                m[rdata + 2],
                m[rdata + 3],
            )),
            TYPE_AAAA if rdlen == 16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(&m[rdata..rend]);
                Record::Aaaa(Ipv6Addr::from(b))
            }
            TYPE_MX if rdlen >= 3 => Record::Mx(read_name(&m[..rend], rdata + 2)?.0),
            TYPE_SRV if rdlen >= 7 => {
                Record::Srv(read_name(&m[..rend], rdata + 6)?.0, u16_at(m, rdata + 4)?)
            }
            TYPE_A | TYPE_AAAA | TYPE_MX | TYPE_SRV => {
                return Err(format!("record at byte {at} has a data length of {rdlen}"));
            }
            TYPE_CNAME => Record::Cname,
            t => Record::Other(t),
        };
        records.push(r);
        at = rend;
    }
    Ok(Answer {
        rcode,
        truncated,
        records,
    })
}

fn random_id() -> u16 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish() as u16
}

/// One exchange with one server: UDP, then TCP if truncated.
async fn exchange(server: SocketAddr, name: &str, qtype: u16) -> Result<Answer, String> {
    let id = random_id();
    let q = query(id, name, qtype)?;
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let udp = async {
        let s = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| e.to_string())?;
        s.connect(server).await.map_err(|e| e.to_string())?;
        s.send(&q).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; usize::from(UDP_SIZE)];
        loop {
            let n = s.recv(&mut buf).await.map_err(|e| e.to_string())?;
            // A stray datagram (an earlier query's late answer) is skipped.
            match parse_answer(&buf[..n], id) {
                Err(e) if e.contains("id differs") => continue,
                r => return r,
            }
        }
    };
    let a = tokio::time::timeout(EXCHANGE_TIMEOUT, udp)
        .await
        .map_err(|_| format!("{server}: no answer within {EXCHANGE_TIMEOUT:?}"))?
        .map_err(|e| format!("{server}: {e}"))?;
    if !a.truncated {
        return Ok(a);
    }
    let tcp = async {
        let mut s = tokio::net::TcpStream::connect(server)
            .await
            .map_err(|e| e.to_string())?;
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        s.write_all(&framed).await.map_err(|e| e.to_string())?;
        let len = s.read_u16().await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; usize::from(len)];
        s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        let a = parse_answer(&buf, id)?;
        if a.truncated {
            return Err("truncated answer over TCP".to_string());
        }
        Ok(a)
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, tcp)
        .await
        .map_err(|_| format!("{server} (TCP): no answer within {EXCHANGE_TIMEOUT:?}"))?
        .map_err(|e| format!("{server} (TCP): {e}"))
}

/// Looks `name` up as Prometheus does: each name of the search list in
/// turn, each through the first server that answers with success or "no
/// such name"; the first success wins. All names answered "no such
/// name": no records. A server failing for some name: an error.
pub async fn lookup(conf: &ResolvConf, name: &str, qtype: u16) -> Result<Vec<Record>, String> {
    if conf.servers.is_empty() {
        return Err("resolv.conf names no server".into());
    }
    let mut all_valid = true;
    let mut last_err = String::new();
    for n in conf.name_list(name) {
        let mut got = None;
        for &s in &conf.servers {
            match exchange(s, &n, qtype).await {
                Ok(a) if a.rcode == RCODE_OK || a.rcode == RCODE_NXDOMAIN => {
                    got = Some(a);
                    break;
                }
                Ok(a) => last_err = format!("{s}: response code {}", a.rcode),
                Err(e) => last_err = e,
            }
        }
        match got {
            Some(a) if a.rcode == RCODE_OK => return Ok(a.records),
            Some(_) => {}
            None => all_valid = false,
        }
    }
    if all_valid {
        Ok(Vec::new())
    } else {
        Err(format!("could not resolve {name:?}: {last_err}"))
    }
}

/// `host:port`, with brackets around an IPv6 host.
fn host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The target group of `name` from its records.
pub fn name_group(name: &str, records: &[Record], port: i64) -> TargetGroup {
    let targets = records
        .iter()
        .filter_map(|r| {
            let (addr, srv_target, srv_port, mx) = match r {
                Record::Srv(t, p) => (
                    host_port(t.trim_end_matches('.'), i64::from(*p)),
                    t.clone(),
                    p.to_string(),
                    String::new(),
                ),
                Record::Mx(t) => (
                    host_port(t.trim_end_matches('.'), port),
                    String::new(),
                    String::new(),
                    t.clone(),
                ),
                Record::A(ip) => (
                    host_port(&ip.to_string(), port),
                    String::new(),
                    String::new(),
                    String::new(),
                ),
                Record::Aaaa(ip) => (
                    host_port(&ip.to_string(), port),
                    String::new(),
                    String::new(),
                    String::new(),
                ),
                Record::Cname | Record::Other(_) => return None,
            };
            Some(BTreeMap::from([
                ("__address__".to_string(), addr),
                ("__meta_dns_name".to_string(), name.to_string()),
                ("__meta_dns_srv_record_target".to_string(), srv_target),
                ("__meta_dns_srv_record_port".to_string(), srv_port),
                ("__meta_dns_mx_record_target".to_string(), mx),
            ]))
        })
        .collect();
    TargetGroup {
        source: name.to_string(),
        targets,
        labels: BTreeMap::new(),
    }
}

/// Runs one `dns_sd_configs` entry: every refresh interval all names are
/// looked up at once and the groups sent when they changed. A name that
/// fails keeps its last good group; each lookup is counted through
/// `on_lookup(failed)` and each failure reported through `on_error`.
pub async fn run_dns_sd(
    cfg: DnsSdConfig,
    tx: watch::Sender<Vec<TargetGroup>>,
    on_lookup: impl Fn(bool) + Send + 'static,
    on_error: impl Fn(String) + Send + 'static,
) {
    let qtype = match cfg.record_type().as_str() {
        "A" => TYPE_A,
        "AAAA" => TYPE_AAAA,
        "MX" => TYPE_MX,
        _ => TYPE_SRV,
    };
    let mut last: BTreeMap<String, TargetGroup> = BTreeMap::new();
    let mut first = true;
    loop {
        let started = tokio::time::Instant::now();
        match ResolvConf::load() {
            Ok(conf) => {
                let results = futures_util::future::join_all(
                    cfg.names.iter().map(|n| lookup(&conf, n, qtype)),
                )
                .await;
                for (n, r) in cfg.names.iter().zip(results) {
                    on_lookup(r.is_err());
                    match r {
                        Ok(records) => {
                            last.insert(n.clone(), name_group(n, &records, cfg.port));
                        }
                        Err(e) => on_error(e),
                    }
                }
            }
            Err(e) => on_error(e),
        }
        let groups: Vec<TargetGroup> = last.values().cloned().collect();
        if (first || *tx.borrow() != groups) && tx.send(groups).is_err() {
            return;
        }
        first = false;
        tokio::time::sleep_until(started + cfg.refresh().0).await;
        if tx.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_and_search_order_as_go_reads_them() {
        let c = ResolvConf::parse(
            "# comment\nnameserver 10.0.0.2\nnameserver 127.0.0.1:5353\nnameserver ::1\nsearch a.example b.example\noptions ndots:2 timeout:1\n",
        );
        assert_eq!(
            c.servers,
            vec![
                "10.0.0.2:53".parse().unwrap(),
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(c.ndots, 2);
        assert_eq!(
            c.name_list("web"),
            vec!["web.a.example.", "web.b.example.", "web."]
        );
        assert_eq!(
            c.name_list("x.y.z"),
            vec!["x.y.z.", "x.y.z.a.example.", "x.y.z.b.example."]
        );
        assert_eq!(c.name_list("abs.example."), vec!["abs.example."]);
    }

    #[test]
    fn answers_decode_and_damage_is_an_error() {
        // A response to a SRV query with a compressed target name.
        let mut m = query(7, "_web._tcp.example.", TYPE_SRV).unwrap();
        m.truncate(m.len() - 11); // drop the OPT record
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 1; // one answer
        m[11] = 0; // no additional
        m.extend_from_slice(&[0xc0, 12]); // name: pointer to the question
        m.extend_from_slice(&TYPE_SRV.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        let rdata = [
            0, 10, 0, 5, 0x1f, 0x90, // priority, weight, port 8080
            4, b'h', b'o', b's', b't', 0xc0, 22, // "host." then ".example."
        ];
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
        let a = parse_answer(&m, 7).unwrap();
        assert_eq!(a.records, vec![Record::Srv("host.example.".into(), 8080)]);
        let g = name_group("_web._tcp.example", &a.records, 0);
        assert_eq!(g.targets[0]["__address__"], "host.example:8080");
        assert_eq!(
            g.targets[0]["__meta_dns_srv_record_target"],
            "host.example."
        );
        assert!(parse_answer(&m, 8).is_err());
        // Every cut of the message is an error or a shorter answer, never
        // a panic; a pointer forward is refused.
        for n in 0..m.len() {
            let _ = parse_answer(&m[..n], 7);
        }
        let mut fwd = m.clone();
        let at = fwd.len() - 1;
        fwd[at] = 0xff;
        assert!(parse_answer(&fwd, 7).is_err());
    }
}
