//! The webhook whose URL its secret holds: read at start, again once `ttl` has passed, and
//! at once when the webhook refuses the credential (401, 403), so a URL set or rotated in
//! Secrets Manager is taken up without a restart. While the secret holds no value, build
//! requests are recorded and not posted. A failed read keeps the URL last read (and is
//! tried again after `RETRY_AFTER_FAILED_READ`), and so does a new value that is no usable
//! URL. The URL never reaches a log line or an error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::StatusCode;
use shared::retry::Backoff;
use tokio::sync::Mutex;
use tracing::{error, info, warn};

use crate::secret::{secret_string, SecretError};
use crate::webhook::{BuildNotifier, WebhookError, WebhookNotifier};
use crate::BuildRequest;

/// How soon a read that failed is tried again (at most the TTL).
pub const RETRY_AFTER_FAILED_READ: Duration = Duration::from_secs(30);

/// Where the URL is read from: Secrets Manager in AWS, a fake in tests. `None`: the secret
/// holds no value (yet).
#[async_trait]
pub trait UrlSource: Send + Sync {
    async fn read(&self) -> Result<Option<String>, SecretError>;
}

/// A secret in Secrets Manager, read with one client for the function's life.
pub struct SecretsManagerUrl {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerUrl {
    pub fn new(aws: &shared::adapters::clients::SdkConfig, secret_id: impl Into<String>) -> Self {
        SecretsManagerUrl {
            client: aws_sdk_secretsmanager::Client::new(aws),
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait]
impl UrlSource for SecretsManagerUrl {
    async fn read(&self) -> Result<Option<String>, SecretError> {
        secret_string(&self.client, &self.secret_id).await
    }
}

/// The URL last read and its notifier.
struct Hook {
    url: String,
    notifier: Arc<WebhookNotifier>,
}

struct Current {
    /// `None` while the secret holds no value.
    hook: Option<Hook>,
    /// When the secret is read again before posting.
    next_read: Instant,
}

pub struct SecretWebhook {
    source: Arc<dyn UrlSource>,
    timeout: Duration,
    backoff: Backoff,
    ttl: Duration,
    /// Held while the secret is read, so that requests arriving meanwhile wait for that one
    /// read rather than each making their own.
    current: Mutex<Current>,
}

/// Why the secret gave no webhook at start; names neither the secret's value nor the URL.
#[derive(Debug, thiserror::Error)]
pub enum SecretWebhookError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("the secret's value is not a usable webhook URL: {0}")]
    Invalid(#[from] crate::webhook::InvalidWebhook),
}

impl SecretWebhook {
    /// Reads the secret once, so a secret that cannot be read or holds no usable URL stops
    /// the function at start; one that holds no value yet starts it without a webhook.
    pub async fn new(
        source: Arc<dyn UrlSource>,
        timeout: Duration,
        backoff: Backoff,
        ttl: Duration,
    ) -> Result<SecretWebhook, SecretWebhookError> {
        let hook = match source.read().await? {
            Some(url) => Some(Hook {
                notifier: Arc::new(WebhookNotifier::new(&url, timeout, backoff)?),
                url,
            }),
            None => {
                info!("the webhook's secret holds no URL yet: build requests are recorded, not posted");
                None
            }
        };
        Ok(SecretWebhook {
            source,
            timeout,
            backoff,
            ttl,
            current: Mutex::new(Current {
                hook,
                next_read: Instant::now() + ttl,
            }),
        })
    }

    /// The notifier of the secret's URL (`None`: no value), read again when the TTL is
    /// over or when `refused` (the notifier whose URL the webhook refused) is still the
    /// current one. Returns whether the URL changed since `refused`.
    async fn notifier(
        &self,
        refused: Option<&Arc<WebhookNotifier>>,
    ) -> Result<(Option<Arc<WebhookNotifier>>, bool), WebhookError> {
        let mut current = self.current.lock().await;
        let now = Instant::now();
        let notifier = |current: &Current| current.hook.as_ref().map(|hook| hook.notifier.clone());
        match refused {
            // Another request took up a new URL meanwhile.
            Some(refused)
                if !current
                    .hook
                    .as_ref()
                    .is_some_and(|hook| Arc::ptr_eq(refused, &hook.notifier)) =>
            {
                return Ok((notifier(&current), true));
            }
            None if now < current.next_read => return Ok((notifier(&current), false)),
            _ => {}
        }
        let url = match self.source.read().await {
            Ok(url) => url,
            Err(err) => {
                current.next_read = now + RETRY_AFTER_FAILED_READ.min(self.ttl);
                if refused.is_some() || current.hook.is_none() {
                    return Err(WebhookError::Secret(err.to_string()));
                }
                warn!(error = %err, "the webhook's secret cannot be read; posting to the URL read before");
                return Ok((notifier(&current), false));
            }
        };
        current.next_read = now + self.ttl;
        let Some(url) = url else {
            if current.hook.take().is_some() {
                info!("the webhook's secret holds no URL any more: build requests are recorded, not posted");
            }
            return Ok((None, refused.is_some()));
        };
        if current.hook.as_ref().is_some_and(|hook| hook.url == url) {
            return Ok((notifier(&current), false));
        }
        match WebhookNotifier::new(&url, self.timeout, self.backoff) {
            Ok(new) => {
                info!("the webhook's URL changed in its secret; posting to the new one");
                let new = Arc::new(new);
                current.hook = Some(Hook {
                    url,
                    notifier: new.clone(),
                });
                Ok((Some(new), true))
            }
            Err(err) if current.hook.is_some() && refused.is_none() => {
                error!(error = %err, "the webhook's secret holds no usable URL; posting to the URL read before");
                Ok((notifier(&current), false))
            }
            Err(err) => Err(WebhookError::Secret(format!(
                "the secret's value is not a usable webhook URL: {err}"
            ))),
        }
    }
}

#[async_trait]
impl BuildNotifier for SecretWebhook {
    async fn notify(&self, request: &BuildRequest) -> Result<bool, WebhookError> {
        let (Some(notifier), _) = self.notifier(None).await? else {
            return Ok(false);
        };
        match notifier.notify(request).await {
            // The credential in the URL may have been rotated: read it again, and post
            // once more if it did change.
            Err(WebhookError::Status { status, host })
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
            {
                match self.notifier(Some(&notifier)).await? {
                    (Some(again), true) => again.notify(request).await,
                    // The value was removed meanwhile: nothing to post to.
                    (None, true) => Ok(false),
                    (_, false) => Err(WebhookError::Status { status, host }),
                }
            }
            answer => answer,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex as StdMutex;

    use axum::http::StatusCode as AxumStatus;

    use super::*;
    use crate::webhook::tests::{fast, hook, request};

    /// A secret whose value is the last URL set in it (`None`: no value), counting its
    /// reads; `failing` makes reads fail.
    struct Rotating {
        url: StdMutex<Option<String>>,
        failing: AtomicBool,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl UrlSource for Rotating {
        async fn read(&self) -> Result<Option<String>, SecretError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(SecretError::Read("Secrets Manager is unreachable".into()));
            }
            Ok(self.url.lock().unwrap().clone())
        }
    }

    impl Rotating {
        fn set(&self, url: &str) {
            *self.url.lock().unwrap() = Some(url.to_owned());
        }
    }

    fn secret(url: &str) -> Arc<Rotating> {
        let source = empty_secret();
        source.set(url);
        source
    }

    fn empty_secret() -> Arc<Rotating> {
        Arc::new(Rotating {
            url: StdMutex::new(None),
            failing: AtomicBool::new(false),
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
        source.set(&new.url);

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
        source.set(&new.url);

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
        source.set(&new.url);

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

    #[tokio::test]
    async fn while_the_secret_holds_no_value_should_post_nothing_and_take_up_a_value_once_set() {
        // Given a secret created without a value, read again after a short TTL
        let hook = hook(0, AxumStatus::UNAUTHORIZED).await;
        let source = empty_secret();
        let webhook = webhook(source.clone(), Duration::from_millis(50)).await;

        // When a build request comes, then the value is set and another comes after the TTL
        let first = webhook
            .notify(&request())
            .await
            .expect("nothing to post to is no failure");
        let posted_before = hook.calls.load(Ordering::SeqCst);
        source.set(&hook.url);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let second = webhook.notify(&request()).await.expect("posted");

        // Then only the second was posted, and each says so
        assert_eq!((first, second), (false, true));
        assert_eq!(posted_before, 0);
        assert_eq!(hook.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn when_the_secret_cannot_be_read_after_the_ttl_should_keep_posting_to_the_url_read_before(
    ) {
        // Given a webhook read once, its TTL over, and Secrets Manager failing
        let hook = hook(0, AxumStatus::UNAUTHORIZED).await;
        let source = secret(&hook.url);
        let webhook = webhook(source.clone(), Duration::from_millis(500)).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        source.failing.store(true, Ordering::SeqCst);

        // When three build requests are posted
        for _ in 0..3 {
            webhook
                .notify(&request())
                .await
                .expect("posted to the URL read before");
        }

        // Then all three reached the webhook, and the failed read was not repeated for each:
        // the next try waits (for the TTL, here shorter than RETRY_AFTER_FAILED_READ)
        assert_eq!(hook.calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            source.reads.load(Ordering::SeqCst),
            2,
            "the start's read and one more"
        );
    }

    #[tokio::test]
    async fn when_a_rotated_value_is_no_usable_url_should_keep_the_previous_one() {
        // Given a webhook, and its secret rotated to a plain-text URL off loopback
        let hook = hook(0, AxumStatus::UNAUTHORIZED).await;
        let source = secret(&hook.url);
        let webhook = webhook(source.clone(), Duration::ZERO).await;
        source.set("http://hooks.example.com/builds");

        // When a build request is posted
        webhook
            .notify(&request())
            .await
            .expect("posted to the previous URL");

        // Then it reached the previous URL
        assert_eq!(hook.calls.load(Ordering::SeqCst), 1);
    }
}
