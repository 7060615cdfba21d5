//! `replay`: re-sends the archived events of a time window to one consumer's queue.
//!
//! Locally (`infra/local.sh replay CONSUMER ...`) the names follow the prefix; against AWS,
//! with a profile (`AWS_PROFILE`), name the stack's resources from its outputs:
//! `--archive-table`, `--queue-url` and `--topic-arn`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use replay::{subscription_filter, Plan, ReplayError};
use shared::adapters::clients;
use shared::adapters::DynamoEventArchive;

#[derive(Debug, Parser)]
#[command(about = "Re-sends archived events of a time window to one consumer's queue")]
struct Args {
    /// The consumer, as the template names its queue: MlClassifier, Dashboard, CicdMonitor,
    /// EventArchive (with --prefix: the queue is <prefix>-<consumer>Queue)
    #[arg(long)]
    consumer: Option<String>,
    /// The local resources' prefix (infra/local.sh provision names them <prefix>-<LogicalId>)
    #[arg(long, default_value = "local")]
    prefix: String,
    /// The event archive's table (default <prefix>-EventArchiveTable)
    #[arg(long)]
    archive_table: Option<String>,
    /// The consumer's queue (default: <prefix>-<consumer>Queue's URL)
    #[arg(long)]
    queue_url: Option<String>,
    /// The events topic, whose subscription to that queue gives the filter (default: the
    /// topic named <prefix>-EventsTopic)
    #[arg(long)]
    topic_arn: Option<String>,
    /// Start of the window (RFC 3339), inclusive
    #[arg(long)]
    from: DateTime<Utc>,
    /// End of the window (RFC 3339), exclusive (default: now)
    #[arg(long)]
    to: Option<DateTime<Utc>>,
    /// Only these types (TaskCreated or task.created.v1, ...), comma separated
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Events a second at most
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Count what would be sent; send nothing
    #[arg(long)]
    dry_run: bool,
    /// Where progress is kept, to resume after an interruption (default:
    /// replay-<consumer>.checkpoint.json in the current directory; "none" for no file)
    #[arg(long)]
    checkpoint: Option<String>,
    /// Shards of the archive's time index (the stack's ArchiveTimeShards)
    #[arg(long, default_value_t = shared::adapters::dynamo_archive::DEFAULT_TIME_SHARDS)]
    shards: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(ReplayError::Usage(message)) => {
            eprintln!("replay: {message}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("replay: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), ReplayError> {
    let aws = clients::load_config()
        .await
        .map_err(|err| ReplayError::Usage(err.to_string()))?;
    let sqs = clients::sqs(&aws);
    let sns = aws_sdk_sns::Client::new(&aws);
    let name = |logical_id: &str| format!("{}-{logical_id}", args.prefix);
    let consumer = args.consumer.clone();
    let queue_url = match (&args.queue_url, &consumer) {
        (Some(url), _) => url.clone(),
        (None, Some(consumer)) => sqs
            .get_queue_url()
            .queue_name(name(&format!("{consumer}Queue")))
            .send()
            .await
            .map_err(|err| ReplayError::aws(format!("the queue of {consumer}"), err))?
            .queue_url()
            .unwrap_or_default()
            .to_owned(),
        (None, None) => {
            return Err(ReplayError::Usage(
                "name the consumer (--consumer) or its queue (--queue-url)".to_owned(),
            ))
        }
    };
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|err| ReplayError::aws(format!("the queue {queue_url}"), err))?
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .unwrap_or_default();
    let topic_arn = match &args.topic_arn {
        Some(arn) => arn.clone(),
        None => topic_named(&sns, &name("EventsTopic")).await?,
    };
    let filter = subscription_filter(&sns, &topic_arn, &queue_arn).await?;
    let checkpoint = match args.checkpoint.as_deref() {
        Some("none") => None,
        Some(path) => Some(PathBuf::from(path)),
        None => Some(PathBuf::from(format!(
            "replay-{}.checkpoint.json",
            consumer.as_deref().unwrap_or("queue")
        ))),
    };
    let plan = Plan {
        from: args.from,
        to: args.to.unwrap_or_else(Utc::now),
        types: args.types.clone(),
        queue_url: queue_url.clone(),
        filter,
        rate: args.rate,
        dry_run: args.dry_run,
        checkpoint: checkpoint.filter(|_| !args.dry_run),
    };
    let table = args
        .archive_table
        .clone()
        .unwrap_or_else(|| name("EventArchiveTable"));
    let archive = DynamoEventArchive::new(
        clients::dynamodb(&aws),
        &table,
        args.shards,
        std::time::Duration::ZERO,
    );
    let progress = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} events read, {per_sec} [{elapsed}]")
            .expect("a valid template"),
    );
    eprintln!(
        "replay: {} to {} from {table} to {queue_url}{}{}",
        plan.from,
        plan.to,
        if plan.filter.is_some() {
            ", as its subscription filters"
        } else {
            ""
        },
        if plan.dry_run { " (dry run)" } else { "" }
    );
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let outcome = replay::run(&plan, &archive, &sqs, &progress, stop).await?;
    println!(
        "read {}, matched {}, sent {}{}",
        outcome.read,
        outcome.matched,
        outcome.sent,
        if plan.dry_run {
            " (dry run: nothing sent)"
        } else {
            ""
        }
    );
    Ok(())
}

async fn topic_named(sns: &aws_sdk_sns::Client, name: &str) -> Result<String, ReplayError> {
    let mut token = None;
    loop {
        let page = sns
            .list_topics()
            .set_next_token(token)
            .send()
            .await
            .map_err(|err| ReplayError::aws("the topics", err))?;
        if let Some(arn) = page
            .topics()
            .iter()
            .filter_map(|topic| topic.topic_arn())
            .find(|arn| arn.rsplit(':').next() == Some(name))
        {
            return Ok(arn.to_owned());
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Err(ReplayError::Usage(format!(
                "no topic named {name}; name it with --topic-arn"
            )));
        }
    }
}
