//! Alarm webhooks: every alarm change is POSTed as JSON to each configured `http://` URL, retried
//! with exponential backoff (1, 2, 4, 8, 16 s) and then given up and logged. A bounded queue keeps
//! a dead receiver from growing memory: when it is full, new notifications are dropped and logged.
//! Plain HTTP only: the receivers are on the factory network (a TLS client is a later addition).

use std::time::Duration;

use model::alarm::Alarm;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

/// How many notifications may wait per webhook.
const QUEUE: usize = 1024;
/// Attempts per notification.
const ATTEMPTS: u32 = 5;

/// A parsed `http://host:port/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or address.
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Parses a webhook URL; only `http://` is supported.
pub fn parse_url(url: &str) -> Result<HttpUrl, String> {
    let rest =
        url.strip_prefix("http://").ok_or_else(|| format!("{url:?}: only http:// webhooks are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().map_err(|_| format!("{url:?}: bad port"))?),
        None => (authority, 80),
    };
    if host.is_empty() || host.contains(['@', ' ']) {
        return Err(format!("{url:?}: bad host"));
    }
    Ok(HttpUrl { host: host.to_string(), port, path: path.to_string() })
}

/// Queues notifications for the webhook tasks.
#[derive(Clone)]
pub(crate) struct Sender {
    queues: Vec<(String, mpsc::Sender<Vec<u8>>)>,
}

impl Sender {
    /// Queues `alarm` for every webhook without waiting.
    pub(crate) fn send(&self, alarm: &Alarm) {
        let Ok(body) = serde_json::to_vec(alarm) else { return };
        for (url, queue) in &self.queues {
            if queue.try_send(body.clone()).is_err() {
                tracing::warn!(%url, alarm = alarm.id, "webhook queue full; notification dropped");
            }
        }
    }
}

/// Starts one delivery task per URL (invalid URLs were rejected at start-up).
pub(crate) fn spawn(urls: Vec<String>, stop: watch::Receiver<bool>) -> Sender {
    let mut queues = Vec::new();
    for url in urls {
        let Ok(target) = parse_url(&url) else { continue };
        let (sender, mut receiver) = mpsc::channel::<Vec<u8>>(QUEUE);
        let mut stop = stop.clone();
        let name = url.clone();
        tokio::spawn(async move {
            loop {
                let body = tokio::select! {
                    body = receiver.recv() => match body { Some(body) => body, None => return },
                    _ = stop.changed() => return,
                };
                deliver(&name, &target, &body).await;
            }
        });
        queues.push((url, sender));
    }
    Sender { queues }
}

async fn deliver(name: &str, target: &HttpUrl, body: &[u8]) {
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        match post(target, body).await {
            Ok(status) if (200..300).contains(&status) => return,
            Ok(status) => tracing::warn!(url = %name, attempt, status, "webhook refused the alarm"),
            Err(error) => tracing::warn!(url = %name, attempt, %error, "webhook unreachable"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    tracing::error!(url = %name, "webhook gave up after {ATTEMPTS} attempts");
}

/// One POST; returns the response status.
pub async fn post(target: &HttpUrl, body: &[u8]) -> std::io::Result<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
        stream.set_nodelay(true)?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: microfactory\r\n\r\n",
            target.path,
            target.host,
            target.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut response = [0u8; 64];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut response[read..]).await?;
            if n == 0 {
                break;
            }
            read += n;
        }
        let line = String::from_utf8_lossy(&response[..read]);
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other("no HTTP status line"))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| std::io::Error::other("timed out"))?
}
