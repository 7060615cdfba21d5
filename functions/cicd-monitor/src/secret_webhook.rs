//! The webhook whose URL its secret holds: read at start, again once `ttl` has passed, and
//! at once when the webhook refuses the credential (401, 403), so a URL rotated in Secrets
//! Manager is taken up without a restart. The URL never reaches a log line or an error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::StatusCode;
use shared::adapters::clients::SdkConfig;
use shared::retry::Backoff;
use tokio::sync::Mutex;
use tracing::info;

use crate::secret::{secret_string, SecretError};
use crate::webhook::{BuildNotifier, WebhookError, WebhookNotifier};
use crate::BuildRequest;

/// Where the URL is read from: Secrets Manager in AWS, a fake in tests.
#[async_trait]
pub trait UrlSource: Send + Sync {
    async fn read(&self) -> Result<String, SecretError>;
}

pub struct SecretsManagerUrl {
    pub aws: SdkConfig,
    pub secret_id: String,
}

#[async_trait]
impl UrlSource for SecretsManagerUrl {
    async fn read(&self) -> Result<String, SecretError> {
        secret_string(&self.aws, &self.secret_id).await
    }
}

struct Current {
    url: String,
    notifier: Arc<WebhookNotifier>,
    read_at: Instant,
}

pub struct SecretWebhook {
    source: Arc<dyn UrlSource>,
    timeout: Duration,
    backoff: Backoff,
    ttl: Duration,
    current: Mutex<Current>,
}

/// Why the secret gave no webhook; names neither the secret's value nor the URL.
#[derive(Debug, thiserror::Error)]
pub enum SecretWebhookError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("the secret's value is not a usable webhook URL: {0}")]
    Invalid(#[from] crate::webhook::InvalidWebhook),
}

impl SecretWebhook {
    /// Reads the URL once, so a secret that cannot be read or holds no usable URL stops
    /// the function at start.
    pub async fn new(
        source: Arc<dyn UrlSource>,
        timeout: Duration,
        backoff: Backoff,
        ttl: Duration,
    ) -> Result<SecretWebhook, SecretWebhookError> {
        let url = source.read().await?;
        let notifier = Arc::new(WebhookNotifier::new(&url, timeout, backoff)?);
        Ok(SecretWebhook {
            source,
            timeout,
            backoff,
            ttl,
            current: Mutex::new(Current {
                url,
                notifier,
                read_at: Instant::now(),
            }),
        })
    }

    /// The notifier of the secret's URL, read again when it is older than the TTL or when
    /// `refused` (the notifier whose URL the webhook refused) is still the current one.
    /// Returns whether the URL changed since `refused`.
    async fn notifier(
        &self,
        refused: Option<&Arc<WebhookNotifier>>,
    ) -> Result<(Arc<WebhookNotifier>, bool), WebhookError> {
        let mut current = self.current.lock().await;
        match refused {
            // Another request of the batch took up the rotated URL meanwhile.
            Some(refused) if !Arc::ptr_eq(refused, &current.notifier) => {
                return Ok((current.notifier.clone(), true));
            }
            None if current.read_at.elapsed() < self.ttl => {
                return Ok((current.notifier.clone(), false));
            }
            _ => {}
        }
        let url = self
            .source
            .read()
            .await
            .map_err(|err| WebhookError::Secret(err.to_string()))?;
        current.read_at = Instant::now();
        if url == current.url {
            return Ok((current.notifier.clone(), false));
        }
        let notifier = WebhookNotifier::new(&url, self.timeout, self.backoff)
            .map_err(|err| WebhookError::Secret(err.to_string()))?;
        info!("the webhook's URL changed in its secret; posting to the new one");
        current.url = url;
        current.notifier = Arc::new(notifier);
        Ok((current.notifier.clone(), true))
    }
}

#[async_trait]
impl BuildNotifier for SecretWebhook {
    async fn notify(&self, request: &BuildRequest) -> Result<(), WebhookError> {
        let (notifier, _) = self.notifier(None).await?;
        match notifier.notify(request).await {
            // The credential in the URL may have been rotated: read it again, and post
            // once more if it did change.
            Err(WebhookError::Status { status, host })
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
            {
                match self.notifier(Some(&notifier)).await? {
                    (again, true) => again.notify(request).await,
                    (_, false) => Err(WebhookError::Status { status, host }),
                }
            }
            answer => answer,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex as StdMutex;

    use axum::http::StatusCode as AxumStatus;

    use super::*;
    use crate::webhook::tests::{fast, hook, request};

    /// A secret whose value is the last URL `rotate` gave it, counting its reads.
    struct Rotating {
        url: StdMutex<String>,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl UrlSource for Rotating {
        async fn read(&self) -> Result<String, SecretError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.url.lock().unwrap().clone())
        }
    }

    fn secret(url: &str) -> Arc<Rotating> {
        Arc::new(Rotating {
            url: StdMutex::new(url.to_owned()),
            reads: AtomicUsize::new(0),
        })
    }

    async fn webhook(source: Arc<Rotating>, ttl: Duration) -> SecretWebhook {
        SecretWebhook::new(source, Duration::from_secs(2), fast(), ttl)
            .await
            .expect("the secret holds a URL")
    }

    #[tokio::test]
    async fn when_the_webhook_refuses_a_rotated_credential_should_read_the_secret_and_post_again() {
        // Given a webhook whose old URL is refused (401) and a secret rotated to the new one
        let old = hook(usize::MAX, AxumStatus::UNAUTHORIZED).await;
        let new = hook(0, AxumStatus::UNAUTHORIZED).await;
        let source = secret(&old.url);
        let webhook = webhook(source.clone(), Duration::from_secs(3600)).await;
        *source.url.lock().unwrap() = new.url.clone();

        // When a build request is posted
        webhook
            .notify(&request())
            .await
            .expect("posted to the new URL");

        // Then the old URL was tried once, the secret read again, and the new URL taken
        assert_eq!(old.calls.load(Ordering::SeqCst), 1);
        assert_eq!(new.calls.load(Ordering::SeqCst), 1);
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn when_requests_refused_together_should_all_take_up_the_rotated_url() {
        // Given a rotated secret, and two build requests refused by the old URL at once
        let old = hook(usize::MAX, AxumStatus::UNAUTHORIZED).await;
        let new = hook(0, AxumStatus::UNAUTHORIZED).await;
        let source = secret(&old.url);
        let webhook = webhook(source.clone(), Duration::from_secs(3600)).await;
        *source.url.lock().unwrap() = new.url.clone();

        // When both are posted concurrently
        let (one, two) = (request(), request());
        let (first, second) = tokio::join!(webhook.notify(&one), webhook.notify(&two));

        // Then both reach the new URL; the secret was read again once
        first.expect("the first posted to the new URL");
        second.expect("the second posted to the new URL");
        assert_eq!(old.calls.load(Ordering::SeqCst), 2);
        assert_eq!(new.calls.load(Ordering::SeqCst), 2);
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn when_the_secret_is_unchanged_a_refusal_should_stand() {
        // Given a webhook that refuses (403) the only URL its secret holds
        let hook = hook(usize::MAX, AxumStatus::FORBIDDEN).await;
        let source = secret(&hook.url);
        let webhook = webhook(source.clone(), Duration::from_secs(3600)).await;

        // When a build request is posted
        let err = webhook.notify(&request()).await.expect_err("refused");

        // Then the refusal is the answer, after one more read and no second post
        assert!(
            matches!(err, WebhookError::Status { status, .. } if status == StatusCode::FORBIDDEN),
            "{err}"
        );
        assert_eq!(hook.calls.load(Ordering::SeqCst), 1);
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn when_the_ttl_has_passed_should_read_the_secret_again_before_posting() {
        // Given a secret rotated to a new URL, and a TTL already over
        let old = hook(0, AxumStatus::UNAUTHORIZED).await;
        let new = hook(0, AxumStatus::UNAUTHORIZED).await;
        let source = secret(&old.url);
        let webhook = webhook(source.clone(), Duration::ZERO).await;
        *source.url.lock().unwrap() = new.url.clone();

        // When a build request is posted
        webhook.notify(&request()).await.expect("posted");

        // Then it goes to the new URL only
        assert_eq!(old.calls.load(Ordering::SeqCst), 0);
        assert_eq!(new.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn within_the_ttl_should_not_read_the_secret_again() {
        let hook = hook(0, AxumStatus::UNAUTHORIZED).await;
        let source = secret(&hook.url);
        let webhook = webhook(source.clone(), Duration::from_secs(3600)).await;
        for _ in 0..3 {
            webhook.notify(&request()).await.expect("posted");
        }
        assert_eq!(source.reads.load(Ordering::SeqCst), 1);
        assert_eq!(hook.calls.load(Ordering::SeqCst), 3);
    }
}
