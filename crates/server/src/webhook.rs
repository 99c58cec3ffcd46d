//! Alarm webhooks: every alarm change is POSTed as JSON to each configured `http://` URL, retried
//! with exponential backoff (1, 2, 4, 8, 16 s) and then given up and logged. A bounded queue keeps
//! a dead receiver from growing memory: when it is full, new notifications are dropped and logged.
//! Plain HTTP only: the receivers are on the factory network (a TLS client is a later addition);
//! signing makes up for authenticity, not for secrecy.
//! With `alarms.webhook_secret` each POST carries `X-Microfactory-Timestamp` (Unix seconds) and
//! `X-Microfactory-Signature: sha256=<hex>`, the HMAC-SHA256 (RFC 2104) of `"{timestamp}.{body}"`
//! under the secret: a receiver recomputes it to know the notification is the platform's and
//! checks the timestamp against replays.

use std::sync::Arc;
use std::time::Duration;

use model::alarm::Alarm;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::metrics::{Metrics, WebhookOutcome};

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

/// A webhook URL as logs and errors show it: without its query, which may carry a key (shown as
/// `?…`), and without a user name and password.
pub fn shown_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((before, _)) => (before, "?…"),
        None => (url, ""),
    };
    let (scheme, rest) = before_query.split_once("://").map_or(("", before_query), |(s, r)| (s, r));
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let scheme = if scheme.is_empty() { String::new() } else { format!("{scheme}://") };
    format!("{scheme}{host}{path}{query}")
}

/// Parses a webhook URL; only `http://` is supported.
pub fn parse_url(url: &str) -> Result<HttpUrl, String> {
    let shown = shown_url(url);
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{shown:?}: only http:// webhooks are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(format!(
            "{shown:?}: a user name or password in a webhook URL is not supported; receivers check alarms.webhook_secret's signature instead"
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().map_err(|_| format!("{shown:?}: bad port"))?),
        None => (authority, 80),
    };
    if host.is_empty() || host.contains(' ') {
        return Err(format!("{shown:?}: bad host"));
    }
    Ok(HttpUrl { host: host.to_string(), port, path: path.to_string() })
}

/// What a webhook task is sent: the alarm's id (for the log) and the notification's body.
type Queued = (i64, Vec<u8>);

/// Queues notifications for the webhook tasks.
#[derive(Clone)]
pub(crate) struct Sender {
    queues: Vec<(String, mpsc::Sender<Queued>)>,
    metrics: Arc<Metrics>,
    /// When a full queue was last logged: in a storm, once a minute, not once per alarm.
    full_logged: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Sender {
    /// Queues `alarm` for every webhook without waiting.
    pub(crate) fn send(&self, alarm: &Alarm) {
        let Ok(body) = serde_json::to_vec(alarm) else { return };
        for (url, queue) in &self.queues {
            if queue.try_send((alarm.id, body.clone())).is_err() {
                self.metrics.count_webhook(WebhookOutcome::Dropped);
                let mut logged = self.full_logged.lock().unwrap_or_else(|p| p.into_inner());
                if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    *logged = Some(std::time::Instant::now());
                    tracing::warn!(
                        %url,
                        alarm = alarm.id,
                        "webhook queue full; notifications dropped (counted in microfactory_webhook_notifications_total, logged at most once a minute)"
                    );
                }
            }
        }
    }
}

/// The secret webhooks are signed with; shown and written as `***` (`Debug`, `Serialize`), so it
/// never reaches a log or a dump of the settings.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// Characters in it.
    pub fn len(&self) -> usize {
        self.0.chars().count()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
pub fn signature(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mac = hmac_sha256(secret.0.as_bytes(), &[timestamp.to_string().as_bytes(), b".", body]);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// HMAC-SHA256 (RFC 2104) of the concatenated `parts` under `key`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Starts one delivery task per URL (invalid URLs were rejected at start-up).
pub(crate) fn spawn(
    urls: Vec<String>,
    secret: Option<Secret>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Sender {
    let mut queues = Vec::new();
    for url in urls {
        let Ok(target) = parse_url(&url) else { continue };
        let (sender, mut receiver) = mpsc::channel::<Queued>(QUEUE);
        let mut stop = stop.clone();
        let name = shown_url(&url);
        let shown = name.clone();
        let secret = secret.clone();
        let counted = metrics.clone();
        tokio::spawn(async move {
            loop {
                let (alarm, body) = tokio::select! {
                    queued = receiver.recv() => match queued { Some(queued) => queued, None => return },
                    _ = stop.changed() => return,
                };
                let delivered = deliver(&name, alarm, &target, &body, secret.as_ref()).await;
                counted.count_webhook(if delivered {
                    WebhookOutcome::Delivered
                } else {
                    WebhookOutcome::GivenUp
                });
            }
        });
        queues.push((shown, sender));
    }
    Sender { queues, metrics, full_logged: Arc::default() }
}

/// Posts one notification, retrying; whether the receiver took it.
async fn deliver(name: &str, alarm: i64, target: &HttpUrl, body: &[u8], secret: Option<&Secret>) -> bool {
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        // Signed afresh for each attempt, so a retry is not mistaken for a replay. Real time:
        // receivers compare it with their own clocks, also in the fast demo.
        let headers = match secret {
            Some(secret) => {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                format!(
                    "X-Microfactory-Timestamp: {now}\r\nX-Microfactory-Signature: {}\r\n",
                    signature(secret, now, body)
                )
            }
            None => String::new(),
        };
        match post(target, body, &headers).await {
            Ok(status) if (200..300).contains(&status) => return true,
            Ok(status) => tracing::warn!(url = %name, alarm, attempt, status, "webhook refused the alarm"),
            Err(error) => tracing::warn!(url = %name, alarm, attempt, %error, "webhook unreachable"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    tracing::error!(url = %name, alarm, "webhook gave up after {ATTEMPTS} attempts; the alarm's notification is lost");
    false
}

/// One POST with `headers` (whole `Name: value\r\n` lines) added; returns the response status.
async fn post(target: &HttpUrl, body: &[u8], headers: &str) -> std::io::Result<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
        stream.set_nodelay(true)?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: microfactory\r\n{headers}\r\n",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_url_is_shown_without_its_key_or_password() {
        assert_eq!(
            shown_url("http://erp.local:8000/hooks/alarms?key=S3cret&x=1"),
            "http://erp.local:8000/hooks/alarms?…"
        );
        assert_eq!(shown_url("http://u:pa55@erp.local/in"), "http://erp.local/in");
        assert_eq!(shown_url("https://erp.local"), "https://erp.local");
        let refused = parse_url("http://u:pa55@erp.local/in?key=S3cret").unwrap_err();
        assert!(refused.contains("a user name or password in a webhook URL is not supported"), "{refused}");
        let refused = parse_url("https://erp.local/in?key=S3cret").unwrap_err();
        assert!(refused.contains("only http://"), "{refused}");
        for refused in [refused, parse_url("http://erp.local:x/in?key=S3cret").unwrap_err()] {
            assert!(!refused.contains("S3cret") && !refused.contains("pa55"), "{refused}");
        }
        assert_eq!(parse_url("http://erp.local/in?key=S3cret").unwrap().path, "/in?key=S3cret", "sent whole");
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let hex = |bytes: [u8; 32]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        // Test case 2: a short key.
        assert_eq!(
            hex(hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than a block is hashed first.
        assert_eq!(
            hex(hmac_sha256(&[0xaa; 131], &[b"Test Using Larger Than Block-Size Key - Hash Key First"])),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn a_signature_covers_the_timestamp_and_the_body_and_hides_the_secret() {
        let secret = Secret::new("a shared webhook secret");
        let signed = signature(&secret, 1_796_090_400, b"{}");
        assert!(signed.starts_with("sha256=") && signed.len() == 7 + 64, "{signed}");
        assert_ne!(signed, signature(&secret, 1_796_090_401, b"{}"));
        assert_ne!(signed, signature(&secret, 1_796_090_400, b"{ }"));
        assert_eq!(format!("{secret:?}"), "***");
    }
}
