//! Replaying dead-lettered HTTP requests to the agent (feature `replay`): [`HttpReplayer`] is a
//! `tower::Service<DeadLetterRecord>` over a `reqwest::Client` with rustls, for
//! [`Replay::run`](steadfast::dead_letter::Replay::run).
//!
//! Each record written by [`HttpRequestEncoder`](crate::dead_letter::HttpRequestEncoder) is sent
//! again with its **method, headers and body bytes** as stored, to its stored URL or to the same
//! path and query under another origin ([`HttpReplayerBuilder::target`]). Redaction took the
//! credentials out before the record was stored; [`Credentials`] puts them back at replay time
//! from where the operator keeps them (an environment variable, a header file), so they are
//! never stored. Stored headers still reading `[REDACTED]` are dropped rather than sent.
//! Connection headers (`host`, `content-length`, `transfer-encoding`, `connection`, ...) are
//! the client's to write: a request stored chunked goes with its body's length. A 2xx answer is
//! success; anything else keeps the record.
//!
//! A record that is not an encoded HTTP request (another encoder, say a prompt as text) is
//! POSTed as an `application/octet-stream` body to the target, which it then needs.
//!
//! ```no_run
//! use steadfast::dead_letter::Replay;
//! use steadfast_http::replay::{Credentials, HttpReplayer};
//! # async fn run(store: &dyn steadfast::dead_letter::DeadLetterSink) -> Result<(), steadfast::BoxError> {
//! let replayer = HttpReplayer::builder()
//!     .credentials(Credentials::bearer_from_env("OPENAI_API_KEY")?)
//!     .target("https://api.openai.com")?
//!     .build()?;
//! let report = Replay::new(store)
//!     .rate_per_second(5.0)?
//!     .concurrency(4)?
//!     .run(replayer, |record| Ok(record.clone()))
//!     .await?;
//! println!("{} replayed, {} failed again", report.succeeded, report.failed.len());
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use steadfast::BoxError;
use steadfast::dead_letter::DeadLetterRecord;
use tower_service::Service;

use crate::dead_letter::{REDACTED, decode_request};

/// The header naming the record being replayed, so an agent can de-duplicate.
pub const DEAD_LETTER_ID_HEADER: &str = "x-steadfast-dead-letter-id";

/// Headers the client writes itself: a stored value would contradict the body sent or the
/// connection used.
const CONNECTION_HEADERS: [HeaderName; 8] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// A replay could not be set up, or one record could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// An environment variable named for a credential is not set (or not UTF-8).
    #[error(
        "environment variable `{name}` is not set: export the credential there, or name another with --credential-env"
    )]
    MissingEnv {
        /// The variable.
        name: String,
    },
    /// A credential value cannot be an HTTP header value (a line break, a control character).
    #[error(
        "the credential for header `{header}` is not a valid header value (line break or control character?)"
    )]
    BadCredential {
        /// The header it was for.
        header: String,
    },
    /// A header name given for a credential is not a valid HTTP header name.
    #[error("`{name}` is not a valid HTTP header name")]
    BadHeaderName {
        /// The name given.
        name: String,
    },
    /// The header file could not be read.
    #[error("cannot read header file `{path}`: {source}")]
    HeaderFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line of the header file is not `Name: value`.
    #[error("header file `{path}` line {line}: expected `Name: value`")]
    HeaderLine {
        /// The file.
        path: String,
        /// Its 1-based line number (the line itself is not quoted: it may hold a secret).
        line: usize,
    },
    /// A CA certificate file could not be read or parsed.
    #[error("cannot use CA certificate `{path}`: {reason}")]
    CaCert {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The target is not an absolute http:// or https:// URL.
    #[error("`{url}` is not an http:// or https:// URL with a host")]
    BadTarget {
        /// The URL given.
        url: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The stored request has no host (it was stored with a relative URI) and no target was
    /// given.
    #[error("record {id} stored a request without a host (`{uri}`): give a target URL (--to)")]
    NoHost {
        /// The record.
        id: String,
        /// Its stored URI.
        uri: String,
    },
    /// The record is not an encoded HTTP request and no target was given to POST it to.
    #[error(
        "record {id} is not a stored HTTP request ({reason}): give a target URL (--to) to POST its bytes to"
    )]
    NotHttp {
        /// The record.
        id: String,
        /// Why it does not decode.
        reason: String,
    },
    /// The request could not be sent or its answer not read.
    #[error("sending record {id} failed: {source}")]
    Send {
        /// The record.
        id: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The agent answered, but not with a 2xx.
    #[error("the agent answered record {id} with HTTP {status}")]
    Status {
        /// The record.
        id: String,
        /// The answer's status.
        status: StatusCode,
    },
}

/// Headers put into every replayed request, replacing any stored header of the same name.
/// Values are marked sensitive and never printed by `Debug`.
#[derive(Clone, Default)]
pub struct Credentials {
    headers: HeaderMap,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("headers", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// No credentials.
    pub fn new() -> Self {
        Credentials::default()
    }

    /// `Authorization: Bearer <value of the variable>`.
    pub fn bearer_from_env(variable: &str) -> Result<Self, ReplayError> {
        Credentials::new().header_from_env("authorization", variable)
    }

    /// Adds the header `name` with the value of the environment variable `variable`; for
    /// `authorization` the value is sent as `Bearer <value>` unless it already names a scheme
    /// (holds a space).
    pub fn header_from_env(self, name: &str, variable: &str) -> Result<Self, ReplayError> {
        let value = std::env::var(variable).map_err(|_| ReplayError::MissingEnv {
            name: variable.to_string(),
        })?;
        let value = value.trim();
        let value = if name.eq_ignore_ascii_case("authorization") && !value.contains(' ') {
            format!("Bearer {value}")
        } else {
            value.to_string()
        };
        self.header(name, &value)
    }

    /// Adds the header `name: value`.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, ReplayError> {
        let header_name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            ReplayError::BadHeaderName {
                name: name.to_string(),
            }
        })?;
        let mut header_value =
            HeaderValue::from_str(value.trim()).map_err(|_| ReplayError::BadCredential {
                header: header_name.to_string(),
            })?;
        header_value.set_sensitive(true);
        self.headers.insert(header_name, header_value);
        Ok(self)
    }

    /// Adds the headers of a file of `Name: value` lines (blank lines and lines starting with
    /// `#` are skipped). An error names the line by number, never by content.
    pub fn header_file(self, path: impl AsRef<Path>) -> Result<Self, ReplayError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ReplayError::HeaderFile {
            path: shown.clone(),
            source,
        })?;
        let mut credentials = self;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || ReplayError::HeaderLine {
                path: shown.clone(),
                line: index + 1,
            };
            let (name, value) = line.split_once(':').ok_or_else(bad)?;
            if name.trim().is_empty() {
                return Err(bad());
            }
            credentials = credentials.header(name, value).map_err(|_| bad())?;
        }
        Ok(credentials)
    }

    /// The header names set, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.headers.keys().map(HeaderName::as_str)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }
}

/// Builds an [`HttpReplayer`].
#[derive(Debug, Default)]
pub struct HttpReplayerBuilder {
    credentials: Credentials,
    target: Option<Uri>,
    ca_certs: Vec<reqwest::Certificate>,
    timeout: Option<Duration>,
}

impl HttpReplayerBuilder {
    /// Headers to put back into every request (see [`Credentials`]).
    #[must_use]
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sends every request to this origin instead of the stored one: the stored path and query
    /// are appended to `url`'s path (`https://127.0.0.1:8443` + `/v1/chat` ->
    /// `https://127.0.0.1:8443/v1/chat`). Records that are not HTTP requests are POSTed to `url`
    /// itself.
    pub fn target(mut self, url: &str) -> Result<Self, ReplayError> {
        let bad = || ReplayError::BadTarget {
            url: url.to_string(),
        };
        let uri: Uri = url.parse().map_err(|_| bad())?;
        match (uri.scheme_str(), uri.host()) {
            (Some("http" | "https"), Some(host)) if !host.is_empty() => {}
            _ => return Err(bad()),
        }
        self.target = Some(uri);
        Ok(self)
    }

    /// Also trusts the CA certificates (PEM) in `path`, beside the platform's roots (for an
    /// agent behind a private CA, or a test's own certificate).
    pub fn ca_cert_file(mut self, path: impl AsRef<Path>) -> Result<Self, ReplayError> {
        let path = path.as_ref();
        let bad = |reason: String| ReplayError::CaCert {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|error| bad(error.to_string()))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| bad(error.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        self.ca_certs.extend(certs);
        Ok(self)
    }

    /// Gives up on one request after this long (default 60 s); the record is kept.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The replayer, with its client (rustls, the platform's roots plus any CA given).
    pub fn build(self) -> Result<HttpReplayer, ReplayError> {
        let mut client = reqwest::Client::builder()
            .timeout(self.timeout.unwrap_or(Duration::from_secs(60)))
            .connect_timeout(Duration::from_secs(10))
            // A replay goes where the record says, not where a redirect points (it carries
            // credentials).
            .redirect(reqwest::redirect::Policy::none());
        for cert in self.ca_certs {
            client = client.add_root_certificate(cert);
        }
        Ok(HttpReplayer {
            client: client.build().map_err(ReplayError::Client)?,
            credentials: self.credentials,
            target: self.target,
        })
    }
}

/// Sends dead-lettered HTTP requests again. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct HttpReplayer {
    client: reqwest::Client,
    credentials: Credentials,
    target: Option<Uri>,
}

/// What [`HttpReplayer::prepare`] would send, for a dry run: no credential value in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedRequest {
    /// The method.
    pub method: Method,
    /// The URL.
    pub url: String,
    /// The header names sent (credentials included, by name only).
    pub headers: Vec<String>,
    /// Body length in bytes.
    pub body_len: usize,
}

impl HttpReplayer {
    /// A builder: no credentials, stored URLs, platform roots.
    pub fn builder() -> HttpReplayerBuilder {
        HttpReplayerBuilder::default()
    }

    fn request(&self, record: &DeadLetterRecord) -> Result<reqwest::Request, ReplayError> {
        let id = record.id.to_string();
        let (method, uri, mut headers, body) = match decode_request(&record.request) {
            Ok(request) => {
                let (parts, body) = request.into_parts();
                let uri = match &self.target {
                    Some(target) => rebase(target, &parts.uri),
                    None if parts.uri.host().is_some() => parts.uri.to_string(),
                    None => {
                        return Err(ReplayError::NoHost {
                            id,
                            uri: parts.uri.to_string(),
                        });
                    }
                };
                (parts.method, uri, parts.headers, body.bytes().clone())
            }
            Err(error) => {
                let Some(target) = &self.target else {
                    return Err(ReplayError::NotHttp {
                        id,
                        reason: error.to_string(),
                    });
                };
                let mut headers = HeaderMap::new();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                (
                    Method::POST,
                    target.to_string(),
                    headers,
                    record.request.clone(),
                )
            }
        };
        for name in &CONNECTION_HEADERS {
            headers.remove(name);
        }
        let redacted: Vec<HeaderName> = headers
            .iter()
            .filter(|(_, value)| value.as_bytes() == REDACTED.as_bytes())
            .map(|(name, _)| name.clone())
            .collect();
        for name in redacted {
            headers.remove(name);
        }
        for (name, value) in &self.credentials.headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            headers.insert(DEAD_LETTER_ID_HEADER, value);
        }
        let url = reqwest::Url::parse(&uri).map_err(|_| ReplayError::BadTarget { url: uri })?;
        let mut request = reqwest::Request::new(method, url);
        *request.headers_mut() = headers;
        *request.body_mut() = Some(reqwest::Body::from(body));
        Ok(request)
    }

    /// What would be sent for `record`, credential values left out (for `--dry-run`).
    pub fn prepare(&self, record: &DeadLetterRecord) -> Result<PreparedRequest, ReplayError> {
        let request = self.request(record)?;
        Ok(PreparedRequest {
            method: request.method().clone(),
            url: request.url().to_string(),
            headers: request
                .headers()
                .keys()
                .map(|name| name.as_str().to_string())
                .collect(),
            body_len: request
                .body()
                .and_then(reqwest::Body::as_bytes)
                .map_or(0, <[u8]>::len),
        })
    }
}

/// `target`'s scheme and authority, its path with the stored path and query appended.
fn rebase(target: &Uri, stored: &Uri) -> String {
    let scheme = target.scheme_str().unwrap_or("https");
    let authority = target.authority().map_or("", |a| a.as_str());
    let prefix = target.path().trim_end_matches('/');
    let rest = stored.path_and_query().map_or("/", |pq| pq.as_str());
    format!("{scheme}://{authority}{prefix}{rest}")
}

impl Service<DeadLetterRecord> for HttpReplayer {
    type Response = StatusCode;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<StatusCode, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, record: DeadLetterRecord) -> Self::Future {
        let prepared = self.request(&record);
        let client = self.client.clone();
        Box::pin(async move {
            let request = prepared?;
            let id = record.id.to_string();
            let response = client
                .execute(request)
                .await
                .map_err(|source| ReplayError::Send {
                    id: id.clone(),
                    source,
                })?;
            let status = response.status();
            // Read the answer to its end (a chunked answer included) so the connection can be
            // reused; its content is the agent's business.
            let _ = response.bytes().await;
            if status.is_success() {
                Ok(status)
            } else {
                Err(ReplayError::Status { id, status }.into())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use steadfast::classify::OutcomeKind;

    fn stored(text: &str) -> DeadLetterRecord {
        DeadLetterRecord::new("gpt", Bytes::from(text.to_string()), OutcomeKind::Transient)
    }

    #[test]
    fn keeps_method_headers_body_drops_redacted_and_connection_headers() {
        let replayer = HttpReplayer::builder()
            .credentials(
                Credentials::new()
                    .header("authorization", "Bearer sk-1")
                    .unwrap(),
            )
            .build()
            .unwrap();
        let record = stored(
            "PUT https://[::1]:8443/v1/chat?x=1 HTTP/1.1\r\nauthorization: [REDACTED]\r\nx-api-key: [REDACTED]\r\n\
             content-type: application/json\r\ntransfer-encoding: chunked\r\nhost: old\r\n\r\n{\"a\":1}",
        );
        let prepared = replayer.prepare(&record).unwrap();
        assert_eq!(prepared.method, Method::PUT);
        assert_eq!(prepared.url, "https://[::1]:8443/v1/chat?x=1");
        let mut names = prepared.headers.clone();
        names.sort();
        assert_eq!(
            names,
            ["authorization", "content-type", DEAD_LETTER_ID_HEADER]
        );
        assert_eq!(prepared.body_len, 7);
        let request = replayer.request(&record).unwrap();
        assert_eq!(request.headers()["authorization"], "Bearer sk-1");
        assert!(request.headers()["authorization"].is_sensitive());
    }

    #[test]
    fn a_target_replaces_the_origin_and_keeps_the_path() {
        let replayer = HttpReplayer::builder()
            .target("http://127.0.0.1:9/base/")
            .unwrap()
            .build()
            .unwrap();
        let prepared = replayer
            .prepare(&stored("POST /v1/chat?stream=false HTTP/1.1\r\n\r\nhi"))
            .unwrap();
        assert_eq!(prepared.url, "http://127.0.0.1:9/base/v1/chat?stream=false");
        // Not an HTTP record: its bytes are POSTed to the target itself.
        let raw = replayer.prepare(&stored("just a prompt")).unwrap();
        assert_eq!(
            (raw.method, raw.url.as_str()),
            (Method::POST, "http://127.0.0.1:9/base/")
        );
        assert_eq!(raw.body_len, 13);
    }

    #[test]
    fn without_a_target_relative_and_raw_records_are_typed_errors() {
        let replayer = HttpReplayer::builder().build().unwrap();
        assert!(matches!(
            replayer.prepare(&stored("POST /v1 HTTP/1.1\r\n\r\n")),
            Err(ReplayError::NoHost { .. })
        ));
        assert!(matches!(
            replayer.prepare(&stored("a prompt")),
            Err(ReplayError::NotHttp { .. })
        ));
        for bad in ["ftp://x/", "not a url", "/relative", "http://"] {
            assert!(
                matches!(
                    HttpReplayer::builder().target(bad),
                    Err(ReplayError::BadTarget { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn header_files_parse_and_errors_name_the_line_not_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("headers");
        std::fs::write(
            &path,
            "# creds\n\nx-api-key: sk-abc\nAuthorization: Bearer t\n",
        )
        .unwrap();
        let credentials = Credentials::new().header_file(&path).unwrap();
        let mut names: Vec<_> = credentials.names().collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "x-api-key"]);
        assert!(!format!("{credentials:?}").contains("sk-abc"));

        std::fs::write(&path, "x-api-key: ok\nsk-secret-without-colon\n").unwrap();
        let error = Credentials::new()
            .header_file(&path)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 2") && !error.contains("sk-secret"),
            "{error}"
        );
        assert!(matches!(
            Credentials::new().header_file(dir.path().join("missing")),
            Err(ReplayError::HeaderFile { .. })
        ));
    }

    #[test]
    fn a_missing_environment_variable_is_named() {
        let error = Credentials::bearer_from_env("STEADFAST_TEST_SURELY_UNSET_9F2")
            .unwrap_err()
            .to_string();
        assert!(error.contains("STEADFAST_TEST_SURELY_UNSET_9F2"), "{error}");
    }
}
