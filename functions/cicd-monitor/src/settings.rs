//! The CI/CD monitor's settings: `BUILD_REQUESTS_TABLE`, the webhook's URL from the secret
//! `CICD_WEBHOOK_SECRET_ARN` names (the stack's, which holds no value until one is set) or,
//! locally, from `CICD_WEBHOOK_URL`, which then stands in for the secret; both optional.
//! `CICD_WEBHOOK_TIMEOUT_SECS` (default 5), `CICD_WEBHOOK_SECRET_TTL_SECS` (300), and the
//! toolkit's variables.

use std::sync::Arc;
use std::time::Duration;

use shared::adapters::clients::SdkConfig;
use shared::adapters::{clients, DynamoRecordStore};
use shared::consumer::{Consumer, ToolkitSettings};
use shared::retry::Backoff;
use shared::settings::{ConfigError, Settings, Variables};

use crate::secret_webhook::{SecretWebhook, SecretsManagerUrl};
use crate::{BuildNotifier, CicdMonitor, WebhookNotifier};

const BUILD_REQUESTS_TABLE: &str = "BUILD_REQUESTS_TABLE";
/// The webhook URL itself; the template never sets it, since the URL may carry a credential.
const CICD_WEBHOOK_URL: &str = "CICD_WEBHOOK_URL";
/// The Secrets Manager secret whose string is the webhook URL.
const CICD_WEBHOOK_SECRET_ARN: &str = "CICD_WEBHOOK_SECRET_ARN";
const CICD_WEBHOOK_TIMEOUT_SECS: &str = "CICD_WEBHOOK_TIMEOUT_SECS";
/// How long the URL read from its secret is used before the secret is read again.
const CICD_WEBHOOK_SECRET_TTL_SECS: &str = "CICD_WEBHOOK_SECRET_TTL_SECS";

#[derive(Clone)]
pub struct CicdSettings {
    pub build_requests_table: String,
    /// Built from `CICD_WEBHOOK_URL` at start-up, so a bad URL stops the function there.
    pub webhook: Option<Arc<dyn BuildNotifier>>,
    /// The secret holding the webhook URL, read once by `build`.
    pub webhook_secret: Option<String>,
    pub webhook_timeout: Duration,
    pub webhook_secret_ttl: Duration,
    pub toolkit: ToolkitSettings,
}

impl Settings for CicdSettings {
    fn variables() -> Vec<&'static str> {
        [
            &[
                BUILD_REQUESTS_TABLE,
                CICD_WEBHOOK_URL,
                CICD_WEBHOOK_SECRET_ARN,
                CICD_WEBHOOK_TIMEOUT_SECS,
                CICD_WEBHOOK_SECRET_TTL_SECS,
            ][..],
            &ToolkitSettings::VARIABLES,
        ]
        .concat()
    }

    fn local_only() -> Vec<&'static str> {
        vec![CICD_WEBHOOK_URL]
    }

    fn from_variables(variables: &Variables) -> Result<Self, ConfigError> {
        let timeout = variables.parsed_or(CICD_WEBHOOK_TIMEOUT_SECS, 5u64)?;
        if timeout == 0 {
            return Err(ConfigError::invalid(
                CICD_WEBHOOK_TIMEOUT_SECS,
                "must be at least 1",
            ));
        }
        let webhook_timeout = Duration::from_secs(timeout);
        let ttl = variables.parsed_or(CICD_WEBHOOK_SECRET_TTL_SECS, 300u64)?;
        if ttl == 0 {
            // Zero would read the secret again for every build request.
            return Err(ConfigError::invalid(
                CICD_WEBHOOK_SECRET_TTL_SECS,
                "must be at least 1",
            ));
        }
        let webhook_secret_ttl = Duration::from_secs(ttl);
        let url = variables.optional(CICD_WEBHOOK_URL);
        let webhook_secret = variables.optional(CICD_WEBHOOK_SECRET_ARN);
        // Locally the URL itself, when set, stands in for the stack's secret.
        let webhook_secret = webhook_secret.filter(|_| url.is_none());
        let webhook = url
            .map(|url| notifier(&url, webhook_timeout, CICD_WEBHOOK_URL))
            .transpose()?;
        Ok(CicdSettings {
            build_requests_table: variables.required(BUILD_REQUESTS_TABLE)?,
            webhook,
            webhook_secret,
            webhook_timeout,
            webhook_secret_ttl,
            toolkit: ToolkitSettings::from_variables(variables)?,
        })
    }
}

impl CicdSettings {
    /// The consumer; reads the webhook's secret first when one is named, so a secret that
    /// cannot be read or holds no usable URL stops the function at start. The secret is
    /// read again after `CICD_WEBHOOK_SECRET_TTL_SECS` and when the webhook answers 401
    /// or 403.
    pub async fn build(&self, aws: &SdkConfig) -> Result<Consumer, ConfigError> {
        let webhook = match (&self.webhook, &self.webhook_secret) {
            (Some(webhook), _) => Some(webhook.clone()),
            (None, Some(secret)) => {
                let source = SecretsManagerUrl::new(aws, secret.clone());
                let webhook = SecretWebhook::new(
                    Arc::new(source),
                    self.webhook_timeout,
                    Backoff::default(),
                    self.webhook_secret_ttl,
                )
                .await
                .map_err(|err| ConfigError::invalid(CICD_WEBHOOK_SECRET_ARN, err.to_string()))?;
                Some(Arc::new(webhook) as Arc<dyn BuildNotifier>)
            }
            (None, None) => None,
        };
        let requests = DynamoRecordStore::new(clients::dynamodb(aws), &self.build_requests_table);
        let monitor = CicdMonitor::new(Arc::new(requests), webhook);
        Ok(self.toolkit.build(aws, Arc::new(monitor)))
    }
}

/// The notifier of `url`; a refusal names `source`, never the URL.
fn notifier(
    url: &str,
    timeout: Duration,
    source: &'static str,
) -> Result<Arc<dyn BuildNotifier>, ConfigError> {
    let notifier = WebhookNotifier::new(url, timeout, Backoff::default())
        .map_err(|err| ConfigError::invalid(source, err.to_string()))?;
    Ok(Arc::new(notifier))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variables(extra: &[(&str, &str)]) -> Variables {
        let mut values = vec![(BUILD_REQUESTS_TABLE, "requests")];
        values.extend_from_slice(extra);
        Variables::new(values)
    }

    #[test]
    fn a_secret_ttl_of_zero_should_be_refused_naming_it() {
        match CicdSettings::from_variables(&variables(&[(CICD_WEBHOOK_SECRET_TTL_SECS, "0")])) {
            Err(ConfigError::Invalid { name, .. }) => {
                assert_eq!(name, CICD_WEBHOOK_SECRET_TTL_SECS)
            }
            other => panic!("a TTL of 0 was taken: {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn when_both_the_url_and_its_secret_are_set_should_use_the_url_and_never_read_the_secret() {
        let url = "https://hooks.example.com/builds?token=t0k3n";
        let settings = CicdSettings::from_variables(&variables(&[
            (CICD_WEBHOOK_URL, url),
            (
                CICD_WEBHOOK_SECRET_ARN,
                "arn:aws:secretsmanager:us-east-1:1:secret:hook",
            ),
        ]))
        .unwrap();

        assert!(settings.webhook.is_some());
        assert!(settings.webhook_secret.is_none());
    }

    #[test]
    fn when_a_secret_is_named_should_read_nothing_before_the_build() {
        let settings = CicdSettings::from_variables(&variables(&[(
            CICD_WEBHOOK_SECRET_ARN,
            "arn:aws:secretsmanager:us-east-1:1:secret:hook",
        )]))
        .unwrap();

        assert!(settings.webhook.is_none());
        assert_eq!(
            settings.webhook_secret.as_deref(),
            Some("arn:aws:secretsmanager:us-east-1:1:secret:hook")
        );
    }

    #[test]
    fn when_the_url_is_not_one_should_name_the_variable_but_not_the_value() {
        let err =
            CicdSettings::from_variables(&variables(&[(CICD_WEBHOOK_URL, "ftp://s3cr3t@h/x")]))
                .err()
                .expect("refused");

        let message = err.to_string();
        assert!(message.contains(CICD_WEBHOOK_URL), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
    }
}
