//! [`Rebase`]: sends each request to another base URL, with that host's own credentials.
//!
//! A fallback alternative is usually another host: a self-hosted model, another provider's
//! OpenAI-compatible endpoint, another region. The fallback layer hands every alternative a
//! copy of the primary's request, whose URI names the primary's host and whose headers carry
//! the primary's API key. Wrap the alternative's service in a `Rebase` and the request is
//! rewritten for it on the way in:
//!
//! - **URL**: scheme and authority become the base's; the path becomes the base's path followed
//!   by the request's path (minus [`strip_prefix`](RebaseBuilder::strip_prefix), matched at a
//!   segment boundary); the query is the base's, then the request's. Path-only request URIs
//!   (`/v1/chat/completions`) work too.
//! - **Host**: an explicit `host` header (it names the old host) is removed.
//! - **Credentials**: when the origin changes (and a path-only request has no origin to keep),
//!   the primary's credentials are removed: the headers `authorization`, `proxy-authorization`,
//!   `cookie`, `x-api-key`, `api-key`, `x-goog-api-key`, `anthropic-api-key`, `x-auth-token`,
//!   `x-amz-security-token`, `ocp-apim-subscription-key`, `openai-organization`,
//!   `openai-project`, and query parameters named `key`, `api_key`, `api-key`, `apikey`,
//!   `access_token`, `token`, `client_secret`, `subscription-key` (compared
//!   ASCII-case-insensitively). Keep them with [`keep_credentials`](RebaseBuilder::keep_credentials)
//!   (another path on the same trusted gateway).
//! - **The alternative's own headers** are then set: fixed ones
//!   ([`bearer_token`](RebaseBuilder::bearer_token), [`header`](RebaseBuilder::header)), or read
//!   per request from a source ([`header_with`](RebaseBuilder::header_with): a token that
//!   rotates). Their values are marked sensitive, so `Debug` output never shows them.
//!
//! It rewrites `http::Request<B>`s (hyper, axum, [`BufferedBody`](crate::BufferedBody)) and,
//! with the `reqwest` feature, `reqwest::Request`s. The body is not touched: the model name in
//! an LLM request is the application's to change (`tower::ServiceExt::map_request`), or the
//! alternative's to accept (vLLM's `--served-model-name`).
//!
//! ```
//! use steadfast_http::Rebase;
//!
//! let vllm = Rebase::builder("http://vllm.internal:8000")
//!     .bearer_token("local-key")
//!     .build()
//!     .unwrap();
//! let mut request = http::Request::post("https://api.openai.com/v1/chat/completions?stream=false")
//!     .header("authorization", "Bearer sk-openai")
//!     .body(())
//!     .unwrap();
//! vllm.rebase_http(&mut request).unwrap();
//! assert_eq!(request.uri(), "http://vllm.internal:8000/v1/chat/completions?stream=false");
//! assert_eq!(request.headers()["authorization"], "Bearer local-key");
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HOST, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, Uri};
use steadfast::{BoxError, ConfigError, Outcome};
use tower_layer::Layer;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::reason;

/// Request headers that carry the primary's credentials or identity, removed when the origin
/// changes.
const CREDENTIAL_HEADERS: [&str; 12] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "anthropic-api-key",
    "x-auth-token",
    "x-amz-security-token",
    "ocp-apim-subscription-key",
    "openai-organization",
    "openai-project",
];

/// Query parameters that carry credentials (Gemini's `?key=`, Azure's `subscription-key`),
/// removed when the origin changes.
const CREDENTIAL_PARAMS: [&str; 8] = [
    "key",
    "api_key",
    "api-key",
    "apikey",
    "access_token",
    "token",
    "client_secret",
    "subscription-key",
];

/// Where a header of the alternative comes from.
#[derive(Clone)]
enum HeaderSource {
    Fixed(HeaderValue),
    With(Arc<dyn Fn() -> Option<HeaderValue> + Send + Sync>),
}

/// The parsed base URL and what to do to each request.
struct Base {
    url: Arc<str>,
    scheme: Scheme,
    authority: Authority,
    port: Option<u16>,
    /// The base's path without a trailing `/` (empty for the root).
    path: String,
    query: Option<String>,
    strip_prefix: Option<String>,
    headers: Vec<(HeaderName, HeaderSource)>,
    keep_credentials: bool,
}

/// Rewrites requests for another base URL and credentials; a tower `Layer` over the service
/// that sends them. See the [module docs](self).
#[derive(Clone)]
pub struct Rebase {
    base: Arc<Base>,
}

impl Rebase {
    /// Sends to `base_url` (`http://host:port/optional/path?optional=query`), removing the
    /// primary's credentials. The same as `Rebase::builder(base_url).build()`.
    pub fn new(base_url: &str) -> Result<Rebase, ConfigError> {
        Rebase::builder(base_url).build()
    }

    /// A builder, to add the alternative's credentials and headers.
    pub fn builder(base_url: &str) -> RebaseBuilder {
        RebaseBuilder {
            base: parse_base(base_url),
        }
    }

    /// The base URL, as given.
    pub fn base_url(&self) -> &str {
        &self.base.url
    }

    /// Rewrites `request` for the base (URL, `host`, credentials, headers).
    pub fn rebase_http<B>(&self, request: &mut http::Request<B>) -> Result<(), RebaseError> {
        let changes_origin = !self.base.same_origin(
            request.uri().scheme_str(),
            request.uri().host(),
            request.uri().port_u16(),
        );
        let path = self.base.rest_of(request.uri().path());
        let query = self.base.query(
            request.uri().query(),
            changes_origin && !self.base.keep_credentials,
        );
        let path_and_query = match query {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let uri = Uri::builder()
            .scheme(self.base.scheme.clone())
            .authority(self.base.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|error| self.error(ErrorKind::InvalidTarget(error.to_string())))?;
        self.rewrite_headers(request.headers_mut(), changes_origin)?;
        *request.uri_mut() = uri;
        Ok(())
    }

    /// Rewrites `request` for the base (URL, `host`, credentials, headers).
    #[cfg(feature = "reqwest")]
    pub fn rebase_reqwest(&self, request: &mut ::reqwest::Request) -> Result<(), RebaseError> {
        let url = request.url();
        let changes_origin = !self.base.same_origin(
            Some(url.scheme()),
            url.host_str(),
            url.port_or_known_default(),
        );
        let mut target = format!(
            "{}://{}{}",
            self.base.scheme,
            self.base.authority,
            self.base.rest_of(url.path())
        );
        if let Some(query) = self
            .base
            .query(url.query(), changes_origin && !self.base.keep_credentials)
        {
            target.push('?');
            target.push_str(&query);
        }
        let target = ::reqwest::Url::parse(&target)
            .map_err(|error| self.error(ErrorKind::InvalidTarget(error.to_string())))?;
        self.rewrite_headers(request.headers_mut(), changes_origin)?;
        *request.url_mut() = target;
        Ok(())
    }

    fn rewrite_headers(
        &self,
        headers: &mut HeaderMap,
        changes_origin: bool,
    ) -> Result<(), RebaseError> {
        // Read every source first, so a missing credential leaves the request as it was.
        let mut values = Vec::with_capacity(self.base.headers.len());
        for (name, source) in &self.base.headers {
            let value = match source {
                HeaderSource::Fixed(value) => value.clone(),
                HeaderSource::With(source) => {
                    let Some(mut value) = source() else {
                        return Err(self.error(ErrorKind::MissingHeader(name.clone())));
                    };
                    value.set_sensitive(true);
                    value
                }
            };
            values.push((name.clone(), value));
        }
        headers.remove(HOST);
        if changes_origin && !self.base.keep_credentials {
            for name in CREDENTIAL_HEADERS {
                headers.remove(name);
            }
        }
        for (name, value) in values {
            headers.insert(name, value);
        }
        Ok(())
    }

    fn error(&self, kind: ErrorKind) -> RebaseError {
        RebaseError {
            base: self.base.url.clone(),
            kind,
        }
    }
}

impl Base {
    fn same_origin(&self, scheme: Option<&str>, host: Option<&str>, port: Option<u16>) -> bool {
        let (Some(scheme), Some(host)) = (scheme, host) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(self.scheme.as_str())
            && host.eq_ignore_ascii_case(self.authority.host())
            && port.or_else(|| default_port(scheme)) == self.port
    }

    /// The base's path followed by the request's, minus the prefix to strip.
    fn rest_of(&self, path: &str) -> String {
        let rest = match &self.strip_prefix {
            Some(prefix) => match path.strip_prefix(prefix.as_str()) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
                _ => path,
            },
            None => path,
        };
        let mut joined = String::with_capacity(self.path.len() + rest.len() + 1);
        joined.push_str(&self.path);
        if !rest.is_empty() && !rest.starts_with('/') {
            joined.push('/');
        }
        joined.push_str(rest);
        if joined.is_empty() {
            joined.push('/');
        }
        joined
    }

    /// The base's query, then the request's (without its credentials when asked).
    fn query(&self, request: Option<&str>, drop_credentials: bool) -> Option<String> {
        let request = request.map(|query| {
            if drop_credentials {
                without_credentials(query)
            } else {
                query.to_owned()
            }
        });
        match (self.query.as_deref(), request.as_deref()) {
            (Some(base), Some(request)) if !request.is_empty() => Some(format!("{base}&{request}")),
            (Some(base), _) => Some(base.to_owned()),
            (None, Some(request)) if !request.is_empty() => Some(request.to_owned()),
            (None, _) => None,
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

fn without_credentials(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            !CREDENTIAL_PARAMS
                .iter()
                .any(|secret| name.eq_ignore_ascii_case(secret))
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn parse_base(base_url: &str) -> Result<Base, ConfigError> {
    let invalid = |problem: &'static str| {
        ConfigError::new("rebase", "base_url", problem).with_value(base_url)
    };
    let uri = Uri::try_from(base_url)
        .map_err(|_| invalid("must be an absolute URL such as `https://api.example.com/v1`"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Err(invalid(
            "must be an absolute URL such as `https://api.example.com/v1`",
        ));
    };
    if authority.as_str().contains('@') {
        return Err(ConfigError::new(
            "rebase",
            "base_url",
            "must not carry credentials (`user:password@`): give them with `bearer_token` or `header`",
        ));
    }
    let port = authority
        .port_u16()
        .or_else(|| default_port(scheme.as_str()));
    Ok(Base {
        url: Arc::from(base_url),
        scheme: scheme.clone(),
        authority: authority.clone(),
        port,
        path: uri.path().trim_end_matches('/').to_owned(),
        query: uri
            .query()
            .filter(|query| !query.is_empty())
            .map(str::to_owned),
        strip_prefix: None,
        headers: Vec::new(),
        keep_credentials: false,
    })
}

/// Builds a [`Rebase`]: the base URL, then the alternative's headers. Refusals (a malformed URL,
/// header name or value) surface in [`build`](Self::build) as a `steadfast::ConfigError`.
#[must_use = "call `build()` to get the `Rebase`"]
pub struct RebaseBuilder {
    base: Result<Base, ConfigError>,
}

impl RebaseBuilder {
    /// Removes `prefix` from the start of each request's path before the base's path is put in
    /// front, when it matches at a segment boundary (`/v1` strips `/v1/chat`, not `/v10/chat`).
    /// For an alternative whose base already ends in the API's version:
    /// `Rebase::builder("https://api.anthropic.com/v1").strip_prefix("/v1")`.
    pub fn strip_prefix(mut self, prefix: &str) -> Self {
        if let Ok(base) = &mut self.base {
            let prefix = prefix.trim_end_matches('/');
            if prefix.starts_with('/') {
                base.strip_prefix = Some(prefix.to_owned());
            } else {
                self.base = Err(
                    ConfigError::new("rebase", "strip_prefix", "must start with `/`")
                        .with_value(prefix),
                );
            }
        }
        self
    }

    /// Sends `Authorization: Bearer <token>` (OpenAI-compatible APIs: vLLM, Ollama, Azure AI,
    /// Anthropic's OpenAI SDK compatibility endpoint).
    pub fn bearer_token(self, token: impl AsRef<str>) -> Self {
        let value = format!("Bearer {}", token.as_ref());
        self.header("authorization", value)
    }

    /// Sends the header `name: value` (replacing what the request had): `x-api-key` for
    /// Anthropic, `api-key` for Azure, a version header...
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        if let Ok(base) = &mut self.base {
            let parsed = HeaderName::from_bytes(name.as_ref().as_bytes())
                .map_err(|_| {
                    ConfigError::new("rebase", "header", "is not a valid header name")
                        .with_value(name.as_ref())
                })
                .and_then(|name| {
                    let mut value = HeaderValue::from_str(value.as_ref()).map_err(|_| {
                        // The value may be a secret: name the header, not the value.
                        ConfigError::new(
                            "rebase",
                            format!("header `{name}`"),
                            "has a value that is not a valid header value",
                        )
                    })?;
                    value.set_sensitive(true);
                    Ok((name, value))
                });
            match parsed {
                Ok((name, value)) => base.headers.push((name, HeaderSource::Fixed(value))),
                Err(error) => self.base = Err(error),
            }
        }
        self
    }

    /// Sends the header `name` with the value `source` gives for each request (a token that
    /// rotates, read from a cache). When it gives `None`, the call fails with a
    /// [`RebaseError`] (an agent fault: the alternative cannot be reached as configured) and
    /// nothing is sent.
    pub fn header_with<F>(mut self, name: impl AsRef<str>, source: F) -> Self
    where
        F: Fn() -> Option<HeaderValue> + Send + Sync + 'static,
    {
        if let Ok(base) = &mut self.base {
            match HeaderName::from_bytes(name.as_ref().as_bytes()) {
                Ok(name) => base
                    .headers
                    .push((name, HeaderSource::With(Arc::new(source)))),
                Err(_) => {
                    self.base =
                        Err(
                            ConfigError::new("rebase", "header", "is not a valid header name")
                                .with_value(name.as_ref()),
                        );
                }
            }
        }
        self
    }

    /// Keeps the request's credentials even when the origin changes (a trusted gateway that
    /// forwards them). The alternative's own headers still replace theirs.
    pub fn keep_credentials(mut self) -> Self {
        if let Ok(base) = &mut self.base {
            base.keep_credentials = true;
        }
        self
    }

    /// The `Rebase`, or the first setting that was refused.
    pub fn build(self) -> Result<Rebase, ConfigError> {
        steadfast::classify::register::<RebaseError>();
        Ok(Rebase {
            base: Arc::new(self.base?),
        })
    }
}

impl fmt::Debug for RebaseBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.base {
            Ok(base) => f.debug_struct("RebaseBuilder").field("base", base).finish(),
            Err(error) => f
                .debug_struct("RebaseBuilder")
                .field("error", error)
                .finish(),
        }
    }
}

impl fmt::Debug for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are credentials: list the names only.
        let headers: Vec<&HeaderName> = self.headers.iter().map(|(name, _)| name).collect();
        f.debug_struct("Rebase")
            .field("base_url", &self.url)
            .field("strip_prefix", &self.strip_prefix)
            .field("headers", &headers)
            .field("keep_credentials", &self.keep_credentials)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Rebase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.base, f)
    }
}

impl<S> Layer<S> for Rebase {
    type Service = Rebased<S>;

    fn layer(&self, inner: S) -> Rebased<S> {
        Rebased {
            inner,
            rebase: self.clone(),
        }
    }
}

/// A service whose requests are rewritten by a [`Rebase`] first.
#[derive(Clone, Debug)]
pub struct Rebased<S> {
    inner: S,
    rebase: Rebase,
}

impl<S> Rebased<S> {
    /// The service below.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The rewriting.
    pub fn rebase(&self) -> &Rebase {
        &self.rebase
    }
}

impl<S, B> Service<http::Request<B>> for Rebased<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.rebase.rebase_http(&mut request) {
            Ok(()) => ResponseFuture::inner(self.inner.call(request)),
            Err(error) => ResponseFuture::failed(Box::new(error)),
        }
    }
}

#[cfg(feature = "reqwest")]
impl<S> Service<::reqwest::Request> for Rebased<S>
where
    S: Service<::reqwest::Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: ::reqwest::Request) -> Self::Future {
        match self.rebase.rebase_reqwest(&mut request) {
            Ok(()) => ResponseFuture::inner(self.inner.call(request)),
            Err(error) => ResponseFuture::failed(Box::new(error)),
        }
    }
}

/// A request could not be rewritten for its alternative; nothing was sent.
#[derive(Debug)]
pub struct RebaseError {
    base: Arc<str>,
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    MissingHeader(HeaderName),
    InvalidTarget(String),
}

impl RebaseError {
    /// The base URL the request was being rewritten for.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The header whose source ([`RebaseBuilder::header_with`]) gave no value, if that was
    /// the problem.
    pub fn missing_header(&self) -> Option<&HeaderName> {
        match &self.kind {
            ErrorKind::MissingHeader(name) => Some(name),
            ErrorKind::InvalidTarget(_) => None,
        }
    }
}

impl fmt::Display for RebaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::MissingHeader(name) => write!(
                f,
                "nothing sent to `{}`: the source of header `{name}` gave no value; check this \
                 alternative's credentials",
                self.base
            ),
            ErrorKind::InvalidTarget(why) => write!(
                f,
                "nothing sent to `{}`: the request's path does not make a valid URL there ({why})",
                self.base
            ),
        }
    }
}

impl std::error::Error for RebaseError {}

impl steadfast::ClassifyError for RebaseError {
    /// A missing credential is the alternative's fault (its configuration); a path that makes
    /// no URL is the request's. Neither reached the agent.
    fn outcome(&self) -> Outcome {
        match self.kind {
            ErrorKind::MissingHeader(_) => {
                Outcome::agent_fault(reason::AUTHENTICATION).unprocessed()
            }
            ErrorKind::InvalidTarget(_) => {
                Outcome::caller_fault(reason::INVALID_CLIENT_REQUEST).unprocessed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebased(rebase: &Rebase, uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::post(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder.body(()).unwrap();
        rebase.rebase_http(&mut request).unwrap();
        request
    }

    #[test]
    fn the_base_path_goes_in_front_and_a_prefix_is_stripped_at_a_segment_boundary() {
        let plain = Rebase::new("http://vllm:8000/").unwrap();
        assert_eq!(
            rebased(&plain, "https://api.openai.com/v1/chat/completions", &[]).uri(),
            "http://vllm:8000/v1/chat/completions"
        );
        let anthropic = Rebase::builder("https://api.anthropic.com/v1/")
            .strip_prefix("/v1")
            .build()
            .unwrap();
        assert_eq!(
            rebased(
                &anthropic,
                "https://api.openai.com/v1/chat/completions",
                &[]
            )
            .uri(),
            "https://api.anthropic.com/v1/chat/completions"
        );
        assert_eq!(
            rebased(&anthropic, "/v10/models", &[]).uri(),
            "https://api.anthropic.com/v1/v10/models",
            "`/v1` is not a prefix of the segment `/v10`"
        );
        assert_eq!(
            rebased(&plain, "/", &[]).uri(),
            "http://vllm:8000/",
            "a root path stays a root path"
        );
    }

    #[test]
    fn queries_join_and_credential_parameters_stay_with_their_origin() {
        let azure = Rebase::new(
            "https://res.openai.azure.com/openai/deployments/gpt4o?api-version=2024-06-01",
        )
        .unwrap();
        let request = rebased(
            &azure,
            "https://generativelanguage.googleapis.com/v1/chat/completions?key=AIza-secret&stream=true",
            &[],
        );
        assert_eq!(
            request.uri(),
            "https://res.openai.azure.com/openai/deployments/gpt4o/v1/chat/completions?api-version=2024-06-01&stream=true"
        );
    }

    #[test]
    fn the_primarys_credentials_never_reach_another_origin_and_the_alternatives_are_set() {
        let vllm = Rebase::builder("http://vllm:8000")
            .bearer_token("vllm-key")
            .header("x-tenant", "blue")
            .build()
            .unwrap();
        let request = rebased(
            &vllm,
            "https://api.openai.com/v1/chat/completions",
            &[
                ("authorization", "Bearer sk-openai"),
                ("x-api-key", "sk-ant"),
                ("openai-organization", "org-1"),
                ("host", "api.openai.com"),
                ("content-type", "application/json"),
            ],
        );
        let headers = request.headers();
        assert_eq!(headers["authorization"], "Bearer vllm-key");
        assert!(headers["authorization"].is_sensitive());
        assert_eq!(headers["x-tenant"], "blue");
        for gone in ["x-api-key", "openai-organization", "host"] {
            assert!(!headers.contains_key(gone), "{gone} was kept");
        }
        assert_eq!(headers["content-type"], "application/json");
        assert!(!format!("{vllm:?}").contains("vllm-key"), "{vllm:?}");
    }

    #[test]
    fn the_same_origin_keeps_its_credentials_and_keep_credentials_keeps_them_anywhere() {
        let same = Rebase::new("https://api.openai.com:443/v2").unwrap();
        let request = rebased(
            &same,
            "https://API.openai.com/v1/chat?key=k",
            &[("authorization", "Bearer sk")],
        );
        assert_eq!(request.headers()["authorization"], "Bearer sk");
        assert_eq!(request.uri(), "https://api.openai.com:443/v2/v1/chat?key=k");
        let gateway = Rebase::builder("http://gateway:8080")
            .keep_credentials()
            .build()
            .unwrap();
        let request = rebased(&gateway, "/v1/chat", &[("authorization", "Bearer sk")]);
        assert_eq!(request.headers()["authorization"], "Bearer sk");
    }

    #[test]
    fn a_header_source_that_gives_nothing_fails_the_call_as_an_agent_fault() {
        let rebase = Rebase::builder("http://vllm:8000")
            .header_with("authorization", || None)
            .build()
            .unwrap();
        let mut request = http::Request::post("/v1/chat").body(()).unwrap();
        let error = rebase.rebase_http(&mut request).unwrap_err();
        assert_eq!(
            error.missing_header().map(HeaderName::as_str),
            Some("authorization")
        );
        assert_eq!(request.uri(), "/v1/chat", "the request is left as it was");
        let outcome = steadfast::ClassifyError::outcome(&error);
        assert_eq!(outcome.kind(), steadfast::OutcomeKind::AgentFault);
        assert!(outcome.is_unprocessed());
    }

    #[test]
    fn bad_settings_are_refused_at_build_naming_the_setting() {
        for (builder, setting) in [
            (Rebase::builder("/v1"), "base_url"),
            (Rebase::builder("not a url"), "base_url"),
            (
                Rebase::builder("https://user:pw@api.example.com"),
                "base_url",
            ),
            (
                Rebase::builder("https://api.example.com").strip_prefix("v1"),
                "strip_prefix",
            ),
            (
                Rebase::builder("https://api.example.com").header("bad name", "x"),
                "header",
            ),
            (
                Rebase::builder("https://api.example.com").header("x-api-key", "line\nbreak"),
                "header `x-api-key`",
            ),
        ] {
            let error = builder.build().unwrap_err();
            assert_eq!(error.component(), "rebase");
            assert_eq!(error.setting(), setting, "{error}");
        }
        let error = Rebase::builder("https://api.example.com")
            .header("x-api-key", "sk-secret\n")
            .build()
            .unwrap_err();
        assert!(!error.to_string().contains("sk-secret"), "{error}");
    }

    #[cfg(feature = "reqwest")]
    #[test]
    fn reqwest_requests_are_rewritten_the_same_way() {
        let vllm = Rebase::builder("http://vllm:8000/")
            .bearer_token("vllm-key")
            .build()
            .unwrap();
        let mut request = ::reqwest::Client::new()
            .post("https://api.openai.com/v1/chat/completions?key=k&n=1")
            .bearer_auth("sk-openai")
            .header("x-api-key", "sk-ant")
            .body("{}")
            .build()
            .unwrap();
        vllm.rebase_reqwest(&mut request).unwrap();
        assert_eq!(
            request.url().as_str(),
            "http://vllm:8000/v1/chat/completions?n=1"
        );
        assert_eq!(request.headers()["authorization"], "Bearer vllm-key");
        assert!(!request.headers().contains_key("x-api-key"));
    }
}
