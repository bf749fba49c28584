#!/usr/bin/env bash
# Local backing services for development and tests:
#   PostgreSQL  127.0.0.1:5432  (trust auth, users root/postgres, database "test")
#   RabbitMQ    127.0.0.1:5672  (guest/guest)
#   Kafka 4.x   127.0.0.1:9092  (single-node KRaft broker+controller, controller on 9093)
#
# usage: scripts/services.sh up [postgres|rabbitmq|kafka]...   start what is not running, wait until it answers
#        scripts/services.sh down [all|kafka|rabbitmq|postgres]...
#                                  no argument / "kafka": stop only the Kafka broker this script started;
#                                  "all" also stops RabbitMQ and PostgreSQL
#        scripts/services.sh status                          one line per service; exit 0 only if all are up
#
# Idempotent: running "up" when everything answers only reports "up".
# Kafka is not installed system-wide: its jars come from Maven Central (scripts/kafka/pom.xml) into
# .services/kafka/libs (git-ignored) on first use; data, config, log and pid file live in .services/kafka.
#
# Environment (all optional):
#   KAFKA_VERSION=4.0.1           use another Kafka version than the one pinned in scripts/kafka/pom.xml
#   SERVICES_KAFKA_HEAP=512m      broker heap (-Xms and -Xmx; at least 64m)
#   SERVICES_KAFKA_TIMEOUT=90     seconds to wait for the broker (likewise SERVICES_RABBITMQ_TIMEOUT=60,
#                                 SERVICES_POSTGRES_TIMEOUT=30)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
STATE_DIR="$ROOT/.services"
KAFKA_DIR="$STATE_DIR/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOG="$KAFKA_DIR/server.log"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_LOG4J="$SCRIPT_DIR/kafka/log4j2.properties"
KAFKA_BROKER_PROPS="$SCRIPT_DIR/kafka/broker.properties" # settings shared with test/support/kafkaBroker.ts
KAFKA_PROBE="$SCRIPT_DIR/kafka/probe.mjs"

HOST=127.0.0.1
PG_PORT=5432
RABBIT_PORT=5672
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093

PG_TIMEOUT=${SERVICES_POSTGRES_TIMEOUT:-30}
RABBIT_TIMEOUT=${SERVICES_RABBITMQ_TIMEOUT:-60}
KAFKA_TIMEOUT=${SERVICES_KAFKA_TIMEOUT:-90}
KAFKA_HEAP=${SERVICES_KAFKA_HEAP:-512m}

log() { printf 'services: %s\n' "$*"; }
die() { printf 'services: ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '7,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# Seconds since $1 (an $EPOCHREALTIME value), one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }

port_open() { timeout 2 bash -c ": >/dev/tcp/$1/$2" 2>/dev/null; }

# wait_for SECONDS CMD...: poll CMD every 0.5s until it succeeds; returns 1 on timeout.
wait_for() {
  local limit=$1; shift
  local deadline=$((SECONDS + limit))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

with_lock() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  flock -w 300 9 || die "another services.sh is still running (lock $STATE_DIR/.lock)"
}

# ---------------------------------------------------------------- PostgreSQL
pg_version() {
  local v
  v=$(ls /etc/postgresql 2>/dev/null | head -n1)
  [[ -n $v ]] || die "postgres: no cluster under /etc/postgresql (is PostgreSQL installed?)"
  printf '%s' "$v"
}
pg_up() { pg_isready -q -h "$HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1; }
pg_sql() { psql -X -q -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -tAc "$1"; }

up_postgres() {
  command -v pg_isready >/dev/null || die "postgres: pg_isready not found (PostgreSQL client not installed)"
  if pg_up; then
    log "postgres up"
  else
    local t0=$EPOCHREALTIME ver
    ver=$(pg_version)
    log "postgres starting…"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start 9>&- ||
      log "postgres: pg_ctlcluster start exited non-zero, waiting for it anyway"
    wait_for "$PG_TIMEOUT" pg_up ||
      die "postgres did not accept connections on $HOST:$PG_PORT within ${PG_TIMEOUT}s (see /var/log/postgresql/postgresql-$ver-main.log)"
    log "postgres up ($(since "$t0"))"
  fi
  local has
  has=$(pg_sql "SELECT 1 FROM pg_roles WHERE rolname = 'root'") ||
    die "postgres: cannot run queries as user postgres on $HOST:$PG_PORT (trust auth expected)"
  if [[ $has != 1 ]]; then
    pg_sql "CREATE ROLE root SUPERUSER LOGIN" && log "postgres: created role root"
  fi
  has=$(pg_sql "SELECT 1 FROM pg_database WHERE datname = 'test'")
  if [[ $has != 1 ]]; then
    pg_sql "CREATE DATABASE test" && log "postgres: created database test"
  fi
}

down_postgres() {
  if pg_up; then
    log "postgres stopping…"
    pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main stop
    log "postgres down"
  else
    log "postgres already down"
  fi
}

# ---------------------------------------------------------------- RabbitMQ
rabbit_up() { port_open "$HOST" "$RABBIT_PORT"; }

up_rabbitmq() {
  if rabbit_up; then
    log "rabbitmq up"
    return
  fi
  command -v rabbitmq-server >/dev/null || die "rabbitmq: rabbitmq-server not found (RabbitMQ not installed)"
  local t0=$EPOCHREALTIME
  log "rabbitmq starting…"
  # A node that is still booting answers ping; starting a second one would fail.
  if ! timeout 15 rabbitmqctl -q ping >/dev/null 2>&1; then
    rabbitmq-server -detached 9>&- || die "rabbitmq: 'rabbitmq-server -detached' failed"
  fi
  wait_for "$RABBIT_TIMEOUT" rabbit_up ||
    die "rabbitmq did not open $HOST:$RABBIT_PORT within ${RABBIT_TIMEOUT}s (see /var/log/rabbitmq/)"
  local left=$((RABBIT_TIMEOUT - ${t0%.*} + ${EPOCHREALTIME%.*}))
  ((left > 5)) || left=5
  timeout "$left" rabbitmqctl -q await_startup >/dev/null 2>&1 ||
    die "rabbitmq: port $RABBIT_PORT is open but 'rabbitmqctl await_startup' did not succeed"
  log "rabbitmq up ($(since "$t0"))"
}

down_rabbitmq() {
  if rabbit_up || timeout 15 rabbitmqctl -q ping >/dev/null 2>&1; then
    log "rabbitmq stopping…"
    rabbitmqctl -q stop >/dev/null
    log "rabbitmq down"
  else
    log "rabbitmq already down"
  fi
}

# ---------------------------------------------------------------- Kafka
# pid of the broker this script started, if it is still alive (and really is our broker).
kafka_pid() {
  [[ -f $KAFKA_PID ]] || return 1
  local pid
  pid=$(<"$KAFKA_PID")
  [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
  local cmd
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"kafka.Kafka $KAFKA_PROPS"* ]] || return 1
  printf '%s' "$pid"
}

# Broker answers and serves metadata (falls back to a port check when node is missing).
kafka_ready() {
  port_open "$HOST" "$KAFKA_PORT" || return 1
  if command -v node >/dev/null; then
    timeout 10 node "$KAFKA_PROBE" "$HOST:$KAFKA_PORT" >/dev/null 2>&1
  fi
}

kafka_installed_version() {
  local jar
  jar=$(ls "$KAFKA_LIBS"/kafka_2.13-*.jar 2>/dev/null | head -n1) || true
  jar=${jar##*/kafka_2.13-}
  printf '%s' "${jar%.jar}"
}

# Key identifying the wanted set of jars: the pom's content plus any KAFKA_VERSION override.
kafka_libs_key() {
  { cat "$KAFKA_POM"; printf 'override=%s\n' "${KAFKA_VERSION:-}"; } | sha256sum | cut -c1-16
}

kafka_fetch() {
  local key
  key=$(kafka_libs_key)
  if [[ -f $KAFKA_LIBS/.complete && $(<"$KAFKA_LIBS/.complete") == "$key" ]]; then
    return
  fi
  command -v mvn >/dev/null || die "kafka: mvn not found (needed once to fetch the broker from Maven Central)"
  local t0=$EPOCHREALTIME tmp="$KAFKA_DIR/libs.tmp"
  log "kafka: fetching broker jars from Maven Central${KAFKA_VERSION:+ (kafka $KAFKA_VERSION)}…"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! mvn -q -B -f "$KAFKA_POM" ${KAFKA_VERSION:+"-Dkafka.version=$KAFKA_VERSION"} \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KAFKA_DIR/mvn.log" 2>&1; then
    tail -n 20 "$KAFKA_DIR/mvn.log" >&2
    rm -rf "$tmp"
    die "kafka: Maven could not fetch the broker jars (full output: $KAFKA_DIR/mvn.log)"
  fi
  printf '%s' "$key" >"$tmp/.complete"
  if [[ -d $KAFKA_LIBS && -d $KAFKA_DATA ]]; then
    # Another broker version: its on-disk metadata may not be readable (e.g. after a downgrade).
    log "kafka: broker jars changed, resetting $KAFKA_DATA"
    rm -rf "$KAFKA_DATA"
  fi
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  log "kafka: fetched kafka $(kafka_installed_version), $(ls "$KAFKA_LIBS" | wc -l) jars ($(since "$t0"))"
}

kafka_write_config() {
  {
    cat <<EOF
# Generated by scripts/services.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
log.dirs=$KAFKA_DATA
EOF
    cat "$KAFKA_BROKER_PROPS"
  } >"$KAFKA_PROPS"
}

kafka_java() {
  java "-Dlog4j2.configurationFile=$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_DIR" -cp "$KAFKA_LIBS/*" "$@"
}

KAFKA_LOG_OFFSET=0 # size of server.log before this run wrote to it

kafka_fail() {
  printf 'services: --- %s (this attempt, last 25 lines) ---\n' "$KAFKA_LOG" >&2
  tail -c "+$((KAFKA_LOG_OFFSET + 1))" "$KAFKA_LOG" 2>/dev/null | tail -n 25 >&2 || true
  printf 'services: ---\n' >&2
  die "$1"
}

up_kafka() {
  if kafka_ready; then
    local pid
    if pid=$(kafka_pid); then log "kafka up (pid $pid)"; else log "kafka up (not started by this script)"; fi
    # Tests also start private brokers of their own from these jars (test/support/kafkaBroker.ts),
    # so a checkout gets them even when some other broker already answers on the port.
    if command -v mvn >/dev/null; then
      mkdir -p "$KAFKA_DIR"
      kafka_fetch
    else
      log "kafka: jars not fetched (mvn not found): tests that start a private broker will fail"
    fi
    return
  fi
  command -v java >/dev/null || die "kafka: java not found (Kafka 4.x needs Java 17+)"
  mkdir -p "$KAFKA_DIR"

  local pid t0
  if pid=$(kafka_pid); then
    log "kafka starting… (pid $pid already launched, waiting)"
    t0=$EPOCHREALTIME
  else
    rm -f "$KAFKA_PID"
    if port_open "$HOST" "$KAFKA_PORT" || port_open "$HOST" "$KAFKA_CONTROLLER_PORT"; then
      die "kafka: port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is taken by another process that is not a working Kafka broker ($(ss -ltnpH "( sport = :$KAFKA_PORT or sport = :$KAFKA_CONTROLLER_PORT )" 2>/dev/null | awk '{print $NF}' | tr '\n' ' '))"
    fi
    kafka_fetch
    t0=$EPOCHREALTIME
    log "kafka starting…"
    KAFKA_LOG_OFFSET=$(stat -c %s "$KAFKA_LOG" 2>/dev/null || echo 0)
    kafka_write_config
    if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
      local cluster_id
      cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOG") ||
        kafka_fail "kafka: 'StorageTool random-uuid' failed"
      kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_PROPS" >>"$KAFKA_LOG" 2>&1 ||
        kafka_fail "kafka: formatting $KAFKA_DATA failed"
      log "kafka: formatted $KAFKA_DATA (cluster $cluster_id)"
    fi
    printf '\n===== %s services.sh: starting kafka %s =====\n' "$(date -Is)" "$(kafka_installed_version)" >>"$KAFKA_LOG"
    # setsid: own session, so a Ctrl-C in the calling terminal does not reach the broker.
    # 9>&-: a server must not inherit (and so hold) the services.sh lock; the PostgreSQL and
    # RabbitMQ starts close it too.
    # The heap and GC settings of Kafka's own start script (heap fixed at its maximum): a heap
    # that starts small keeps the young generation small, and the broker then stopped every 2-3 s
    # under 2 000 events/s for a young collection (up to 40 ms, every request waiting).
    (cd "$KAFKA_DIR" && exec setsid nohup java \
      "-Xms$KAFKA_HEAP" "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
      -Djava.awt.headless=true "-Dlog4j2.configurationFile=$KAFKA_LOG4J" -Dkafka.logs.dir="$KAFKA_DIR" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" >>"$KAFKA_LOG" 2>&1 </dev/null 9>&-) &
    pid=$!
    printf '%s\n' "$pid" >"$KAFKA_PID"
  fi

  local deadline=$((SECONDS + KAFKA_TIMEOUT))
  until kafka_ready; do
    [[ -d /proc/$pid ]] || { rm -f "$KAFKA_PID"; kafka_fail "kafka: broker process $pid exited during startup"; }
    ((SECONDS < deadline)) ||
      kafka_fail "kafka did not serve metadata on $HOST:$KAFKA_PORT within ${KAFKA_TIMEOUT}s (broker pid $pid left running; 'scripts/services.sh down' stops it)"
    sleep 0.5
  done
  # First start on fresh data: have the broker create __consumer_offsets and its producer-id
  # block now, so the first test's client does not meet "coordinator is loading" errors.
  if command -v node >/dev/null; then
    timeout 40 node "$KAFKA_PROBE" "$HOST:$KAFKA_PORT" --warm-up >>"$KAFKA_LOG" 2>&1 ||
      kafka_fail "kafka serves metadata but its group coordinator / producer ids did not become available"
  fi
  log "kafka up ($(since "$t0"))"
}

down_kafka() {
  local pid
  if ! pid=$(kafka_pid); then
    rm -f "$KAFKA_PID"
    if port_open "$HOST" "$KAFKA_PORT"; then
      log "kafka: the broker on $HOST:$KAFKA_PORT was not started by this script, left alone"
    else
      log "kafka already down"
    fi
    return
  fi
  log "kafka stopping… (pid $pid)"
  local t0=$EPOCHREALTIME
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for 30 bash -c "! [ -d /proc/$pid ]"; then
    log "kafka: pid $pid still alive after 30s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 10 bash -c "! [ -d /proc/$pid ]" || die "kafka: could not stop pid $pid"
  fi
  rm -f "$KAFKA_PID"
  log "kafka down ($(since "$t0"))"
}

# ---------------------------------------------------------------- commands
status() {
  local rc=0 pid
  if pg_up; then log "postgres up ($HOST:$PG_PORT)"; else log "postgres down"; rc=1; fi
  if rabbit_up; then log "rabbitmq up ($HOST:$RABBIT_PORT)"; else log "rabbitmq down"; rc=1; fi
  if kafka_ready; then
    if pid=$(kafka_pid); then
      log "kafka up ($HOST:$KAFKA_PORT, kafka $(kafka_installed_version), pid $pid)"
    else
      log "kafka up ($HOST:$KAFKA_PORT, not started by this script)"
    fi
  elif pid=$(kafka_pid); then
    log "kafka down (pid $pid running but not serving metadata yet; see $KAFKA_LOG)"
    rc=1
  else
    log "kafka down"
    rc=1
  fi
  return $rc
}

check_names() {
  local s
  for s in "$@"; do
    case $s in postgres | rabbitmq | kafka) ;; *) printf 'services: unknown service "%s"\n' "$s" >&2; usage ;; esac
  done
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
case $cmd in
  up)
    (($# > 0)) || set -- postgres rabbitmq kafka
    check_names "$@"
    with_lock
    for s in "$@"; do "up_$s"; done
    ;;
  down)
    if [[ ${1:-} == all ]]; then
      set -- kafka rabbitmq postgres
    fi
    (($# > 0)) || set -- kafka
    check_names "$@"
    with_lock
    for s in "$@"; do "down_$s"; done
    ;;
  status)
    status
    ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
