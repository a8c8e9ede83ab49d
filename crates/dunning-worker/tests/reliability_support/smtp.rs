//! A scripted SMTP server on loopback (plain TCP, no TLS) whose answers depend on the
//! recipient, so one server can refuse some messages and accept the rest:
//!
//! - `rcpt421@…`: `421` and the connection is closed (server shutting down)
//! - `rcpt450@…`: `450` (mailbox busy, greylisted)
//! - `rcpt550@…`: `550` (no such user)
//! - `dropdata@…`: the connection is cut after the message data, before the reply
//! - anything else: accepted and kept
//!
//! It offers AUTH PLAIN and LOGIN and records the credentials it was given, so the
//! secrets test can prove the password really went over the wire.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Log {
    /// (recipients, raw message) of accepted messages.
    pub accepted: Vec<(Vec<String>, String)>,
    /// Decoded AUTH payloads.
    pub auth: Vec<String>,
    /// Every command line received.
    pub commands: Vec<String>,
}

pub struct ScriptedSmtp {
    pub port: u16,
    pub log: Arc<Mutex<Log>>,
}

impl ScriptedSmtp {
    pub fn start() -> ScriptedSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Log::default()));
        let l = Arc::clone(&log);
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { continue };
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    let _ = serve(s, &l);
                });
            }
        });
        ScriptedSmtp { port, log }
    }

    pub fn accepted(&self) -> Vec<(Vec<String>, String)> {
        self.log.lock().unwrap().accepted.clone()
    }

    /// Environment for a worker sending through this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("MAIL_MAILER", "smtp".into()),
            ("MAIL_HOST", "127.0.0.1".into()),
            ("MAIL_PORT", self.port.to_string()),
            ("MAIL_ENCRYPTION", "none".into()),
            ("MAIL_FROM_ADDRESS", "noreply@wikarta.com".into()),
            ("MAIL_TIMEOUT", "5".into()),
        ]
    }
}

fn b64decode(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0);
    for c in s.trim().bytes() {
        let Some(v) = T.iter().position(|&t| t == c) else {
            continue;
        };
        buf = (buf << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(stream: TcpStream, log: &Mutex<Log>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    w.write_all(b"220 scripted ESMTP\r\n")?;
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_owned();
        log.lock().unwrap().commands.push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            w.write_all(
                b"250-scripted\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            )?;
        } else if upper.starts_with("HELO") {
            w.write_all(b"250 scripted\r\n")?;
        } else if upper.starts_with("AUTH PLAIN") {
            let payload = cmd[10..].trim().to_owned();
            let payload = if payload.is_empty() {
                w.write_all(b"334 \r\n")?;
                let mut p = String::new();
                r.read_line(&mut p)?;
                p
            } else {
                payload
            };
            log.lock().unwrap().auth.push(b64decode(&payload));
            w.write_all(b"235 2.7.0 ok\r\n")?;
        } else if upper.starts_with("AUTH LOGIN") {
            w.write_all(b"334 VXNlcm5hbWU6\r\n")?;
            let mut u = String::new();
            r.read_line(&mut u)?;
            w.write_all(b"334 UGFzc3dvcmQ6\r\n")?;
            let mut p = String::new();
            r.read_line(&mut p)?;
            log.lock()
                .unwrap()
                .auth
                .push(format!("{}\0{}", b64decode(&u), b64decode(&p)));
            w.write_all(b"235 2.7.0 ok\r\n")?;
        } else if upper.starts_with("MAIL FROM") {
            rcpts.clear();
            w.write_all(b"250 ok\r\n")?;
        } else if upper.starts_with("RCPT TO") {
            let addr = cmd[8..]
                .trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or("")
                .to_owned();
            if addr.starts_with("rcpt421@") {
                w.write_all(b"421 4.3.2 service shutting down\r\n")?;
                return Ok(());
            } else if addr.starts_with("rcpt450@") {
                w.write_all(b"450 4.2.0 mailbox busy, try later\r\n")?;
            } else if addr.starts_with("rcpt550@") {
                w.write_all(b"550 5.1.1 no such user\r\n")?;
            } else {
                rcpts.push(addr);
                w.write_all(b"250 ok\r\n")?;
            }
        } else if upper == "DATA" {
            w.write_all(b"354 go ahead\r\n")?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l)? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" || l == ".\n" {
                    break;
                }
                data.push_str(&l);
            }
            if rcpts.iter().any(|a| a.starts_with("dropdata@")) {
                // Cut the connection mid-transaction: no reply to the data.
                let _ = w.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
            log.lock().unwrap().accepted.push((rcpts.clone(), data));
            w.write_all(b"250 2.0.0 queued\r\n")?;
        } else if upper == "RSET" || upper == "NOOP" {
            w.write_all(b"250 ok\r\n")?;
        } else if upper == "QUIT" {
            w.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            w.write_all(b"502 5.5.2 not implemented\r\n")?;
        }
    }
}
