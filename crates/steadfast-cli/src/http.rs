//! A minimal HTTP/1.1 POST over plain TCP, enough to replay dead letters to an `http://`
//! endpoint without pulling an HTTP client into the CLI.

use std::fmt::Write as _;
use std::time::Duration;

use steadfast::BoxError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An `http://host[:port]/path` target.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    authority: String,
    host: String,
    path: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self, BoxError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("`{url}` is not an http:// URL (https is not supported by --to-http; put a local proxy in front)")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("`{url}` has no host").into());
        }
        let host = authority.split(':').next().unwrap_or(authority).to_string();
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Target {
            authority,
            host,
            path: path.to_string(),
        })
    }

    /// POSTs `body`; `Ok` for a 2xx answer.
    pub(crate) async fn post(
        &self,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<u16, BoxError> {
        let exchange = async {
            let mut stream = TcpStream::connect(&self.authority).await?;
            let mut request = format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
                self.path,
                self.host,
                body.len()
            );
            for (name, value) in headers {
                // A value with a line break could smuggle headers: drop control characters.
                let value: String = value.chars().filter(|c| !c.is_control()).collect();
                let _ = write!(request, "{name}: {value}\r\n");
            }
            request.push_str("\r\n");
            stream.write_all(request.as_bytes()).await?;
            stream.write_all(body).await?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        let response = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .map_err(|_| format!("{} did not answer within 30 s", self.authority))?
            .map_err(|e| format!("POST to {}{} failed: {e}", self.authority, self.path))?;
        let status_line = response.split(|b| *b == b'\n').next().unwrap_or_default();
        let status = std::str::from_utf8(status_line)
            .ok()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or("the replay target did not answer with HTTP")?;
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(format!("the replay target answered HTTP {status}").into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn parses_http_urls_and_refuses_others() {
        let target = Target::parse("http://127.0.0.1:8080/agent/replay").unwrap();
        assert_eq!(
            (target.authority.as_str(), target.path.as_str()),
            ("127.0.0.1:8080", "/agent/replay")
        );
        assert_eq!(
            Target::parse("http://example").unwrap().authority,
            "example:80"
        );
        assert!(Target::parse("https://example").is_err());
        assert!(Target::parse("http:///x").is_err());
    }
}
