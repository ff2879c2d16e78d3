//! Redaction (feature `redact`, enabled by `dead-letter`): one pass that takes the secrets out
//! of an HTTP request before it is stored, and remembers every secret value it took out so that
//! other stored text (the error chain of a dead letter) can be scrubbed of them too.
//!
//! ```
//! use steadfast_http::redact::Redactor;
//!
//! let redactor = Redactor::new().redact_header("x-team-secret");
//! let uri: http::Uri = "https://bob:hunter2@api.example.com/v1?model=m&API%5FKEY=sk-live-123"
//!     .parse()
//!     .unwrap();
//! let mut headers = http::HeaderMap::new();
//! headers.insert("authorization", "Bearer sk-live-123".parse().unwrap());
//! headers.insert("content-type", "application/json".parse().unwrap());
//! let body = bytes::Bytes::from(r#"{"messages":[{"role":"user","apiKey":"sk-body-456"}]}"#);
//!
//! let redacted = redactor.redact_parts(&uri, &headers, &body);
//! assert_eq!(redacted.uri, "https://api.example.com/v1?model=m&API%5FKEY=[REDACTED]");
//! assert_eq!(redacted.headers[0].1, b"[REDACTED]");
//! assert_eq!(
//!     redacted.body.as_ref(),
//!     br#"{"messages":[{"role":"user","apiKey":"[REDACTED]"}]}"#
//! );
//!
//! // The client's error quotes the URL; the values taken out above are scrubbed from it.
//! let error = "error sending request for url \
//!              (https://bob:hunter2@api.example.com/v1?model=m&API%5FKEY=sk-live-123)";
//! assert_eq!(
//!     redacted.secrets.scrub(error),
//!     "error sending request for url \
//!      (https://[REDACTED]@api.example.com/v1?model=m&API%5FKEY=[REDACTED])"
//! );
//! ```
//!
//! # Rules
//!
//! * **Headers**: the value of a header whose name is in the set (default
//!   [`DEFAULT_REDACTED_HEADERS`]) becomes `[REDACTED]`. Names compare ASCII-case-insensitively
//!   after percent-decoding, with `_` read as `-` (CGI-style servers merge the two).
//! * **Query parameters**: `&` and `;` both separate parameters. A parameter whose name, after
//!   percent-decoding (and `+` read as a space), is in the set (default
//!   [`DEFAULT_REDACTED_QUERY_PARAMS`]) ASCII-case-insensitively has its value replaced. The
//!   value runs to the next `&`, not the next `;`: a server that does not split on `;` reads
//!   `token=a;b` as the token `a;b`, and keeping `;b` would keep half the secret. A `;`-separated
//!   parameter right after a redacted one is therefore redacted with it.
//! * **Userinfo**: `user:password@` is removed from the URI's authority, whatever the names.
//! * **JSON bodies** (a `content-type` containing `json`, or a body whose first non-blank byte is
//!   `{` or `[`): the value of every object member whose key (after JSON unescaping,
//!   ASCII-case-insensitively) is in the set (default [`DEFAULT_REDACTED_JSON_KEYS`]) becomes the
//!   string `"[REDACTED]"`, at any depth, in objects inside arrays too, and whatever the value is
//!   (string, number, literal, object, array). A sequence of JSON values (NDJSON) is read value
//!   by value.
//!   Everything else keeps its bytes: formatting and key order are untouched.
//!   A body that is not valid JSON is left alone (add a [body hook](Redactor::body_hook)).
//!   The work is bounded: a JSON body larger than [`Redactor::max_json_bytes`] or nesting
//!   deeper than [`Redactor::max_json_depth`] is **replaced by a marker**
//!   (`[REDACTED: JSON body not stored: ...]`) and a warning is logged, rather than stored
//!   unchecked.
//! * **Form bodies** (`application/x-www-form-urlencoded`): the query parameter rules apply.
//! * **Body hook**: runs first, on every body; the JSON and form rules then check its output.
//!
//! # Secrets and scrubbing
//!
//! Every value taken out is collected in [`Secrets`], in the forms it may take elsewhere: as
//! found, percent-decoded (also with `+` as a space), percent-encoded, JSON-unescaped; the token
//! after an auth scheme (`Bearer <token>`); for `Basic`, the base64 text, the decoded
//! `user:password`, user and password; for userinfo, user, password, `user:password` and its
//! base64 (what an HTTP client sends as `Basic`); `name=value` parameters of other schemes
//! (AWS SigV4 `Credential=` and `Signature=`, Digest); each cookie's value.
//! [`Secrets::scrub`] replaces every occurrence of any of them in other text with `[REDACTED]`
//! (ASCII-case-insensitively, so `%2f` and `%2F` both go), and also applies the query and
//! userinfo rules to any URL written in that text, which catches a URL a client re-encoded.
//!
//! Values shorter than [`Redactor::min_scrub_len`] (default 4 bytes) are redacted where they
//! stand but not scrubbed from other text: a password `a` would otherwise turn every `a` of an
//! error message into `[REDACTED]`. Collection is bounded (4,096 values, 1 MiB in all) so a
//! hostile body cannot make scrubbing slow; [`Secrets::is_complete`] says whether anything was
//! left out.
//!
//! [`Redactor::redact_parts`] also scrubs the request's own path, query and other header values
//! of the collected secrets (a token echoed in `x-forwarded-authorization` or in a `referer`
//! URL), but not the `host` and `content-length` headers (a replay needs them intact) and not
//! the body (its bytes are the caller's content; only the rules above change it).
//!
//! # Not covered
//!
//! Secrets in non-JSON, non-form bodies (multipart, XML, compressed, invalid JSON) unless a body
//! hook handles them; secrets in the URI path (`/bot<token>/...`); headers and names not in the
//! sets; secrets in an error message that never appeared in the request (scrubbing only knows
//! what it removed, plus the URL rules).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, general_purpose};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, Uri, header};
use percent_encoding::percent_decode;

use json::{JsonError, Leaf, decode_json_string, is_json_space, scan_json};
pub use secrets::Secrets;

mod json;
mod secrets;

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// Headers whose values are redacted by default.
///
/// The credential headers of the LLM providers and the usual cloud and proxy ones:
/// `authorization` (OpenAI, Mistral, Groq, Cohere, most others: `Bearer`), `x-api-key`
/// (Anthropic), `api-key` (Azure OpenAI), `x-goog-api-key` (Gemini),
/// `ocp-apim-subscription-key` (Azure AI services), `x-amz-security-token` (AWS temporary
/// credentials, Bedrock), `openai-organization` (not a secret, but it names the account),
/// `anthropic-api-key` (not Anthropic's documented header, which is `x-api-key`; some
/// gateways and wrappers use it), cookies, `x-auth-token` and `proxy-authorization`.
pub const DEFAULT_REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "openai-organization",
    "x-auth-token",
    "x-amz-security-token",
    "anthropic-api-key",
    "ocp-apim-subscription-key",
];

/// URI query parameters (and form-body fields) whose values are redacted by default: API keys
/// (`key` is Gemini's), OAuth 2.0 fields (`code`, `client_secret`, `refresh_token`,
/// `id_token`), signed-URL fields (`sig`, `signature`, AWS SigV4's `X-Amz-*`), passwords.
pub const DEFAULT_REDACTED_QUERY_PARAMS: &[&str] = &[
    "key",
    "api_key",
    "apikey",
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-security-token",
    "x-amz-credential",
    "code",
    "client_secret",
    "password",
    "secret",
    "subscription-key",
];

/// JSON object keys whose values are redacted by default (compared ASCII-case-insensitively,
/// so `apiKey` also covers `apikey` and `APIKEY`).
pub const DEFAULT_REDACTED_JSON_KEYS: &[&str] = &[
    "api_key",
    "apiKey",
    "password",
    "secret",
    "token",
    "authorization",
    "access_token",
    "refresh_token",
    "client_secret",
];

/// Default bound on the size of a JSON body that is checked; a larger one is replaced by a
/// marker. 32 MiB covers Anthropic's Messages API limit (32 MB, reached with images inlined as
/// base64); raise it for larger requests (Anthropic's Batch API takes 256 MB).
pub const DEFAULT_MAX_JSON_BYTES: usize = 32 * 1024 * 1024;

/// Default bound on JSON nesting; a deeper body is replaced by a marker. 128 is serde_json's own
/// limit, so no body a serde-based server would accept is refused.
pub const DEFAULT_MAX_JSON_DEPTH: usize = 128;

/// Default length below which a secret value is not scrubbed from other text.
pub const DEFAULT_MIN_SCRUB_LEN: usize = 4;

/// Base64 as sent in `Basic` credentials, read with or without padding.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type BodyHook = Arc<dyn Fn(&Bytes, &mut Secrets) -> Bytes + Send + Sync>;

/// Takes secrets out of HTTP requests and collects them for [scrubbing](Secrets::scrub).
/// See the [module docs](self) for the rules.
///
/// Cheap to clone (one `Arc`); the builder methods copy the configuration only while it is
/// shared.
#[derive(Clone)]
pub struct Redactor {
    rules: Arc<Rules>,
}

#[derive(Clone)]
struct Rules {
    /// Normalised with [`header_key`].
    headers: BTreeSet<Vec<u8>>,
    /// Normalised with [`query_key`].
    query_params: BTreeSet<Vec<u8>>,
    /// Normalised with [`json_key`].
    json_keys: BTreeSet<Vec<u8>>,
    body_hook: Option<BodyHook>,
    max_json_bytes: usize,
    max_json_depth: usize,
    min_scrub_len: usize,
}

/// A request with its secrets taken out, from [`Redactor::redact_parts`].
#[derive(Debug)]
#[non_exhaustive]
pub struct RedactedParts {
    /// The URI as text (as `Uri` displays it), without userinfo, sensitive query values
    /// replaced by `[REDACTED]`. Not always a valid `Uri`: `[` and `]` must be escaped first
    /// (see `dead_letter::decode_request`).
    pub uri: String,
    /// Every header in order, with sensitive values replaced. `content-length` follows the
    /// redacted body.
    pub headers: Vec<(HeaderName, Vec<u8>)>,
    /// The body after the body hook and the JSON and form rules.
    pub body: Bytes,
    /// Whether `body` differs from the request's body.
    pub body_changed: bool,
    /// Every value taken out, to scrub other text (the error chain) with.
    pub secrets: Secrets,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

impl Redactor {
    /// A redactor with the default names ([`DEFAULT_REDACTED_HEADERS`],
    /// [`DEFAULT_REDACTED_QUERY_PARAMS`], [`DEFAULT_REDACTED_JSON_KEYS`]) and bounds.
    pub fn new() -> Self {
        let mut rules = Rules::empty();
        rules.headers.extend(
            DEFAULT_REDACTED_HEADERS
                .iter()
                .map(|n| header_key(n.as_bytes())),
        );
        rules.query_params.extend(
            DEFAULT_REDACTED_QUERY_PARAMS
                .iter()
                .map(|n| query_key(n.as_bytes())),
        );
        rules.json_keys.extend(
            DEFAULT_REDACTED_JSON_KEYS
                .iter()
                .map(|n| json_key(n.as_bytes())),
        );
        Redactor {
            rules: Arc::new(rules),
        }
    }

    /// A redactor that knows no names: only userinfo is removed. Start from here to replace the
    /// defaults rather than add to them.
    pub fn empty() -> Self {
        Redactor {
            rules: Arc::new(Rules::empty()),
        }
    }

    /// Also redacts the header `name` (compared as the module docs say).
    #[must_use]
    pub fn redact_header(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.rules)
            .headers
            .insert(header_key(name.as_bytes()));
        self
    }

    /// Also redacts the query parameter (and form field) `name`.
    #[must_use]
    pub fn redact_query_param(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.rules)
            .query_params
            .insert(query_key(name.as_bytes()));
        self
    }

    /// Also redacts the value of the JSON object key `name`, at any depth.
    #[must_use]
    pub fn redact_json_key(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.rules)
            .json_keys
            .insert(json_key(name.as_bytes()));
        self
    }

    /// Passes every body through `hook` first (for formats the built-in rules do not read).
    /// The hook should [`add`](Secrets::add) each value it removes, so the error chain is
    /// scrubbed of it too; the JSON and form rules then run on what it returns.
    #[must_use]
    pub fn body_hook(
        mut self,
        hook: impl Fn(&Bytes, &mut Secrets) -> Bytes + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.rules).body_hook = Some(Arc::new(hook));
        self
    }

    /// JSON bodies larger than this are replaced by a marker instead of being checked
    /// (default [`DEFAULT_MAX_JSON_BYTES`]).
    #[must_use]
    pub fn max_json_bytes(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.rules).max_json_bytes = bytes;
        self
    }

    /// JSON bodies nesting deeper than this are replaced by a marker (default
    /// [`DEFAULT_MAX_JSON_DEPTH`]).
    #[must_use]
    pub fn max_json_depth(mut self, depth: usize) -> Self {
        Arc::make_mut(&mut self.rules).max_json_depth = depth;
        self
    }

    /// Secret values shorter than this many bytes are not scrubbed from other text (default
    /// [`DEFAULT_MIN_SCRUB_LEN`]; values of 0 are read as 1).
    #[must_use]
    pub fn min_scrub_len(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.rules).min_scrub_len = bytes.max(1);
        self
    }

    /// An empty collection that scrubs with this redactor's URL rules and minimum length (to
    /// clean text that goes with no request, or to fill by hand).
    pub fn secrets(&self) -> Secrets {
        Secrets {
            min_len: self.rules.min_scrub_len,
            rules: Some(self.rules.clone()),
            ..Secrets::default()
        }
    }

    /// Whether the header `name` is redacted.
    pub fn is_sensitive_header(&self, name: &str) -> bool {
        self.rules.headers.contains(&header_key(name.as_bytes()))
    }

    /// Whether the query parameter `name` (as written in a URL, percent-encoded or not) is
    /// redacted.
    pub fn is_sensitive_query_param(&self, name: &str) -> bool {
        self.rules
            .query_params
            .contains(&query_key(name.as_bytes()))
    }

    /// Takes the secrets out of a request's URI, headers and body. See the [module docs](self).
    pub fn redact_parts(&self, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> RedactedParts {
        let mut secrets = self.secrets();
        let (mut uri_text, path_start) = self.uri(uri, &mut secrets);

        let mut redacted_headers = Vec::with_capacity(headers.len());
        let mut sensitive = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let key = header_key(name.as_str().as_bytes());
            if self.rules.headers.contains(&key) {
                collect_header_secrets(&key, value.as_bytes(), &mut secrets);
                redacted_headers.push((name.clone(), REDACTED.as_bytes().to_vec()));
                sensitive.push(true);
            } else {
                redacted_headers.push((name.clone(), value.as_bytes().to_vec()));
                sensitive.push(false);
            }
        }

        let (body, body_changed) = self.body(headers, body, &mut secrets);

        // Now that every secret is known, look for echoes of them in the rest of the head. The
        // authority is left alone: a user name that is also part of the host name must not
        // break the host a replay connects to.
        if let Some(rest) = uri_text.get(path_start..) {
            let scrubbed = secrets.scrub(rest);
            uri_text.truncate(path_start);
            uri_text.push_str(&scrubbed);
        }
        for ((name, value), sensitive) in redacted_headers.iter_mut().zip(sensitive) {
            if sensitive || *name == header::HOST || *name == header::CONTENT_LENGTH {
                continue;
            }
            *value = secrets.scrub_bytes(value);
        }
        if body_changed {
            // A replay must not announce the original length for a body that changed.
            for (name, value) in &mut redacted_headers {
                if *name == header::CONTENT_LENGTH {
                    *value = body.len().to_string().into_bytes();
                }
            }
        }
        RedactedParts {
            uri: uri_text,
            headers: redacted_headers,
            body,
            body_changed,
            secrets,
        }
    }

    /// The URI as text without userinfo and with sensitive query values redacted, and where its
    /// path starts in that text.
    fn uri(&self, uri: &Uri, secrets: &mut Secrets) -> (String, usize) {
        let mut text = String::with_capacity(64);
        if let Some(scheme) = uri.scheme_str() {
            text.push_str(scheme);
            text.push_str("://");
        }
        if let Some(authority) = uri.authority() {
            // `http` takes everything before the last `@` as userinfo, so do the same.
            match authority.as_str().rsplit_once('@') {
                Some((userinfo, host)) => {
                    collect_userinfo_secrets(userinfo.as_bytes(), secrets);
                    text.push_str(host);
                }
                None => text.push_str(authority.as_str()),
            }
        }
        let path_start = text.len();
        text.push_str(uri.path());
        if let Some(query) = uri.query() {
            text.push('?');
            match redact_pairs(query.as_bytes(), &self.rules.query_params, secrets) {
                // Only ASCII and `[REDACTED]` go in, so this is always UTF-8; the fallback keeps
                // the function total rather than trusting that.
                Some(redacted) => text.push_str(&String::from_utf8_lossy(&redacted)),
                None => text.push_str(query),
            }
        }
        (text, path_start)
    }

    /// The body after the hook and the JSON and form rules, and whether it changed.
    fn body(&self, headers: &HeaderMap, body: &Bytes, secrets: &mut Secrets) -> (Bytes, bool) {
        let mut current = match &self.rules.body_hook {
            Some(hook) => hook(body, secrets),
            None => body.clone(),
        };
        match body_kind(headers, &current) {
            BodyKind::Form => {
                if let Some(redacted) = redact_pairs(&current, &self.rules.query_params, secrets) {
                    current = Bytes::from(redacted);
                }
            }
            BodyKind::Json if !self.rules.json_keys.is_empty() => {
                if let Some(redacted) = self.json_body(&current, secrets) {
                    current = redacted;
                }
            }
            BodyKind::Json | BodyKind::Other => {}
        }
        let changed = current != *body;
        (current, changed)
    }

    /// The JSON body with sensitive values replaced, a marker if it is past the bounds, or
    /// `None` to keep it as it is (nothing to redact, or not valid JSON).
    fn json_body(&self, body: &[u8], secrets: &mut Secrets) -> Option<Bytes> {
        let rules = &self.rules;
        if body.len() > rules.max_json_bytes {
            tracing::warn!(
                body_bytes = body.len(),
                max_json_bytes = rules.max_json_bytes,
                "JSON body too large to check for secrets; stored as a marker instead"
            );
            return Some(Bytes::from(format!(
                "[REDACTED: JSON body not stored: {} bytes is over the limit of {} \
                 (Redactor::max_json_bytes)]",
                body.len(),
                rules.max_json_bytes
            )));
        }
        match scan_json(body, &rules.json_keys, rules.max_json_depth) {
            Ok(found) => {
                for leaf in &found.leaves {
                    match *leaf {
                        Leaf::String { start, end } => {
                            let raw = body.get(start..end).unwrap_or_default();
                            secrets.add(raw);
                            secrets.add(decode_json_string(raw));
                        }
                        Leaf::Number { start, end } => {
                            secrets.add(body.get(start..end).unwrap_or_default());
                        }
                    }
                }
                if found.spans.is_empty() {
                    return None;
                }
                let mut out = Vec::with_capacity(body.len());
                let mut last = 0;
                for &(start, end) in &found.spans {
                    out.extend_from_slice(body.get(last..start).unwrap_or_default());
                    out.push(b'"');
                    out.extend_from_slice(REDACTED.as_bytes());
                    out.push(b'"');
                    last = end;
                }
                out.extend_from_slice(body.get(last..).unwrap_or_default());
                Some(Bytes::from(out))
            }
            Err(JsonError::TooDeep) => {
                tracing::warn!(
                    max_json_depth = rules.max_json_depth,
                    "JSON body nests too deep to check for secrets; stored as a marker instead"
                );
                Some(Bytes::from(format!(
                    "[REDACTED: JSON body not stored: it nests deeper than {} levels \
                     (Redactor::max_json_depth)]",
                    rules.max_json_depth
                )))
            }
            // Not JSON after all: the documented rule is to leave it alone.
            Err(JsonError::Invalid) => None,
        }
    }
}

impl Rules {
    fn empty() -> Self {
        Rules {
            headers: BTreeSet::new(),
            query_params: BTreeSet::new(),
            json_keys: BTreeSet::new(),
            body_hook: None,
            max_json_bytes: DEFAULT_MAX_JSON_BYTES,
            max_json_depth: DEFAULT_MAX_JSON_DEPTH,
            min_scrub_len: DEFAULT_MIN_SCRUB_LEN,
        }
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |set: &BTreeSet<Vec<u8>>| {
            set.iter()
                .map(|name| String::from_utf8_lossy(name).into_owned())
                .collect::<Vec<_>>()
        };
        let rules = &self.rules;
        f.debug_struct("Redactor")
            .field("headers", &names(&rules.headers))
            .field("query_params", &names(&rules.query_params))
            .field("json_keys", &names(&rules.json_keys))
            .field("body_hook", &rules.body_hook.is_some())
            .field("max_json_bytes", &rules.max_json_bytes)
            .field("max_json_depth", &rules.max_json_depth)
            .field("min_scrub_len", &rules.min_scrub_len)
            .finish()
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

fn strip_quotes(bytes: &[u8]) -> &[u8] {
    bytes
        .strip_prefix(b"\"")
        .and_then(|inner| inner.strip_suffix(b"\""))
        .unwrap_or(bytes)
}

/// Header names: percent-decoded, ASCII-lowercased, `_` as `-`.
fn header_key(name: &[u8]) -> Vec<u8> {
    percent_decode(name)
        .map(|byte| match byte.to_ascii_lowercase() {
            b'_' => b'-',
            other => other,
        })
        .collect()
}

/// Query parameter names: `+` as a space, percent-decoded, ASCII-lowercased.
fn query_key(name: &[u8]) -> Vec<u8> {
    let plus_as_space: Vec<u8> = name
        .iter()
        .map(|&byte| if byte == b'+' { b' ' } else { byte })
        .collect();
    percent_decode(&plus_as_space)
        .map(|byte| byte.to_ascii_lowercase())
        .collect()
}

/// JSON keys (already unescaped): ASCII-lowercased.
fn json_key(name: &[u8]) -> Vec<u8> {
    name.to_ascii_lowercase()
}

fn collect_header_secrets(key: &[u8], value: &[u8], secrets: &mut Secrets) {
    let value = trim_ascii(value);
    secrets.add(value);
    match key {
        b"cookie" => {
            for pair in value.split(|byte| *byte == b';') {
                if let Some(at) = pair.iter().position(|byte| *byte == b'=') {
                    secrets.add(strip_quotes(trim_ascii(&pair[at + 1..])));
                }
            }
            return;
        }
        b"set-cookie" => {
            // Only the first pair is the cookie; the rest are attributes (`Path=/`).
            let first = value.split(|byte| *byte == b';').next().unwrap_or_default();
            if let Some(at) = first.iter().position(|byte| *byte == b'=') {
                secrets.add(strip_quotes(trim_ascii(&first[at + 1..])));
            }
            return;
        }
        _ => {}
    }
    // `<scheme> <credentials>`: the credentials alone are what an error message would quote.
    let Some(space) = value
        .iter()
        .position(|byte| *byte == b' ' || *byte == b'\t')
    else {
        return;
    };
    let scheme = &value[..space];
    let credentials = trim_ascii(&value[space..]);
    secrets.add(credentials);
    if scheme.eq_ignore_ascii_case(b"basic") {
        if let Ok(decoded) = BASE64_LENIENT.decode(credentials) {
            collect_user_password(&decoded, secrets);
        }
    } else if !scheme.eq_ignore_ascii_case(b"bearer") {
        // `AWS4-HMAC-SHA256 Credential=AKIA.../..., SignedHeaders=..., Signature=...`, Digest's
        // `response="..."`: each parameter value, and an AWS credential's access key id.
        for parameter in credentials.split(|byte| *byte == b',') {
            if let Some(at) = parameter.iter().position(|byte| *byte == b'=') {
                let parameter_value = strip_quotes(trim_ascii(&parameter[at + 1..]));
                secrets.add(parameter_value);
                if let Some(slash) = parameter_value.iter().position(|byte| *byte == b'/') {
                    secrets.add(&parameter_value[..slash]);
                }
            }
        }
    }
}

/// `user:password` as found in `Basic` credentials (decoded bytes).
fn collect_user_password(decoded: &[u8], secrets: &mut Secrets) {
    secrets.add(decoded);
    if let Some(colon) = decoded.iter().position(|byte| *byte == b':') {
        secrets.add(&decoded[..colon]);
        secrets.add(&decoded[colon + 1..]);
    }
}

fn collect_userinfo_secrets(userinfo: &[u8], secrets: &mut Secrets) {
    secrets.add(userinfo);
    let decoded: Vec<u8> = percent_decode(userinfo).collect();
    collect_user_password(&decoded, secrets);
    if let Some(colon) = userinfo.iter().position(|byte| *byte == b':') {
        secrets.add(&userinfo[..colon]);
        secrets.add(&userinfo[colon + 1..]);
    }
    // What an HTTP client turns userinfo into: `Basic base64(user:password)`, from the decoded
    // or (some clients) the encoded text; reqwest sends `user:` when there is no password.
    let mut forms = vec![userinfo.to_vec(), decoded.clone()];
    if !decoded.contains(&b':') {
        let mut with_colon = decoded;
        with_colon.push(b':');
        forms.push(with_colon);
    }
    for form in forms {
        secrets.add(STANDARD.encode(&form));
        secrets.add(general_purpose::STANDARD_NO_PAD.encode(&form));
    }
}

/// `name=value` pairs separated by `&` or `;` with the values of sensitive names replaced, or
/// `None` if nothing was. A sensitive value runs to the next `&` (see the module docs).
fn redact_pairs(input: &[u8], names: &BTreeSet<Vec<u8>>, secrets: &mut Secrets) -> Option<Vec<u8>> {
    if names.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(input.len());
    let mut changed = false;
    let mut at = 0;
    loop {
        let rest = input.get(at..).unwrap_or_default();
        let pair_len = rest
            .iter()
            .position(|byte| matches!(byte, b'&' | b';'))
            .unwrap_or(rest.len());
        let pair = &rest[..pair_len];
        let mut next = at + pair_len;
        if let Some(eq) = pair.iter().position(|byte| *byte == b'=')
            && names.contains(&query_key(&pair[..eq]))
        {
            let value_len = rest[eq + 1..]
                .iter()
                .position(|byte| *byte == b'&')
                .unwrap_or(rest.len() - eq - 1);
            let value = &rest[eq + 1..eq + 1 + value_len];
            if !value.is_empty() {
                secrets.add(value);
                // If `;` did separate parameters, the value ended at it.
                if let Some(semicolon) = value.iter().position(|byte| *byte == b';') {
                    secrets.add(&value[..semicolon]);
                }
                out.extend_from_slice(&rest[..=eq]);
                out.extend_from_slice(REDACTED.as_bytes());
                changed = true;
                next = at + eq + 1 + value_len;
                if let Some(separator) = input.get(next) {
                    out.push(*separator);
                    at = next + 1;
                    continue;
                }
                break;
            }
        }
        out.extend_from_slice(pair);
        match input.get(next) {
            Some(separator) => {
                out.push(*separator);
                at = next + 1;
            }
            None => break,
        }
    }
    changed.then_some(out)
}

enum BodyKind {
    Json,
    Form,
    Other,
}

fn body_kind(headers: &HeaderMap, body: &[u8]) -> BodyKind {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let content_type = content_type.as_bytes();
        let mime = content_type
            .split(|byte| *byte == b';')
            .next()
            .map(trim_ascii)
            .unwrap_or_default();
        if mime.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
            return BodyKind::Form;
        }
        if content_type
            .windows(4)
            .any(|window| window.eq_ignore_ascii_case(b"json"))
        {
            return BodyKind::Json;
        }
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match body
        .iter()
        .find(|byte| !is_json_space(**byte) && **byte != 0x1E)
    {
        Some(b'{' | b'[') => BodyKind::Json,
        _ => BodyKind::Other,
    }
}

#[cfg(test)]
mod tests;
