//! SQS adapter of `RetryScheduler`: changes a failed message's visibility timeout, so the
//! next delivery comes later the more often the message failed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::Client;

use crate::consumer::RetryScheduler;

pub struct SqsRetryScheduler {
    client: Client,
    /// Queue URLs by ARN, looked up once.
    urls: Mutex<HashMap<String, String>>,
}

impl SqsRetryScheduler {
    pub fn new(client: Client) -> Self {
        SqsRetryScheduler {
            client,
            urls: Mutex::new(HashMap::new()),
        }
    }

    async fn queue_url(&self, queue_arn: &str) -> Result<String, String> {
        if let Some(url) = self.urls.lock().expect("lock").get(queue_arn) {
            return Ok(url.clone());
        }
        // arn:aws:sqs:<region>:<account>:<name>
        let parts: Vec<&str> = queue_arn.splitn(6, ':').collect();
        let [_, _, "sqs", _, account, name] = parts.as_slice() else {
            return Err(format!("not an SQS queue ARN: {queue_arn}"));
        };
        let output = self
            .client
            .get_queue_url()
            .queue_name(*name)
            .queue_owner_aws_account_id(*account)
            .send()
            .await
            .map_err(|err| DisplayErrorContext(err).to_string())?;
        let url = output
            .queue_url
            .ok_or_else(|| format!("no URL for {queue_arn}"))?;
        self.urls
            .lock()
            .expect("lock")
            .insert(queue_arn.to_owned(), url.clone());
        Ok(url)
    }
}

#[async_trait]
impl RetryScheduler for SqsRetryScheduler {
    async fn delay(
        &self,
        queue_arn: &str,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), String> {
        let url = self.queue_url(queue_arn).await?;
        // SQS caps a visibility timeout at 12 hours.
        let seconds = delay.as_secs().min(43_200) as i32;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|err| DisplayErrorContext(err).to_string())?;
        Ok(())
    }
}
