//! Posts build requests to a webhook (`CICD_WEBHOOK_URL`) with a timeout and retries.
//! The event id goes along as `Idempotency-Key`, since a message may be delivered again.

use std::time::Duration;

use async_trait::async_trait;
use orchestration::records::BuildRequest;
use orchestration::retry::Backoff;
use reqwest::StatusCode;
use tracing::warn;

#[async_trait]
pub trait BuildNotifier: Send + Sync {
    async fn notify(&self, request: &BuildRequest) -> Result<(), String>;
}

pub struct WebhookNotifier {
    client: reqwest::Client,
    url: reqwest::Url,
    backoff: Backoff,
}

impl WebhookNotifier {
    pub fn new(url: &str, timeout: Duration, backoff: Backoff) -> Result<Self, String> {
        let url = reqwest::Url::parse(url)
            .map_err(|err| format!("CICD_WEBHOOK_URL is not a URL: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "CICD_WEBHOOK_URL must be http or https, not {}",
                url.scheme()
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
        Ok(WebhookNotifier {
            client,
            url,
            backoff,
        })
    }

    async fn post_once(&self, request: &BuildRequest) -> Result<(), (String, bool)> {
        let response = self
            .client
            .post(self.url.clone())
            .header("Idempotency-Key", request.event_id.to_string())
            .json(request)
            .send()
            .await
            .map_err(|err| (format!("webhook unreachable: {err}"), true))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retryable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        Err((format!("webhook answered {status}"), retryable))
    }
}

#[async_trait]
impl BuildNotifier for WebhookNotifier {
    async fn notify(&self, request: &BuildRequest) -> Result<(), String> {
        let mut attempt = 0;
        loop {
            match self.post_once(request).await {
                Ok(()) => return Ok(()),
                Err((reason, true)) if attempt < self.backoff.retries => {
                    warn!(task.id = %request.task_id, attempt, reason, "webhook call failed; retrying");
                    tokio::time::sleep(self.backoff.delay(attempt)).await;
                    attempt += 1;
                }
                Err((reason, _)) => return Err(reason),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::http::{HeaderMap, StatusCode as AxumStatus};
    use axum::routing::post;
    use axum::Router;
    use orchestration::domain::TaskType;

    use super::*;

    /// A webhook on loopback that fails its first `failures` calls; stopped when dropped.
    struct Hook {
        url: String,
        calls: Arc<AtomicUsize>,
        keys: Arc<std::sync::Mutex<Vec<String>>>,
        server: tokio::task::JoinHandle<()>,
    }

    impl Drop for Hook {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    async fn hook(failures: usize, status: AxumStatus) -> Hook {
        let calls = Arc::new(AtomicUsize::new(0));
        let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (counter, seen) = (calls.clone(), keys.clone());
        let app = Router::new().route(
            "/builds",
            post(move |headers: HeaderMap| {
                let call = counter.fetch_add(1, Ordering::SeqCst);
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().unwrap().push(key);
                async move {
                    if call < failures {
                        status
                    } else {
                        AxumStatus::ACCEPTED
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/builds", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Hook {
            url,
            calls,
            keys,
            server,
        }
    }

    fn request() -> BuildRequest {
        BuildRequest {
            task_id: uuid::Uuid::new_v4(),
            task_type: TaskType::Feature,
            requested_at: orchestration::time::now(),
            event_id: uuid::Uuid::new_v4(),
        }
    }

    fn fast() -> Backoff {
        Backoff {
            retries: 3,
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn when_the_webhook_fails_twice_should_retry_and_succeed() {
        let hook = hook(2, AxumStatus::SERVICE_UNAVAILABLE).await;
        let notifier = WebhookNotifier::new(&hook.url, Duration::from_secs(2), fast()).unwrap();
        let request = request();

        notifier.notify(&request).await.unwrap();

        assert_eq!(hook.calls.load(Ordering::SeqCst), 3);
        assert!(hook
            .keys
            .lock()
            .unwrap()
            .iter()
            .all(|k| *k == request.event_id.to_string()));
    }

    #[tokio::test]
    async fn when_the_webhook_keeps_failing_should_give_up_after_three_retries() {
        let hook = hook(usize::MAX, AxumStatus::INTERNAL_SERVER_ERROR).await;
        let notifier = WebhookNotifier::new(&hook.url, Duration::from_secs(2), fast()).unwrap();

        let err = notifier.notify(&request()).await.unwrap_err();

        assert!(err.contains("500"), "{err}");
        assert_eq!(hook.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn when_the_webhook_refuses_the_request_should_not_retry() {
        let hook = hook(usize::MAX, AxumStatus::BAD_REQUEST).await;
        let notifier = WebhookNotifier::new(&hook.url, Duration::from_secs(2), fast()).unwrap();

        assert!(notifier.notify(&request()).await.is_err());
        assert_eq!(hook.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn when_the_url_is_not_http_should_refuse_it() {
        assert!(WebhookNotifier::new("ftp://example.com", Duration::from_secs(1), fast()).is_err());
        assert!(WebhookNotifier::new("not a url", Duration::from_secs(1), fast()).is_err());
    }
}
