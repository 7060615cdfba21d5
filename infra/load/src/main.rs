//! `infra/local.sh load [ARGS]`: a load run against a running service, or with
//! `--faults` a fault run in an environment of its own. Prints throughput, latency
//! percentiles per route and the audit; exits 1 if any audit line fails, 2 on an error
//! that stopped the run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use load::api::Api;
use load::audit::Verdict;
use load::aws::{Aws, Endpoints};
use load::faults::environment::Emulators;
use load::faults::schedule::{FaultPlan, Injected};
use load::faults::{FaultRun, ServerSettings};
use load::latency::Latencies;
use load::plan::Shares;
use load::report;
use load::run::Measured;
use load::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "load",
    about = "Drive task lifecycles against the service and audit the outcome",
    args_override_self = true
)]
struct Args {
    /// The task API (ignored with --faults, which runs its own server).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    base_url: String,
    /// Lifecycles to drive.
    #[arg(long, default_value_t = 2000)]
    tasks: u64,
    /// Concurrent clients, each a user of its own.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// One lifecycle in every N fails instead of completing (0: none).
    #[arg(long, default_value_t = 5)]
    fail_every: u64,
    /// One lifecycle in every N races concurrent starts (0: none).
    #[arg(long, default_value_t = 10)]
    race_every: u64,
    /// Concurrent starts in a race.
    #[arg(long, default_value_t = 4)]
    race_width: usize,
    /// Resource name prefix of the tables and queues.
    #[arg(long, default_value = "local")]
    prefix: String,
    /// How long one step of a lifecycle may take, retries included [default: 120, with
    /// --faults 300: messages a killed server had received return after the queues'
    /// visibility timeout, 180 s].
    #[arg(long)]
    step_timeout_secs: Option<u64>,
    /// How long to wait for the system to be quiet before the audit; the wait ends as soon
    /// as it is quiet. A message a killed server had received returns only after the
    /// queues' visibility timeout, 180 s [default: 300].
    #[arg(long, default_value_t = 300)]
    quiet_timeout_secs: u64,
    /// Measure the CPU time of a process during the drive: NAME=PID (repeatable).
    #[arg(long = "cpu", value_parser = parse_cpu)]
    cpu: Vec<(String, u32)>,
    /// The dev server's DYNAMODB_CAPACITY_FILE: its calls during the run give the DynamoDB
    /// units per lifecycle (with --faults, the tool's own server writes one).
    #[arg(long)]
    capacity_file: Option<PathBuf>,
    /// Run in an environment of its own with injected faults.
    #[arg(long)]
    faults: bool,
    /// Fault runs: infra/local.sh, which starts and provisions the emulators.
    #[arg(long, default_value = "infra/local.sh")]
    local_sh: PathBuf,
    /// Fault runs: where the dev server's log goes (under <ports>/dev-server.log).
    #[arg(long, default_value = "target/load")]
    log_dir: PathBuf,
    /// Fault runs: how long SNS refuses connections.
    #[arg(long, default_value_t = 20)]
    sns_refuse_secs: u64,
    /// Fault runs: how late DynamoDB's answers arrive during its fault.
    #[arg(long, default_value_t = 6000)]
    dynamodb_delay_ms: u64,
    /// Fault runs: how long DynamoDB answers late.
    #[arg(long, default_value_t = 15)]
    dynamodb_window_secs: u64,
    /// Fault runs: share of messages each consumer fails transiently once.
    #[arg(long, default_value_t = 0.1)]
    consumer_failure_share: f64,
    /// Fault runs: the consumer queues' visibility timeout in place of the template's
    /// 180 s, so that what the killed server had received returns sooner (a short run).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=43200))]
    queue_visibility_secs: Option<u64>,
}

fn parse_cpu(value: &str) -> Result<(String, u32), String> {
    let (name, pid) = value
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PID, got {value:?}"))?;
    let pid = pid.parse().map_err(|_| format!("not a pid: {pid:?}"))?;
    Ok((name.to_owned(), pid))
}

fn settings(args: &Args) -> Settings {
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() % 100_000_000)
        .unwrap_or_default();
    let wait = if args.faults { 300 } else { 120 };
    Settings {
        run_id: run_id.to_string(),
        tasks: args.tasks,
        clients: args.clients.max(1),
        shares: Shares {
            fail_every: args.fail_every,
            race_every: args.race_every,
        },
        race_width: args.race_width.max(2),
        step_timeout: Duration::from_secs(args.step_timeout_secs.unwrap_or(wait)),
        quiet_timeout: Duration::from_secs(args.quiet_timeout_secs),
        cpu: args.cpu.clone(),
        capacity_file: args.capacity_file.clone(),
        prefix: args.prefix.clone(),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // A fault run's emulators, on free ports.
    let emulators = if args.faults {
        match Emulators::new(args.local_sh.clone()) {
            Ok(emulators) => Some(emulators.with_queue_visibility(args.queue_visibility_secs)),
            Err(err) => {
                eprintln!("load: {err}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("load: cannot start the runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        match emulators {
            Some(emulators) => fault_run(&args, emulators).await,
            None => plain_run(&args).await,
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("load: {err}");
            ExitCode::from(2)
        }
    }
}

async fn plain_run(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let api = Api::new(&args.base_url, Latencies::default())?;
    let aws = Aws::connect(&args.prefix, &Endpoints::default()).await?;
    let settings = settings(args);
    eprintln!(
        "load: {} lifecycles, {} clients against {} (prefix {}); this tool assumes it is alone on that server",
        settings.tasks, settings.clients, args.base_url, args.prefix
    );
    let measured = settings
        .run(&api, &aws, false)
        .measure(|_| async {})
        .await?;
    Ok(print(&measured, &[]))
}

async fn fault_run(args: &Args, emulators: Emulators) -> Result<bool, Box<dyn std::error::Error>> {
    let dev_server = std::env::current_exe()?.with_file_name("dev-server");
    let run = FaultRun {
        emulators,
        prefix: args.prefix.clone(),
        dev_server,
        log_dir: args.log_dir.clone(),
        plan: FaultPlan {
            sns_refused: Duration::from_secs(args.sns_refuse_secs),
            dynamodb_delay: Duration::from_millis(args.dynamodb_delay_ms),
            dynamodb_window: Duration::from_secs(args.dynamodb_window_secs),
            restart_after: Duration::from_secs(1),
        },
        settings: ServerSettings {
            consumer_failure_share: args.consumer_failure_share,
        },
    };
    let mut settings = settings(args);
    settings.cpu.clear();
    eprintln!(
        "load --faults: {} lifecycles, {} clients; consumers fail {} of messages once",
        settings.tasks, settings.clients, args.consumer_failure_share
    );
    let measured = run.execute(&settings).await?;
    Ok(print(&measured, &measured.beside))
}

/// Prints the report; `true` when no audit line failed.
fn print<T>(measured: &Measured<T>, faults: &[Injected]) -> bool {
    println!();
    println!(
        "{}",
        report::throughput(measured.lifecycles, measured.requests, measured.elapsed)
    );
    println!();
    println!("{}", report::latencies(&measured.latencies));
    if let Some(cpu) = &measured.cpu {
        println!();
        println!(
            "CPU during the drive ({:.1} s, {} cores):",
            cpu.elapsed.as_secs_f64(),
            cpu.cores
        );
        println!(
            "{}",
            report::table(
                &["process", "CPU s", "share of measured", "share of machine"],
                &cpu.rows()
            )
        );
    }
    if let Some(capacity) = &measured.capacity {
        println!();
        println!(
            "DynamoDB units per lifecycle, as the emulator answered them ({} calls from the drive's start to quiet, {} answered with an error and no units):",
            capacity.total.calls, capacity.total.errors
        );
        println!(
            "{}",
            report::table(
                &["table", "index", "write units", "read units"],
                &capacity.table_rows()
            )
        );
        println!(
            "write units per lifecycle without the event archive: {:.2}",
            capacity.write_per_lifecycle_without_archive()
        );
        let t = capacity.transactions;
        if t.calls > 0 {
            println!(
                "TransactWriteItems: {} calls writing {} items, answered with {:.0} units; DynamoDB Local adds up only the distinct per-item figures, AWS charges each item at least 2: counted here {:.0} (+{:.2} a lifecycle)",
                t.calls,
                t.items,
                t.answered,
                t.answered + t.added,
                t.added / capacity.lifecycles.max(1) as f64
            );
        }
        println!();
        println!("by function (calls and units per lifecycle; errors: calls in all):");
        println!(
            "{}",
            report::table(
                &[
                    "function",
                    "table",
                    "operation",
                    "calls",
                    "write units",
                    "read units",
                    "errors"
                ],
                &capacity.function_rows()
            )
        );
    }
    if !faults.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = faults
            .iter()
            .map(|f| {
                vec![
                    f.fault.clone(),
                    format!("{:.1}", f.at.as_secs_f64()),
                    format!("{:.1}", f.lasted.as_secs_f64()),
                    if f.problem.is_empty() {
                        "ok".into()
                    } else {
                        f.problem.clone()
                    },
                ]
            })
            .collect();
        println!(
            "{}",
            report::table(&["fault", "at s", "lasted s", "result"], &rows)
        );
    }
    println!();
    println!("{}", report::audit(&measured.audit));
    let failed = measured
        .audit
        .iter()
        .filter(|l| l.verdict == Verdict::Fail)
        .count();
    let faults_ok = faults.iter().all(|f| f.problem.is_empty());
    println!();
    if failed == 0 && faults_ok {
        println!("audit passed");
    } else {
        println!("audit FAILED: {failed} line(s)");
    }
    failed == 0 && faults_ok
}
