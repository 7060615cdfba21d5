//! TLS of every outgoing connection: rustls on the `ring` crypto provider, verifying
//! servers against the platform's root certificates.
//!
//! The SDK's HTTPS client reads those certificates when each SDK client is built, which
//! would put the reading (a bundle file, and on Debian a directory of about 150 more) on
//! every cold start's path. Here a thread of its own reads them once, while the function
//! goes on starting and waits for its first event; the first connection that needs them
//! takes them from there (and waits, should the thread still be reading).

use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Builder;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;

/// The HTTPS client of the AWS SDK clients, its root certificates being read on a thread
/// of its own from now on.
pub fn https_client() -> SharedHttpClient {
    install_crypto_provider();
    let https = Builder::new()
        .tls_provider(Provider::rustls(CryptoMode::Ring))
        .build_https();
    let warming = https.clone();
    let spawned = std::thread::Builder::new()
        .name("tls-roots".to_owned())
        .spawn(move || {
            // The SDK's own check of a client's HTTP client: it builds a connector, and so
            // reads the platform's roots into the SDK's process-wide cache.
            if let Err(err) = warming.validate_base_client_config(
                &RuntimeComponentsBuilder::new("tls-roots"),
                &ConfigBag::base(),
            ) {
                // Nothing is lost: the first connection builds its own and fails, if it
                // must, with the SDK's error for the call.
                tracing::warn!(error = %err, "the HTTPS client could not be prepared ahead of the first call");
            }
        });
    if spawned.is_err() {
        // No thread: the first connection reads them.
        tracing::debug!("the root certificates will be read on first use");
    }
    SharedHttpClient::new(ReadsRootsAhead { inner: https })
}

/// The SDK's HTTPS client, but for its check at each SDK client's construction, which
/// would read the root certificates there and then.
#[derive(Debug)]
struct ReadsRootsAhead {
    inner: SharedHttpClient,
}

impl HttpClient for ReadsRootsAhead {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.inner.http_connector(settings, components)
    }

    fn validate_base_client_config(
        &self,
        _: &RuntimeComponentsBuilder,
        _: &ConfigBag,
    ) -> Result<(), BoxError> {
        Ok(())
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

/// Makes `ring` the process's rustls provider, for the clients that take the process's
/// (the webhook's `reqwest`); once per process, later calls change nothing.
pub fn install_crypto_provider() {
    // Err means a provider is installed already: the first one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
