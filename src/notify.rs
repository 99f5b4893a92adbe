//! Channels that reach a person: ntfy, Gotify and e-mail over SMTP, each written as one
//! URL (the form `coachd notify set` takes, sealed in the store because it holds a token
//! or a password):
//!
//! | URL | sends |
//! |---|---|
//! | `ntfy://HOST[:PORT]/TOPIC[?token=tk_...]` (`ntfy://USER:PASS@...` for Basic) | `POST https://HOST/TOPIC`, headers `Title`, `Click`, `Actions`, `Authorization` |
//! | `gotify://HOST[:PORT][/PATH]?token=APPTOKEN[&priority=N]` | `POST https://HOST/PATH/message`, JSON, `X-Gotify-Key` |
//! | `smtp://[USER:PASS@]HOST[:PORT]?to=ADDR[,ADDR]&from=ADDR[&tls=starttls\|tls\|none]` | e-mail (STARTTLS on 587 by default; `tls` implicit TLS on 465; `none` only to a loopback host) |
//! | `smtps://...` | `smtp://...&tls=tls` |
//!
//! `&ca=/PATH/ca.pem` makes an e-mail channel trust that CA instead of the public roots.
//!
//! `ntfy+http://` and `gotify+http://` speak plain HTTP (a server on the home network, a
//! test's stand-in). A send either succeeds or returns a [`SendError`] in words a trainer
//! can act on; the caller (the application's outbox) decides about retries. Every send
//! has a time limit, so a channel that hangs never holds up the daemon.

use crate::crypto::Secret;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::fmt;
use std::time::Duration;

/// How long one send may take (connect, TLS, AUTH, the body).
pub const SEND_LIMIT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Plain connection upgraded with STARTTLS (required, never skipped).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No encryption: only to a loopback address.
    None,
}

/// A parsed channel URL. `Debug` hides the secrets.
#[derive(Clone)]
pub enum Channel {
    Ntfy {
        url: url::Url,
        token: Option<Secret<String>>,
        basic: Option<(String, Secret<String>)>,
    },
    Gotify {
        url: url::Url,
        token: Secret<String>,
        priority: u8,
    },
    Smtp {
        host: String,
        port: u16,
        tls: Tls,
        login: Option<(String, Secret<String>)>,
        from: Mailbox,
        to: Vec<Mailbox>,
        /// A PEM file of the CA to trust instead of the public roots (a server with a
        /// certificate of the home network's own CA).
        ca: Option<std::path::PathBuf>,
    },
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({})", self.shown())
    }
}

/// A button in a message: a link, and whether tapping it should POST at once (ntfy's
/// `http` action) rather than open a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub label: String,
    pub url: String,
    pub post: bool,
}

/// One message, as every channel can carry it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub title: String,
    /// Plain text; links are spelled out in it for channels without buttons.
    pub body: String,
    /// Opened when the notification itself is tapped.
    pub click: Option<String>,
    /// Up to three buttons (ntfy's limit).
    pub actions: Vec<Action>,
    /// An HTML alternative for e-mail (the plain text goes along).
    pub html: Option<String>,
    /// Inline images for the HTML part: (content id, PNG bytes).
    pub images: Vec<(String, Vec<u8>)>,
}

/// A send that did not go through, in words for the channel's status line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

fn loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn query(u: &url::Url, key: &str) -> Option<String> {
    u.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned()).filter(|v| !v.is_empty())
}

fn mailboxes(list: &str, what: &str) -> Result<Vec<Mailbox>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| a.parse::<Mailbox>().map_err(|e| format!("{what} {a:?} is not an e-mail address: {e}")))
        .collect()
}

impl Channel {
    /// Parse a channel URL; the error says what to write instead.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let u = url::Url::parse(text).map_err(|e| {
            format!(
                "{:?} is not a channel URL ({e}): write ntfy://HOST/TOPIC?token=..., gotify://HOST?token=... or \
                 smtp://USER:PASS@HOST:587?to=ADDR&from=ADDR",
                shown_url(text)
            )
        })?;
        let host =
            u.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("{} names no host", shown_url(text)))?;
        let login = (!u.username().is_empty())
            .then(|| (decode(u.username()), Secret::new(decode(u.password().unwrap_or_default()))));
        let http_base = |secure: bool| -> Result<url::Url, String> {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let scheme = if secure { "https" } else { "http" };
            url::Url::parse(&format!("{scheme}://{host}{port}{}", u.path()))
                .map_err(|e| format!("{} does not make an HTTP address: {e}", shown_url(text)))
        };
        match u.scheme() {
            s @ ("ntfy" | "ntfy+http" | "ntfy+https") => {
                let url = http_base(s != "ntfy+http")?;
                let topic = url.path().trim_matches('/');
                if topic.is_empty() || topic.contains(['?', '#', ' ']) {
                    return Err(format!("{} names no topic: write ntfy://HOST/TOPIC", shown_url(text)));
                }
                Ok(Self::Ntfy { url, token: query(&u, "token").map(Secret::new), basic: login })
            }
            s @ ("gotify" | "gotify+http" | "gotify+https") => {
                let mut url = http_base(s != "gotify+http")?;
                let path = format!("{}/message", url.path().trim_end_matches('/'));
                url.set_path(&path);
                let token = query(&u, "token").ok_or_else(|| {
                    format!("{} has no token: add ?token=APPTOKEN (a Gotify application's)", shown_url(text))
                })?;
                let priority = match query(&u, "priority") {
                    None => 5,
                    Some(p) => p
                        .parse::<u8>()
                        .ok()
                        .filter(|p| *p <= 10)
                        .ok_or_else(|| format!("priority {p:?} must be a number from 0 to 10"))?,
                };
                Ok(Self::Gotify { url, token: Secret::new(token), priority })
            }
            s @ ("smtp" | "smtps") => {
                let tls = match (s, query(&u, "tls").as_deref()) {
                    ("smtps", None | Some("tls")) | ("smtp", Some("tls")) => Tls::Implicit,
                    ("smtp", None | Some("starttls")) => Tls::StartTls,
                    ("smtp", Some("none")) => Tls::None,
                    (_, Some(other)) => {
                        return Err(format!("tls={other:?}: write tls=starttls (port 587), tls=tls (465) or tls=none"))
                    }
                    _ => Tls::StartTls,
                };
                if tls == Tls::None && !loopback(host) {
                    return Err(format!(
                        "tls=none sends the password and the mail in the clear; it is only allowed to a server on this \
                         machine (127.0.0.1, localhost), not {host}: use tls=starttls or tls=tls"
                    ));
                }
                let port = u.port().unwrap_or(match tls {
                    Tls::Implicit => 465,
                    Tls::StartTls => 587,
                    Tls::None => 25,
                });
                let to = mailboxes(&query(&u, "to").unwrap_or_default(), "to")?;
                if to.is_empty() {
                    return Err(format!("{} has no recipient: add ?to=ADDRESS", shown_url(text)));
                }
                let from = match query(&u, "from") {
                    Some(f) => mailboxes(&f, "from")?.into_iter().next().ok_or("from= is empty")?,
                    None => match &login {
                        Some((user, _)) if user.contains('@') => mailboxes(user, "the login")?.remove(0),
                        _ => return Err(format!("{} has no sender: add &from=ADDRESS", shown_url(text))),
                    },
                };
                let ca = query(&u, "ca").map(std::path::PathBuf::from);
                if ca.as_ref().is_some_and(|p| !p.is_absolute()) {
                    return Err("ca= must be an absolute path to a PEM file".into());
                }
                if ca.is_some() && tls == Tls::None {
                    return Err("ca= is for a TLS connection; it makes no sense with tls=none".into());
                }
                Ok(Self::Smtp { host: host.to_string(), port, tls, login, from, to, ca })
            }
            other => {
                Err(format!("{other}:// is not a channel coachd knows: use ntfy://, gotify://, smtp:// or smtps://"))
            }
        }
    }

    /// `ntfy`, `gotify` or `smtp`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ntfy { .. } => "ntfy",
            Self::Gotify { .. } => "gotify",
            Self::Smtp { .. } => "smtp",
        }
    }

    /// The channel without its secrets, for lists, pages and logs.
    pub fn shown(&self) -> String {
        match self {
            Self::Ntfy { url, token, basic } => {
                let who = basic.as_ref().map(|(u, _)| format!(" (as {u})")).unwrap_or_default();
                let tok = if token.is_some() { " with a token" } else { "" };
                format!("ntfy {url}{tok}{who}")
            }
            Self::Gotify { url, .. } => format!("gotify {url}"),
            Self::Smtp { host, port, tls, login, to, ca, .. } => {
                let to: Vec<String> = to.iter().map(ToString::to_string).collect();
                let tls = match tls {
                    Tls::StartTls => "STARTTLS",
                    Tls::Implicit => "TLS",
                    Tls::None => "no TLS",
                };
                let who = login.as_ref().map(|(u, _)| format!(", login {u}")).unwrap_or_default();
                let ca = ca.as_ref().map(|p| format!(", CA {}", p.display())).unwrap_or_default();
                format!("e-mail to {} via {host}:{port} ({tls}{who}{ca})", to.join(", "))
            }
        }
    }

    /// Send one message; within [`SEND_LIMIT`].
    pub async fn send(&self, http: &reqwest::Client, m: &Message) -> Result<(), SendError> {
        match tokio::time::timeout(SEND_LIMIT, self.send_now(http, m)).await {
            Ok(r) => r,
            Err(_) => Err(SendError(format!("{} did not answer within {} s", self.kind(), SEND_LIMIT.as_secs()))),
        }
    }

    async fn send_now(&self, http: &reqwest::Client, m: &Message) -> Result<(), SendError> {
        match self {
            Self::Ntfy { url, token, basic } => {
                // With an image (a digest's chart), ntfy's attachment upload: the file as the
                // body of a PUT, the text in the `Message` header (`\n` for new lines).
                let mut req = match m.images.first() {
                    Some((id, png)) => http
                        .put(url.clone())
                        .header("Filename", header_text(&format!("{id}.png")))
                        .header("Message", header_text(&ntfy_message(&m.body)))
                        .body(png.clone()),
                    None => http.post(url.clone()).body(m.body.clone()),
                }
                .header("Title", header_text(&m.title));
                if let Some(click) = &m.click {
                    req = req.header("Click", header_text(click));
                }
                if !m.actions.is_empty() {
                    req = req.header("Actions", header_text(&ntfy_actions(&m.actions)));
                }
                req = match (token, basic) {
                    (Some(t), _) => req.bearer_auth(t.expose()),
                    (None, Some((u, p))) => req.basic_auth(u, Some(p.expose())),
                    (None, None) => req,
                };
                answer("ntfy", req.send().await).await
            }
            Self::Gotify { url, token, priority } => {
                let mut extras = serde_json::json!({"client::display": {"contentType": "text/plain"}});
                if let Some(click) = &m.click {
                    extras["client::notification"] = serde_json::json!({"click": {"url": click}});
                }
                let body = serde_json::json!({
                    "title": m.title, "message": m.body, "priority": priority, "extras": extras,
                });
                let req = http.post(url.clone()).header("X-Gotify-Key", token.expose()).json(&body);
                answer("gotify", req.send().await).await
            }
            Self::Smtp { host, port, tls, login, from, to, ca } => {
                smtp(Server { host, port: *port, tls: *tls, ca: ca.as_deref() }, login, from, to, m).await
            }
        }
    }
}

/// A URL as the user typed it, with anything after `:` in the login and any `token=`
/// value hidden (for error messages).
fn shown_url(text: &str) -> String {
    let mut s = text.to_string();
    if let Some(at) = s.find('@') {
        if let Some(colon) = s[..at].rfind(':').filter(|c| !s[c + 1..].starts_with('/')) {
            s.replace_range(colon + 1..at, "***");
        }
    }
    if let Some(i) = s.find("token=") {
        let end = s[i..].find('&').map_or(s.len(), |j| i + j);
        s.replace_range(i + 6..end, "***");
    }
    s
}

/// A header value from text: control characters dropped (they would split the header).
fn header_text(s: &str) -> reqwest::header::HeaderValue {
    let clean: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    reqwest::header::HeaderValue::from_bytes(clean.as_bytes())
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""))
}

/// ntfy's limit on a message's text, in bytes.
const NTFY_MESSAGE_MAX: usize = 4096;

/// A message's text for ntfy's `Message` header: new lines as `\n`, cut to ntfy's
/// limit at a character boundary (the e-mail digest and the dashboard have the rest).
fn ntfy_message(body: &str) -> String {
    let text = body.replace('\n', "\\n");
    if text.len() <= NTFY_MESSAGE_MAX {
        return text;
    }
    let mut cut = NTFY_MESSAGE_MAX - 3;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

/// ntfy's `Actions` header: `http, Done, URL, method=POST, clear=true; view, Label, URL`.
fn ntfy_actions(actions: &[Action]) -> String {
    actions
        .iter()
        .take(3)
        .map(|a| {
            let label = a.label.replace([',', ';', '"'], " ");
            if a.post {
                format!("http, {label}, {}, method=POST, clear=true", a.url)
            } else {
                format!("view, {label}, {}", a.url)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An HTTP answer in words: 2xx is sent; otherwise the status and what the server said.
async fn answer(what: &str, r: Result<reqwest::Response, reqwest::Error>) -> Result<(), SendError> {
    let r = r.map_err(|e| {
        let why = if e.is_connect() {
            "could not connect (is the host name right and the server up?)"
        } else if e.is_timeout() {
            "timed out"
        } else {
            "failed"
        };
        SendError(format!("{what}: {why}: {}", error_chain(&e)))
    })?;
    let status = r.status();
    if status.is_success() {
        return Ok(());
    }
    let body = r.text().await.unwrap_or_default();
    // ntfy: {"code":40101,"http":401,"error":"unauthorized"}; Gotify: {"error":"Unauthorized",
    // "errorCode":401,"errorDescription":"you need to provide a valid access token ..."}.
    let said = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("errorDescription").or_else(|| v.get("error")).and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect());
    let hint = match status.as_u16() {
        401 | 403 => ": the token or password was refused; set the channel again with a valid one",
        404 => ": no such topic or path on that server",
        429 => ": the server is rate-limiting; coachd tries again later",
        500..=599 => ": the server failed; coachd tries again later",
        _ => "",
    };
    Err(SendError(format!("{what} answered {status} {}{hint}", said.trim())))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

/// Where an e-mail goes.
struct Server<'a> {
    host: &'a str,
    port: u16,
    tls: Tls,
    ca: Option<&'a std::path::Path>,
}

async fn smtp(
    server: Server<'_>,
    login: &Option<(String, Secret<String>)>,
    from: &Mailbox,
    to: &[Mailbox],
    m: &Message,
) -> Result<(), SendError> {
    use lettre::transport::smtp::client::{Certificate, Tls as Mode, TlsParameters};
    let Server { host, port, tls, ca } = server;
    let err = |what: &str, e: &dyn std::error::Error| SendError(format!("e-mail: {what}: {}", error_chain(e)));
    let builder = match (tls, ca) {
        (Tls::None, _) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        (Tls::StartTls, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(|e| err("setting up STARTTLS", &e))?
        }
        (Tls::Implicit, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| err("setting up TLS", &e))?
        }
        (mode, Some(ca)) => {
            let pem =
                tokio::fs::read(ca).await.map_err(|e| err(&format!("reading the CA file {}", ca.display()), &e))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| err(&format!("the CA file {}", ca.display()), &e))?;
            let params = TlsParameters::builder(host.to_string())
                .add_root_certificate(cert)
                .build_rustls()
                .map_err(|e| err("setting up TLS", &e))?;
            let mode = if mode == Tls::Implicit { Mode::Wrapper(params) } else { Mode::Required(params) };
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(mode)
        }
    };
    let mut builder = builder.port(port).timeout(Some(SEND_LIMIT));
    if let Some((user, pass)) = login {
        builder = builder.credentials(Credentials::new(user.clone(), pass.expose().clone()));
    }
    let transport = builder.build();
    let mut mail = lettre::Message::builder().from(from.clone()).subject(m.title.clone());
    for t in to {
        mail = mail.to(t.clone());
    }
    let text = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(m.body.clone());
    let body = match &m.html {
        None => MultiPart::mixed().singlepart(text),
        Some(html) => {
            let html_part = SinglePart::builder().header(ContentType::TEXT_HTML).body(html.clone());
            let mut related = MultiPart::related().singlepart(html_part);
            for (cid, png) in &m.images {
                let png_type = ContentType::parse("image/png").map_err(|e| err("the image type", &e))?;
                related = related
                    .singlepart(lettre::message::Attachment::new_inline(cid.clone()).body(png.clone(), png_type));
            }
            MultiPart::alternative().singlepart(text).multipart(related)
        }
    };
    let mail = mail.multipart(body).map_err(|e| err("building the message", &e))?;
    match transport.send(mail).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let code = e.status().map(|c| format!(" ({c})")).unwrap_or_default();
            let words = e.to_string().to_ascii_lowercase();
            let hint = if words.contains("no compatible authentication mechanism") {
                ": the server offers no login on this connection (does it want tls=starttls or tls=tls?)"
            } else if e.status().is_some_and(|c| c.to_string().starts_with("535")) || words.contains("credentials") {
                ": the login was refused; set the channel again with the right user and password"
            } else if words.contains("certificate") {
                ": the server's certificate is not trusted (add &ca=/PATH/ca.pem for a CA of your own)"
            } else if e.is_permanent() {
                ": the server refused it"
            } else {
                ""
            };
            Err(SendError(format!("e-mail via {host}:{port}{code}: {}{hint}", error_chain(&e))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_urls_are_read_and_shown_without_their_secrets() {
        let c = Channel::parse("ntfy://ntfy.example.org/alex-pushups?token=tk_secret").expect("ntfy");
        assert_eq!(c.kind(), "ntfy");
        assert_eq!(c.shown(), "ntfy https://ntfy.example.org/alex-pushups with a token");
        assert!(!format!("{c:?}").contains("tk_secret"));
        let c = Channel::parse("ntfy+http://127.0.0.1:8080/t").expect("plain ntfy");
        assert!(c.shown().contains("http://127.0.0.1:8080/t"));
        let c = Channel::parse("gotify://push.example.org/gotify?token=AbC&priority=8").expect("gotify");
        assert_eq!(c.shown(), "gotify https://push.example.org/gotify/message");
        let c = Channel::parse("smtp://coach%40example.org:p%40ss@mail.example.org?to=sam@example.org").expect("smtp");
        match &c {
            Channel::Smtp { port, tls, login, from, .. } => {
                assert_eq!((*port, *tls), (587, Tls::StartTls));
                assert_eq!(
                    login.as_ref().map(|(u, p)| (u.as_str(), p.expose().as_str())),
                    Some(("coach@example.org", "p@ss"))
                );
                assert_eq!(from.email.to_string(), "coach@example.org");
            }
            other => panic!("{other:?}"),
        }
        assert!(!c.shown().contains("p@ss"));
        let c = Channel::parse("smtps://u:p@mail.example.org?to=a@b.org&from=c@d.org").expect("smtps");
        assert!(matches!(c, Channel::Smtp { port: 465, tls: Tls::Implicit, .. }));
    }

    #[test]
    fn unusable_channel_urls_are_refused_with_what_to_write() {
        for (url, needle) in [
            ("http://example.org/x", "not a channel coachd knows"),
            ("ntfy://example.org/", "names no topic"),
            ("gotify://example.org", "has no token"),
            ("smtp://mail.example.org?from=a@b.org", "has no recipient"),
            ("smtp://mail.example.org?to=a@b.org", "has no sender"),
            (
                "smtp://u:pw@mail.example.org?to=a@b.org&from=c@d.org&tls=none",
                "only allowed to a server on this machine",
            ),
            ("smtp://mail.example.org?to=not-an-address&from=c@d.org", "not an e-mail address"),
            ("nonsense", "not a channel URL"),
        ] {
            let e = Channel::parse(url).expect_err(url);
            assert!(e.contains(needle), "{url}: {e}");
        }
        let e = Channel::parse("ntfy//u:hunter2@x?token=tk_1").expect_err("no scheme");
        assert!(!e.contains("hunter2") && !e.contains("tk_1"), "{e}");
        assert!(Channel::parse("smtp://127.0.0.1:2525?to=a@b.org&from=c@d.org&tls=none").is_ok());
    }

    #[test]
    fn an_ntfy_message_header_keeps_its_lines_and_its_limit() {
        assert_eq!(ntfy_message("a\nb"), "a\\nb");
        let long = "é".repeat(3000);
        let m = ntfy_message(&long);
        assert!(m.len() <= NTFY_MESSAGE_MAX && m.ends_with("..."), "{}", m.len());
    }

    #[test]
    fn ntfy_buttons_follow_its_actions_syntax() {
        let a = ntfy_actions(&[
            Action { label: "Done".into(), url: "https://x/n/1".into(), post: true },
            Action { label: "I did, some".into(), url: "https://x/n/2".into(), post: false },
        ]);
        assert_eq!(a, "http, Done, https://x/n/1, method=POST, clear=true; view, I did  some, https://x/n/2");
    }
}
