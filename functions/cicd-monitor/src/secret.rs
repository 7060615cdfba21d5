//! Reads the webhook URL from AWS Secrets Manager, where the stack keeps it. The secret is
//! created without a value; until an operator sets one (`put-secret-value`), it holds no
//! URL and no build request is posted. Its value never reaches a log line or an error.

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_secretsmanager::Client;

/// Why a secret could not be read; never carries the secret's value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret cannot be read: {0}")]
    Read(String),
    #[error("the secret holds binary data, not a URL")]
    NotAString,
}

/// The string value of the secret `secret_id` (its ARN or name); `None` while it has no
/// value, or a blank one. A secret that does not exist is an error: only one that exists
/// yet has no current version holds no value.
pub async fn secret_string(
    client: &Client,
    secret_id: &str,
) -> Result<Option<String>, SecretError> {
    let read =
        |err: &dyn std::error::Error| SecretError::Read(DisplayErrorContext(err).to_string());
    let output = match client.get_secret_value().secret_id(secret_id).send().await {
        Ok(output) => output,
        Err(err) if err.code() == Some("ResourceNotFoundException") => {
            // The secret, or only its value? DescribeSecret tells them apart.
            return match client.describe_secret().secret_id(secret_id).send().await {
                Ok(_) => Ok(None),
                Err(_) => Err(read(&err)),
            };
        }
        Err(err) => return Err(read(&err)),
    };
    match (output.secret_string(), output.secret_binary()) {
        (Some(value), _) if !value.trim().is_empty() => Ok(Some(value.to_owned())),
        (_, Some(_)) => Err(SecretError::NotAString),
        _ => Ok(None),
    }
}
