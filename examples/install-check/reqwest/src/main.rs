//! Builds both clients of the README's reqwest setup (nothing is sent: the tests call a mock
//! API). Run: `cargo run -p install-check-reqwest`.

use steadfast::BoxError;
use steadfast::Registry;

fn main() -> Result<(), BoxError> {
    let fallback = install_check_reqwest::Fallback {
        base_url: "http://vllm.internal:8000".to_owned(),
        api_key: "local-key".to_owned(),
    };
    let client = reqwest::Client::new();
    let registry = Registry::new();
    let _stack = install_check_reqwest::over_client(&registry, &client, &fallback)?;
    let other = Registry::new();
    let _client = install_check_reqwest::with_middleware(&other, &client, &fallback)?;
    println!("reqwest: a tower stack over reqwest::Client and a ClientWithMiddleware, built");
    Ok(())
}
