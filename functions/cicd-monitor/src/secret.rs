//! Reads the webhook URL from AWS Secrets Manager, where the template keeps it, once when
//! the function starts. The secret's value never reaches a log line or an error.

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use shared::adapters::clients::SdkConfig;

/// Why a secret could not be read; never carries the secret's value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret cannot be read: {0}")]
    Read(String),
    #[error("the secret holds no string")]
    NotAString,
}

/// The string value of the secret `secret_id` (its ARN or name).
pub async fn secret_string(aws: &SdkConfig, secret_id: &str) -> Result<String, SecretError> {
    let output = aws_sdk_secretsmanager::Client::new(aws)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|err| SecretError::Read(DisplayErrorContext(&err).to_string()))?;
    output
        .secret_string()
        .filter(|value| !value.trim().is_empty())
        .map(str::to_owned)
        .ok_or(SecretError::NotAString)
}
