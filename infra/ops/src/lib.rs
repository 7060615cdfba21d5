//! The `ops` command: each consumer's queue and dead-letter queue and the outbox, counted; dead letters
//! listed, redriven or discarded by consumer, reason, event type and age.
//!
//! Locally (`infra/local.sh dlq|redrive|ops ...`) the queues follow the prefix
//! (`<prefix>-<Consumer>Queue`); against AWS, with a profile (`AWS_PROFILE`), name the stack
//! (`--stack`: its queues are `<stack>-<consumer>`) or the queue (`--queue-url`, the stack's
//! `<Consumer>QueueUrl` output). The dead-letter queue is the one the queue's redrive policy
//! names, unless `--dlq-url` says.

use std::io::Write;

use clap::{Args, Parser, Subcommand};
use operations::consumers::Locate;
use operations::dead_letters::{self, Redrive, Scan};
pub use operations::OpsError;
use operations::{stats, Consumer, Filter, FilterText, Queues};
use shared::adapters::{clients, DEFAULT_OUTBOX_SHARDS};

#[derive(Debug, Parser)]
#[command(
    name = "ops",
    about = "Consumers' queues, dead letters and the outbox: counted, triaged, redriven"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    place: Place,
}

#[derive(Debug, Args)]
struct Place {
    /// The local resources' prefix (infra/local.sh provision names them <prefix>-<LogicalId>)
    #[arg(long, global = true, default_value = "local")]
    prefix: String,
    /// A deployed stack's name: its queues are <stack>-<consumer> (overrides --prefix)
    #[arg(long, global = true)]
    stack: Option<String>,
    /// The consumer's queue itself (the stack's <Consumer>QueueUrl output)
    #[arg(long, global = true)]
    queue_url: Option<String>,
    /// The consumer's dead-letter queue (default: the one the queue's redrive policy names)
    #[arg(long, global = true)]
    dlq_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One JSON line per dead letter the filter admits, oldest first; leaves them in place
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show each one's body too
        #[arg(long)]
        body: bool,
        /// Read at most this many of the queue
        #[arg(long, default_value_t = 1_000)]
        max: usize,
    },
    /// Send the dead letters the filter admits back to the consumer's queue
    Redrive {
        #[command(flatten)]
        filter: FilterArgs,
        /// Messages a second at most
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// Count what would move; move nothing
        #[arg(long)]
        dry_run: bool,
        /// Read at most this many of the queue
        #[arg(long, default_value_t = 1_000)]
        max: usize,
    },
    /// Delete dead letters for good, logged with who asked: one by --message-id, or every
    /// one the filter admits with --all-matching
    Discard {
        #[command(flatten)]
        filter: FilterArgs,
        /// Who discards them (kept in the log line of each)
        #[arg(long)]
        by: String,
        /// Every dead letter the filter admits, not one by its id
        #[arg(long)]
        all_matching: bool,
    },
    /// Each consumer's queue and DLQ counts, and the outbox's, as JSON
    Stats {
        /// The task table, for the outbox (default <prefix>-TasksTable; the stack's
        /// TasksTableName output against AWS)
        #[arg(long)]
        table: Option<String>,
        /// Shards of the outbox index (the stack's OutboxShards)
        #[arg(long, default_value_t = DEFAULT_OUTBOX_SHARDS)]
        outbox_shards: u32,
    },
}

#[derive(Debug, Args)]
struct FilterArgs {
    /// The consumer: ml-classifier, dashboard, cicd-monitor, event-archive (or as the
    /// template names it: MlClassifier, ...)
    consumer: String,
    /// Only this event type: every version of a kind (TaskCompleted) or one (task.completed.v2)
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Only those whose reason holds this text, in any case ("max receives": moved by SQS
    /// after their receives)
    #[arg(long)]
    reason: Option<String>,
    /// Only those at least this old (90s, 15m, 2h, 3d)
    #[arg(long)]
    min_age: Option<String>,
    /// Only those at most this old
    #[arg(long)]
    max_age: Option<String>,
    /// Only this message (its id in the DLQ, as `list` shows it)
    #[arg(long)]
    message_id: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> Result<Filter, OpsError> {
        Filter::parse(FilterText {
            event_type: self.event_type.as_deref(),
            reason: self.reason.as_deref(),
            min_age: self.min_age.as_deref(),
            max_age: self.max_age.as_deref(),
            message_id: self.message_id.as_deref(),
        })
        // As the flags are spelt: --min-age.
        .map_err(|err| OpsError::usage(format!("--{}", err.to_string().replacen('_', "-", 1))))
    }
}

impl Place {
    fn locate(&self) -> Locate {
        match (&self.queue_url, &self.stack) {
            (Some(url), _) => Locate::Url(url.clone()),
            (None, Some(stack)) => Locate::Stack(stack.clone()),
            (None, None) => Locate::Prefix(self.prefix.clone()),
        }
    }

    async fn queues(&self, sqs: &aws_sdk_sqs::Client, consumer: &str) -> Result<Queues, OpsError> {
        let consumer = Consumer::named(consumer).map_err(|err| OpsError::usage(err.to_string()))?;
        Queues::find(sqs, consumer, &self.locate(), self.dlq_url.as_deref()).await
    }
}

fn print(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<(), OpsError> {
    writeln!(out, "{}", serde_json::to_string(value).expect("serialises"))
        .map_err(|err| OpsError::usage(format!("the output: {err}")))
}

/// Runs the command `cli` parsed, writing its JSON to `out` and its summary to stderr.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), OpsError> {
    let aws = clients::load_config()
        .await
        .map_err(|err| OpsError::usage(err.to_string()))?;
    let sqs = clients::sqs(&aws);
    let place = &cli.place;
    match cli.command {
        Command::List { filter, body, max } => {
            let scan = Scan {
                filter: filter.filter()?,
                max,
                with_body: body,
            };
            let queues = place.queues(&sqs, &filter.consumer).await?;
            let listing = dead_letters::list(&sqs, &queues, &scan).await?;
            for letter in &listing.dead_letters {
                print(out, letter)?;
            }
            eprintln!(
                "ops: {} of {} dead letter(s) of {} match{}",
                listing.dead_letters.len(),
                listing.scanned,
                queues.consumer,
                if listing.truncated {
                    " (stopped at --max; more may be left)"
                } else {
                    ""
                }
            );
        }
        Command::Redrive {
            filter,
            rate,
            dry_run,
            max,
        } => {
            let redrive = Redrive {
                filter: filter.filter()?,
                max,
                rate,
                dry_run,
            };
            let queues = place.queues(&sqs, &filter.consumer).await?;
            let outcome = dead_letters::redrive(&sqs, &queues, &redrive).await?;
            let mut json = serde_json::to_value(&outcome).expect("serialises");
            json["consumer"] = queues.consumer.name().into();
            print(out, &json)?;
            if outcome.failed > 0 {
                return Err(OpsError::Aws {
                    what: format!("the redrive of {}", queues.consumer),
                    message: format!("{} dead letter(s) not moved", outcome.failed),
                });
            }
        }
        Command::Discard {
            filter,
            by,
            all_matching,
        } => {
            let admitted = filter.filter()?;
            if admitted.message_id.is_none() && !all_matching {
                return Err(OpsError::usage(
                    "--message-id: name the dead letter to discard, or say --all-matching",
                ));
            }
            let queues = place.queues(&sqs, &filter.consumer).await?;
            let discarded =
                dead_letters::discard(&sqs, &queues, &admitted, all_matching, &by).await?;
            for letter in &discarded {
                print(out, letter)?;
            }
            eprintln!(
                "ops: {} dead letter(s) of {} discarded by {by}",
                discarded.len(),
                queues.consumer
            );
        }
        Command::Stats {
            table,
            outbox_shards,
        } => {
            let consumers: Vec<Consumer> = match &place.queue_url {
                Some(_) => {
                    return Err(OpsError::usage(
                        "--queue-url: stats reads every consumer; name the --stack or --prefix",
                    ))
                }
                None => Consumer::ALL.to_vec(),
            };
            let mut report = serde_json::Map::new();
            let mut queues_report = serde_json::Map::new();
            for consumer in consumers {
                let queues = Queues::find(&sqs, consumer, &place.locate(), None).await?;
                queues_report.insert(
                    consumer.name().to_owned(),
                    serde_json::json!({
                        "queue": stats::queue(&sqs, &queues.queue_url).await?,
                        "dead_letters": stats::queue(&sqs, &queues.dlq_url).await?,
                    }),
                );
            }
            report.insert("consumers".into(), queues_report.into());
            let table = match (table, &place.stack) {
                (Some(table), _) => Some(table),
                (None, None) => Some(format!("{}-TasksTable", place.prefix)),
                (None, Some(_)) => None,
            };
            match table {
                Some(table) => {
                    let dynamodb = clients::dynamodb(&aws);
                    let outbox = stats::outbox(&dynamodb, &table, outbox_shards)
                        .await
                        .map_err(|err| match err {
                            OpsError::Usage(message) => {
                                OpsError::usage(format!("--{}", message.replacen('_', "-", 1)))
                            }
                            other => other,
                        })?;
                    report.insert(
                        "outbox".into(),
                        serde_json::to_value(outbox).expect("serialises"),
                    );
                }
                None => eprintln!(
                    "ops: no --table (the stack's TasksTableName output): the outbox is left out"
                ),
            }
            print(out, &report)?;
        }
    }
    Ok(())
}
