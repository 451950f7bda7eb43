//! A real SMTP server on 127.0.0.1 for tests: EHLO, STARTTLS (rustls with
//! a test certificate), AUTH PLAIN, MAIL/RCPT/DATA; it records every
//! message with how it arrived.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// One delivered message.
#[derive(Clone, Debug, Default)]
pub struct Mail {
    pub helo: String,
    pub tls: bool,
    pub auth: Option<(String, String)>,
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The server.
pub struct SmtpSink {
    pub port: u16,
    pub mails: Arc<Mutex<Vec<Mail>>>,
    /// PEM of the CA that signed the server certificate (for `ca_file`).
    pub ca_pem: String,
}

impl SmtpSink {
    /// Starts a server whose certificate is for `localhost`, offering
    /// STARTTLS.
    pub fn start() -> SmtpSink {
        SmtpSink::start_with(false)
    }

    /// Starts a server that speaks TLS from the first byte (port 465
    /// style).
    pub fn start_implicit_tls() -> SmtpSink {
        SmtpSink::start_with(true)
    }

    fn start_with(implicit: bool) -> SmtpSink {
        let (acceptor, ca_pem) = super::tls_acceptor(&["localhost"]);
        let mails = Arc::new(Mutex::new(Vec::new()));
        let m2 = mails.clone();
        let port = super::serve_connections(move |sock| {
            let (acc, mails) = (acceptor.clone(), m2.clone());
            async move {
                if implicit {
                    let Ok(tls) = acc.accept(sock).await else {
                        return;
                    };
                    let _ = session(Box::new(tls), acc, mails, true).await;
                } else {
                    let _ = session(Box::new(sock), acc, mails, false).await;
                }
            }
        });
        SmtpSink {
            port,
            mails,
            ca_pem,
        }
    }

    pub fn taken(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

async fn session(
    io: Box<dyn Io>,
    acceptor: tokio_rustls::TlsAcceptor,
    mails: Arc<Mutex<Vec<Mail>>>,
    tls: bool,
) -> std::io::Result<()> {
    let mut r = BufReader::new(io);
    let mut mail = Mail {
        tls,
        ..Mail::default()
    };
    r.get_mut().write_all(b"220 sink.test ESMTP\r\n").await?;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            mail.helo = cmd[4..].trim().to_string();
            if mail.tls {
                "250-sink.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n".into()
            } else {
                "250-sink.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n".into()
            }
        } else if upper == "STARTTLS" {
            r.get_mut().write_all(b"220 go ahead\r\n").await?;
            let plain = r.into_inner();
            let tls = acceptor.accept(plain).await?;
            r = BufReader::new(Box::new(tls));
            mail.tls = true;
            continue;
        } else if let Some(rest) = upper.strip_prefix("AUTH PLAIN ") {
            let raw =
                argus::model::base64_decode(&cmd[cmd.len() - rest.len()..]).unwrap_or_default();
            let parts: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            mail.auth = Some((
                parts.get(1).cloned().unwrap_or_default(),
                parts.get(2).cloned().unwrap_or_default(),
            ));
            "235 ok\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = cmd[10..]
                .trim()
                .trim_matches(|c| c == '<' || c == '>')
                .split('>')
                .next()
                .unwrap_or("")
                .to_string();
            "250 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(
                cmd[8..]
                    .trim()
                    .trim_matches(|c| c == '<' || c == '>')
                    .to_string(),
            );
            "250 ok\r\n".into()
        } else if upper == "DATA" {
            r.get_mut().write_all(b"354 end with .\r\n").await?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).await? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(
                    l.strip_prefix('.')
                        .filter(|_| l.starts_with(".."))
                        .unwrap_or(&l),
                );
            }
            mail.data = data;
            mails.lock().unwrap().push(mail.clone());
            mail.to.clear();
            "250 queued\r\n".into()
        } else if upper == "QUIT" {
            r.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            "250 ok\r\n".into()
        } else {
            "502 not implemented\r\n".into()
        };
        r.get_mut().write_all(reply.as_bytes()).await?;
    }
}
