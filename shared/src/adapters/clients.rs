//! SDK clients built once per process from one shared AWS configuration, loaded by
//! `aws-config` as every AWS program loads it: credentials from the default chain (the
//! environment first, which is where Lambda puts the role's; then the profile that
//! `AWS_PROFILE` names, web identity, container and instance credentials), the region from
//! `AWS_REGION` or the profile, and endpoints from the SDK's own `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT_URL_<SERVICE>` variables or the profile's `endpoint_url`. The code has no
//! local mode: the emulators are endpoints like any other.
//!
//! On top of the defaults: bounded timeouts, the SDK's standard retries, and one HTTPS
//! client for the loader's own providers and every SDK client.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, ConfigLoader};

use aws_config::AppName;

use super::capacity::CapacityInterceptor;
use super::tls;
use crate::retry::Backoff;
use crate::settings::ConfigError;

/// The default chain with this project's timeouts, retries and HTTPS client, for a caller
/// to add to (a tool's `--profile`, an endpoint) before `load`.
pub fn loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(tls::https_client())
        .retry_config(RetryConfig::standard())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(15))
                .build(),
        )
        // Every call's bodies are small JSON documents, and the attempt timeout above bounds
        // a stalled one; the SDK's stream monitor would add a timer to each body.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
}

/// Loads the configuration once for the process. Credentials are resolved at the first
/// call and cached; only the region is required here, so that a process without one stops
/// at start-up saying so rather than at its first request.
pub async fn load_config() -> Result<SdkConfig, ConfigError> {
    loaded(loader()).await
}

/// Loads what `loader` describes, with the same check.
pub async fn loaded(loader: ConfigLoader) -> Result<SdkConfig, ConfigError> {
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(ConfigError::NoRegion);
    }
    Ok(config)
}

/// A DynamoDB client whose every call asks for its consumed capacity and records it
/// (`capacity`) under the function `config` is for: its app name (`for_function`), else
/// Lambda's `AWS_LAMBDA_FUNCTION_NAME`.
pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let function = config
        .app_name()
        .map(|name| name.to_string())
        .or_else(|| std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok())
        .unwrap_or_else(|| "unnamed".to_owned());
    let dynamodb_config = aws_sdk_dynamodb::config::Builder::from(config)
        .interceptor(CapacityInterceptor::new(function))
        .build();
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config)
}

/// `config` for one function of several in a process (the dev server runs them all): the
/// name its calls' consumed capacity is recorded under, and its SDK user agent's app name.
pub fn for_function(config: &SdkConfig, function: &str) -> SdkConfig {
    match AppName::new(function.to_owned()) {
        Ok(name) => config.to_builder().app_name(name).build(),
        Err(_) => config.clone(),
    }
}

/// An SNS client that retries transient failures of whole calls with `backoff`.
pub fn sns(config: &SdkConfig, backoff: &Backoff) -> aws_sdk_sns::Client {
    let sns_config = aws_sdk_sns::config::Builder::from(config)
        .retry_config(backoff.sdk_retry_config())
        .build();
    aws_sdk_sns::Client::from_conf(sns_config)
}

pub fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// An SQS client for long polling: each call may wait `wait` for messages, so its
/// timeouts are that much longer than the default ones.
pub fn sqs_long_polling(config: &SdkConfig, wait: Duration) -> aws_sdk_sqs::Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(wait + Duration::from_secs(5))
        .operation_timeout(wait + Duration::from_secs(15))
        .build();
    let sqs_config = aws_sdk_sqs::config::Builder::from(config)
        .timeout_config(timeouts)
        .build();
    aws_sdk_sqs::Client::from_conf(sqs_config)
}

#[cfg(test)]
mod tests {
    use aws_config::Region;
    use aws_types::os_shim_internal::{Env, Fs};

    use super::*;

    /// The loader, reading `variables` and `files` only, never the process's own.
    fn isolated(variables: &[(&str, &str)], files: &[(&str, &str)]) -> ConfigLoader {
        loader()
            .env(Env::from_slice(variables))
            .fs(Fs::from_slice(files))
    }

    const LAMBDA: [(&str, &str); 4] = [
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
    ];

    #[tokio::test]
    async fn lambdas_variables_should_give_the_region_and_the_roles_credentials() {
        let aws = loaded(isolated(&LAMBDA, &[]))
            .await
            .expect("a configuration");
        assert_eq!(aws.region(), Some(&Region::new("eu-west-1")));
        let credentials = credentials(&aws).await;
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.session_token(), Some("token"));
    }

    #[tokio::test]
    async fn a_named_profile_should_give_region_credentials_and_endpoint() {
        let variables = [
            ("AWS_PROFILE", "emulators"),
            ("AWS_CONFIG_FILE", "/home/me/.aws/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/home/me/.aws/credentials"),
            ("HOME", "/home/me"),
        ];
        let files = [
            (
                "/home/me/.aws/config",
                "[profile emulators]\nregion = us-east-2\nendpoint_url = http://127.0.0.1:4566\n",
            ),
            (
                "/home/me/.aws/credentials",
                "[emulators]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n",
            ),
        ];
        let aws = loaded(isolated(&variables, &files))
            .await
            .expect("a configuration");
        assert_eq!(aws.region(), Some(&Region::new("us-east-2")));
        assert_eq!(aws.endpoint_url(), Some("http://127.0.0.1:4566"));
        assert_eq!(credentials(&aws).await.access_key_id(), "AKIDPROFILE");
    }

    #[tokio::test]
    async fn without_a_region_should_stop_saying_so() {
        let without: Vec<_> = LAMBDA
            .into_iter()
            .filter(|(n, _)| *n != "AWS_REGION")
            .collect();
        let variables = [without.as_slice(), &[("AWS_EC2_METADATA_DISABLED", "true")]].concat();
        match loaded(isolated(&variables, &[])).await {
            Err(ConfigError::NoRegion) => {}
            other => panic!("expected no region, got {other:?}"),
        }
    }

    async fn credentials(aws: &SdkConfig) -> aws_credential_types::Credentials {
        use aws_credential_types::provider::ProvideCredentials;
        aws.credentials_provider()
            .expect("a credentials provider")
            .provide_credentials()
            .await
            .expect("credentials")
    }
}
