//! Posts build requests to the webhook (its URL from the settings) with a timeout and retries.
//! The event id goes along as `Idempotency-Key`, since a message may be delivered again.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use shared::consumer::{BoxError, Chain, Retry};
use shared::retry::Backoff;
use tracing::field::Empty;
use tracing::{info_span, warn, Instrument};

use crate::BuildRequest;

/// Why a build request did not reach the webhook. No variant carries the URL, which may
/// hold a credential in its path or query: they name its host, and the transport error
/// has its URL removed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook at {host} cannot be reached")]
    Unreachable {
        host: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the webhook at {host} answered {status}")]
    Status { host: String, status: StatusCode },
    /// The URL could not be read again from its secret, or no longer makes a webhook.
    #[error("the webhook's URL cannot be read from its secret: {0}")]
    Secret(String),
}

impl WebhookError {
    /// Whether posting again later can succeed: yes for connection failures, timeouts,
    /// 5xx, 408 and 429; no for any other answer.
    pub fn retry(&self) -> Retry {
        match self {
            WebhookError::Unreachable { .. } => Retry::Transient,
            WebhookError::Status { status, .. }
                if status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT =>
            {
                Retry::Transient
            }
            WebhookError::Status { .. } => Retry::Permanent,
            WebhookError::Secret(_) => Retry::Transient,
        }
    }
}

/// Why a webhook URL cannot be used; never repeats the URL.
#[derive(Debug, thiserror::Error)]
pub enum InvalidWebhook {
    #[error("not a URL")]
    NotAUrl(#[source] BoxError),
    #[error("the scheme must be http or https, not {0}")]
    Scheme(String),
    /// The URL, and the credential it may carry, would cross the network in the clear.
    #[error(
        "plain http is only for a webhook on this machine (localhost, 127.0.0.1, ::1); use https"
    )]
    PlainHttp,
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Whether the URL's host is this machine, where plain http crosses no network.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[async_trait]
pub trait BuildNotifier: Send + Sync {
    /// Posts the request: `true` once the webhook took it, `false` when there is no
    /// webhook to post to (the stack's secret holds no URL).
    async fn notify(&self, request: &BuildRequest) -> Result<bool, WebhookError>;
}

pub struct WebhookNotifier {
    client: reqwest::Client,
    url: reqwest::Url,
    backoff: Backoff,
}

impl WebhookNotifier {
    /// The URL's host: all of it that logs, errors and spans may name.
    fn host(&self) -> String {
        self.url.host_str().unwrap_or_default().to_owned()
    }

    pub fn new(url: &str, timeout: Duration, backoff: Backoff) -> Result<Self, InvalidWebhook> {
        let url = reqwest::Url::parse(url).map_err(|err| InvalidWebhook::NotAUrl(err.into()))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => return Err(InvalidWebhook::PlainHttp),
            other => return Err(InvalidWebhook::Scheme(other.to_owned())),
        }
        // reqwest's rustls takes the process's crypto provider.
        shared::adapters::tls::install_crypto_provider();
        // A redirected POST would become a body-less GET and count as delivered.
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(InvalidWebhook::Client)?;
        Ok(WebhookNotifier {
            client,
            url,
            backoff,
        })
    }

    async fn post_once(&self, request: &BuildRequest) -> Result<(), WebhookError> {
        // The host only: the URL's path or query may hold a credential.
        let span = info_span!(
            "POST webhook",
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = "POST",
            server.address = self.url.host_str().unwrap_or_default(),
            http.response.status_code = Empty,
        );
        let answer = self.send(request).instrument(span.clone()).await;
        match &answer {
            Ok(status) => {
                span.record("http.response.status_code", status.as_u16());
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
            }
        }
        let status = answer?;
        if status.is_success() {
            Ok(())
        } else {
            span.record("otel.status_code", "ERROR");
            Err(WebhookError::Status {
                host: self.host(),
                status,
            })
        }
    }

    async fn send(&self, request: &BuildRequest) -> Result<StatusCode, WebhookError> {
        let response = self
            .client
            .post(self.url.clone())
            .header("Idempotency-Key", request.event_id.to_string())
            .json(request)
            .send()
            .await
            .map_err(|err| WebhookError::Unreachable {
                host: self.host(),
                // reqwest's errors end with the whole URL.
                source: err.without_url(),
            })?;
        let status = response.status();
        if status.is_redirection() {
            let target = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|location| location.to_str().ok())
                .and_then(|location| self.url.join(location).ok())
                .and_then(|target| target.host_str().map(str::to_owned));
            warn!(task.id = %request.task_id, status = status.as_u16(), target.host = target.as_deref(),
                "the webhook answered with a redirect, which is not followed");
        }
        Ok(status)
    }
}

#[async_trait]
impl BuildNotifier for WebhookNotifier {
    async fn notify(&self, request: &BuildRequest) -> Result<bool, WebhookError> {
        let mut attempt = 0;
        loop {
            match self.post_once(request).await {
                Ok(()) => return Ok(true),
                Err(err) if err.retry() == Retry::Transient && attempt < self.backoff.retries => {
                    warn!(task.id = %request.task_id, attempt, error = %Chain(&err), "webhook call failed; retrying");
                    tokio::time::sleep(self.backoff.delay(attempt)).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::http::{HeaderMap, StatusCode as AxumStatus};
    use axum::routing::post;
    use axum::Router;
    use shared::domain::TaskType;

    use super::*;

    /// A webhook on loopback that fails its first `failures` calls; stopped when dropped.
    pub(crate) struct Hook {
        pub(crate) url: String,
        pub(crate) calls: Arc<AtomicUsize>,
        keys: Arc<std::sync::Mutex<Vec<String>>>,
        server: tokio::task::JoinHandle<()>,
    }

    impl Drop for Hook {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    pub(crate) async fn hook(failures: usize, status: AxumStatus) -> Hook {
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

    pub(crate) fn request() -> BuildRequest {
        BuildRequest {
            task_id: uuid::Uuid::new_v4(),
            task_type: TaskType::Feature,
            requested_at: shared::time::now(),
            event_id: uuid::Uuid::new_v4(),
        }
    }

    pub(crate) fn fast() -> Backoff {
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

        assert!(
            matches!(
                err,
                WebhookError::Status {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.retry(), Retry::Transient);
        assert_eq!(hook.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn when_the_webhook_refuses_the_request_should_not_retry() {
        let hook = hook(usize::MAX, AxumStatus::BAD_REQUEST).await;
        let notifier = WebhookNotifier::new(&hook.url, Duration::from_secs(2), fast()).unwrap();

        let err = notifier.notify(&request()).await.unwrap_err();

        assert_eq!(err.retry(), Retry::Permanent);
        assert_eq!(hook.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn when_the_webhook_redirects_should_fail_without_following() {
        // Given a webhook that redirects to a path that would accept anything
        let followed = Arc::new(AtomicUsize::new(0));
        let counter = followed.clone();
        let app = Router::new()
            .route(
                "/builds",
                post(|| async { (AxumStatus::FOUND, [("location", "/elsewhere")]) }),
            )
            .route(
                "/elsewhere",
                axum::routing::any(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async { AxumStatus::OK }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/builds", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let notifier = WebhookNotifier::new(&url, Duration::from_secs(2), fast()).unwrap();

        // When a build request is posted
        let err = notifier.notify(&request()).await.unwrap_err();

        // Then it failed for good with the redirect's status, and nothing followed it
        assert!(
            matches!(
                err,
                WebhookError::Status {
                    status: StatusCode::FOUND,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.retry(), Retry::Permanent);
        assert_eq!(followed.load(Ordering::SeqCst), 0);
        server.abort();
    }

    #[test]
    fn when_a_plain_http_url_leaves_the_machine_should_refuse_it() {
        // Given http URLs of other hosts, and of this machine's loopback
        let remote = [
            "http://hooks.example.com/builds?token=t0k3n",
            "http://10.0.0.8/builds",
            "http://localhost.example.com/builds",
        ];
        let local = [
            "http://localhost:9000/builds",
            "http://127.0.0.1:9000/builds",
            "http://[::1]:9000/builds",
            "https://hooks.example.com/builds",
        ];

        // Then only https or loopback is taken, and a refusal does not repeat the URL
        for url in remote {
            let err = WebhookNotifier::new(url, Duration::from_secs(1), fast())
                .err()
                .unwrap_or_else(|| panic!("{url} is taken"));
            assert!(matches!(err, InvalidWebhook::PlainHttp), "{url}: {err}");
            assert!(!err.to_string().contains("t0k3n"), "{err}");
        }
        for url in local {
            assert!(
                WebhookNotifier::new(url, Duration::from_secs(1), fast()).is_ok(),
                "{url}"
            );
        }
    }

    #[test]
    fn when_the_url_is_not_http_should_refuse_it() {
        for url in ["ftp://example.com", "not a url"] {
            let err = WebhookNotifier::new(url, Duration::from_secs(1), fast())
                .err()
                .expect("refused");
            assert!(!err.to_string().contains(url), "{err}");
        }
    }
}
