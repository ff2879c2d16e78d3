//! [`CheckpointCodec`]: how a step's answer becomes bytes in the store and back.

use crate::error::BoxError;

/// Encodes a response for the checkpoint store and decodes it back when the step is answered
/// from the store. Encoding is where secrets are left out: what the codec writes is what the
/// store keeps, and what a resumed workflow gets back.
///
/// Implemented by [`JsonCodec`] (feature `serde`) and by any pair of closures wrapped in
/// [`FnCodec`].
pub trait CheckpointCodec<Res>: Send + Sync + 'static {
    /// The bytes to store for `response`.
    fn encode(&self, response: &Res) -> Result<Vec<u8>, BoxError>;

    /// The response `bytes` were encoded from.
    fn decode(&self, bytes: &[u8]) -> Result<Res, BoxError>;
}

/// A codec made of two closures: `FnCodec::new(encode, decode)`.
#[derive(Clone)]
pub struct FnCodec<E, D> {
    encode: E,
    decode: D,
}

impl<E, D> FnCodec<E, D> {
    /// A codec that encodes with `encode` and decodes with `decode`.
    pub const fn new(encode: E, decode: D) -> Self {
        FnCodec { encode, decode }
    }
}

impl<E, D> std::fmt::Debug for FnCodec<E, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnCodec")
    }
}

impl<Res, E, D> CheckpointCodec<Res> for FnCodec<E, D>
where
    E: Fn(&Res) -> Result<Vec<u8>, BoxError> + Send + Sync + 'static,
    D: Fn(&[u8]) -> Result<Res, BoxError> + Send + Sync + 'static,
{
    fn encode(&self, response: &Res) -> Result<Vec<u8>, BoxError> {
        (self.encode)(response)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Res, BoxError> {
        (self.decode)(bytes)
    }
}

/// Stores typed responses as JSON (feature `serde`). Object fields named as secrets
/// ([`redact_field`](Self::redact_field); by default `api_key`, `authorization`, `password`,
/// `secret`, `token` and `access_token`, compared without case) are replaced with
/// `"[REDACTED]"` at any depth before storing, as the dead-letter path scrubs requests.
#[cfg(feature = "serde")]
#[derive(Clone, Debug)]
pub struct JsonCodec {
    redact: Vec<String>,
}

/// What a redacted value becomes (the dead-letter path's mark).
pub const REDACTED: &str = "[REDACTED]";

#[cfg(feature = "serde")]
impl Default for JsonCodec {
    fn default() -> Self {
        JsonCodec {
            redact: [
                "api_key",
                "authorization",
                "password",
                "secret",
                "token",
                "access_token",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

#[cfg(feature = "serde")]
impl JsonCodec {
    /// The JSON codec with the default secret field names.
    pub fn new() -> Self {
        JsonCodec::default()
    }

    /// Also redacts object fields named `name` (compared without case).
    #[must_use]
    pub fn redact_field(mut self, name: impl Into<String>) -> Self {
        self.redact.push(name.into());
        self
    }

    fn scrub(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (name, field) in map.iter_mut() {
                    if self.redact.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                        *field = serde_json::Value::String(REDACTED.to_owned());
                    } else {
                        self.scrub(field);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|item| self.scrub(item)),
            _ => {}
        }
    }
}

#[cfg(feature = "serde")]
impl<Res> CheckpointCodec<Res> for JsonCodec
where
    Res: serde::Serialize + serde::de::DeserializeOwned,
{
    fn encode(&self, response: &Res) -> Result<Vec<u8>, BoxError> {
        let mut value = serde_json::to_value(response)?;
        self.scrub(&mut value);
        Ok(serde_json::to_vec(&value)?)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Res, BoxError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    #[test]
    fn json_codec_redacts_secret_fields_at_any_depth() {
        let response = serde_json::json!({
            "text": "plan", "usage": {"API_KEY": "sk-123456"}, "calls": [{"token": "t0k3n"}]
        });
        let bytes = JsonCodec::new().encode(&response).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            !text.contains("sk-123456") && !text.contains("t0k3n"),
            "{text}"
        );
        let back: serde_json::Value = JsonCodec::new().decode(&bytes).unwrap();
        assert_eq!(back["text"], "plan");
        assert_eq!(back["usage"]["API_KEY"], REDACTED);
    }
}
