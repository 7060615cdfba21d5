//! TLS of every outgoing connection: rustls on the `ring` crypto provider, verifying
//! servers against the platform's root certificates, which are read once, on first use.

use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Builder;

/// The HTTPS client of the AWS SDK clients. Its connections, and their TLS
/// configuration, are made when a request first needs them, not at start-up.
pub fn https_client() -> SharedHttpClient {
    install_crypto_provider();
    Builder::new()
        .tls_provider(Provider::rustls(CryptoMode::Ring))
        .build_https()
}

/// Makes `ring` the process's rustls provider, for the clients that take the process's
/// (the webhook's `reqwest`); once per process, later calls change nothing.
pub fn install_crypto_provider() {
    // Err means a provider is installed already: the first one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
