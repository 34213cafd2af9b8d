#!/usr/bin/env bash
# Real engines for trackpipe: a standalone Apache Flink cluster and Beam's Prism runner.
#
#   scripts/engines.sh fetch        fetch and build everything once into the cache (idempotent)
#   scripts/engines.sh flink-up     start a standalone Flink cluster on 127.0.0.1 (idempotent)
#   scripts/engines.sh flink-down   stop it (idempotent)
#   scripts/engines.sh status       what is cached, what runs
#   scripts/engines.sh netns-tools  make sure ip, unshare, nsenter exist (the tests need them)
#   scripts/engines.sh env          shell lines setting FLINK_HOME, FLINK_CONF_DIR, ... (eval them
#                                   to use Flink's own bin/flink against the cluster)
#   scripts/engines.sh prism-path | job-server-jar | flink-home    print one cached path
#
# What `fetch` builds, into $TRACKPIPE_ENGINES_DIR (default: .cache/engines in the repository),
# downloading only from PyPI, Maven Central and the Go module proxy:
#   flink-1.19.3/    a Flink distribution (FLINK_HOME): bin/ and conf/ from the `apache-flink`
#                    wheel, lib/ opt/ plugins/ from the `apache-flink-libraries` sdist (PyPI,
#                    `pip download --no-deps`; PyFlink is never installed anywhere).
#   flink-job-server-1.19-beam2.62.0/
#                    Beam's Flink job server: Maven Central serves no
#                    beam-runners-flink-*-job-server jar for Beam 2.77 (nor 2.62-2.76), so the
#                    runtime classpath of org.apache.beam:beam-runners-flink-1.19:2.62.0 is copied
#                    by Maven into lib/ and a manifest-only jar starts FlinkJobServerDriver on it.
#   prism-2.77.0/prism
#                    Beam's Prism runner, `go install`ed from the Go module proxy at the Beam
#                    version requirements.txt pins.
#   engines.json     what was fetched (read by trackpipe/runtime/engines.py for its defaults).
# Each part is built in a temporary folder and renamed into place with a `.done` stamp saying
# what was done, so an interrupted fetch starts that part again and a finished one is never
# redone. Needs Java 17 (java, jar not needed), Maven, Go and Python 3.
#
# flink-up/flink-down use $TRACKPIPE_FLINK_DIR (default: <cache>/flink-cluster) for the
# cluster's config, logs, pid files and temporary files. Everything Flink itself opens listens on
# 127.0.0.1 only: REST/web UI on 127.0.0.1:8081, RPC 6123/6124, data 6125, blob server 6130.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRACKPIPE_ENGINES_DIR:-$ROOT/.cache/engines}
RUN_DIR=${TRACKPIPE_FLINK_DIR:-$CACHE/flink-cluster}

FLINK_VERSION=1.19.3
FLINK_MINOR=1.19
JOB_SERVER_BEAM=2.62.0 # the newest Beam whose Flink 1.19 runner works with the Python 2.77 SDK here
BEAM_VERSION=$(sed -nE 's/^apache-beam(\[[^]]*\])?==([0-9.]+).*/\2/p' "$ROOT/requirements.txt" | head -n 1)
BEAM_VERSION=${BEAM_VERSION:-2.77.0}

FLINK_HOME_DIR=$CACHE/flink-$FLINK_VERSION
JOB_SERVER_DIR=$CACHE/flink-job-server-$FLINK_MINOR-beam$JOB_SERVER_BEAM
JOB_SERVER_JAR=$JOB_SERVER_DIR/beam-runners-flink-$FLINK_MINOR-job-server-$JOB_SERVER_BEAM.jar
PRISM_DIR=$CACHE/prism-$BEAM_VERSION
PRISM_BIN=$PRISM_DIR/prism

REST_HOST=127.0.0.1
REST_PORT=8081
SLOTS=2
UP_TIMEOUT_S=${TRACKPIPE_FLINK_UP_TIMEOUT:-120}
export FLINK_IDENT_STRING=trackpipe # names of the pid and log files

if [[ -x "$ROOT/.venv/bin/python" ]]; then PY=$ROOT/.venv/bin/python; else PY=${PYTHON:-python3}; fi

say() { echo "engines: $*"; }
die() {
    echo "engines: error: $*" >&2
    exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"; }
rel() { echo "${1#"$ROOT"/}"; } # a path as shown to the user

# run LOG CMD...: run quietly into LOG; on failure show its tail and stop.
run() {
    local log=$1
    shift
    if ! "$@" >>"$log" 2>&1; then
        echo "engines: error: '$*' failed; last lines of $log:" >&2
        tail -n 25 "$log" >&2
        exit 1
    fi
}

# ------------------------------------------------------------------------------------------
# fetch
# ------------------------------------------------------------------------------------------

# A part is built in $CACHE/.tmp-<name>-<pid>/ and renamed into place when complete.
new_tmp() {
    local dir=$CACHE/.tmp-$1-$$
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "$dir"
}

stamp() { # stamp DIR TEXT: mark a finished part
    printf '%s\nfinished %s\n' "$2" "$(date -u +%FT%TZ)" >"$1/.done"
}

fetch_flink() {
    if [[ -f $FLINK_HOME_DIR/.done ]]; then return 0; fi
    need java "install Java 17 (Debian: openjdk-17-jre-headless)"
    local tmp start=$SECONDS
    tmp=$(new_tmp flink)
    say "fetching Flink $FLINK_VERSION from PyPI (apache-flink wheel + apache-flink-libraries sdist, ~270 MB)..."
    # bin/ and conf/ are the same in every platform's wheel; pin one so any machine gets it.
    run "$tmp/pip.log" "$PY" -m pip download --no-deps --disable-pip-version-check --dest "$tmp/dl" \
        --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 "apache-flink==$FLINK_VERSION"
    run "$tmp/pip.log" "$PY" -m pip download --no-deps --disable-pip-version-check --dest "$tmp/dl" \
        --no-binary=:all: "apache-flink-libraries==$FLINK_VERSION"
    local home=$tmp/flink-$FLINK_VERSION
    mkdir -p "$home/log"
    "$PY" - "$tmp/dl" "$home" "$FLINK_VERSION" <<'PY'
import glob, os, shutil, sys, tarfile, zipfile
dl, home, version = sys.argv[1:]
(wheel,) = glob.glob(os.path.join(dl, f"apache_flink-{version}-*.whl"))
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        for part in ("bin", "conf"):
            prefix = f"pyflink/{part}/"
            if name.startswith(prefix) and not name.endswith("/"):
                target = os.path.join(home, part, name[len(prefix):])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with zf.open(name) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
(sdist,) = glob.glob(os.path.join(dl, f"apache-flink-libraries-{version}.tar.gz"))
with tarfile.open(sdist) as tar:
    for member in tar.getmembers():
        parts = member.name.split("/")
        if len(parts) > 3 and parts[1] == "deps" and parts[2] in ("lib", "opt", "plugins", "bin") and member.isfile():
            member.name = "/".join(parts[2:])
            tar.extract(member, home, filter="data")
PY
    chmod +x "$home"/bin/*.sh "$home/bin/flink"
    [[ -f $home/lib/flink-dist-$FLINK_VERSION.jar && -f $home/bin/bash-java-utils.jar && -x $home/bin/jobmanager.sh ]] ||
        die "the Flink packages did not contain the expected files (see $tmp)"
    stamp "$home" "Flink $FLINK_VERSION assembled from PyPI: apache-flink (bin/, conf/) + apache-flink-libraries (lib/, opt/, plugins/, bin/bash-java-utils.jar)"
    rm -rf "$FLINK_HOME_DIR"
    mv "$home" "$FLINK_HOME_DIR"
    rm -rf "$tmp"
    say "Flink $FLINK_VERSION ready in $(rel "$FLINK_HOME_DIR") ($((SECONDS - start)) s)"
}

fetch_job_server() {
    if [[ -f $JOB_SERVER_DIR/.done ]]; then return 0; fi
    need mvn "install Maven (Debian: maven)"
    local tmp start=$SECONDS
    tmp=$(new_tmp job-server)
    local dir=$tmp/job-server
    mkdir -p "$dir"
    say "assembling Beam's Flink $FLINK_MINOR job server ($JOB_SERVER_BEAM) from Maven Central (~150 MB)..."
    cat >"$dir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <!-- Only used by scripts/engines.sh to copy the job server's runtime classpath into lib/. -->
  <modelVersion>4.0.0</modelVersion>
  <groupId>trackpipe.engines</groupId>
  <artifactId>flink-job-server-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.beam</groupId>
      <artifactId>beam-runners-flink-$FLINK_MINOR</artifactId>
      <version>$JOB_SERVER_BEAM</version>
    </dependency>
    <dependency>
      <!-- the job server logs through SLF4J: route it to java.util.logging (stderr) -->
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-jdk14</artifactId>
      <version>1.7.30</version>
    </dependency>
  </dependencies>
</project>
EOF
    run "$tmp/mvn.log" mvn -B -f "$dir/pom.xml" -Dmaven.repo.local="$tmp/m2" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir/lib"
    # A jar holding only a manifest: Main-Class and Class-Path lib/*.jar (what Beam's shaded
    # job server jar would hold, unpacked), so `java -jar` and Beam's --flink_job_server_jar work.
    "$PY" - "$dir" "$(basename "$JOB_SERVER_JAR")" <<'PY'
import os, sys, zipfile
folder, name = sys.argv[1:]
jars = sorted(f"lib/{n}" for n in os.listdir(os.path.join(folder, "lib")) if n.endswith(".jar"))
assert any("beam-runners-flink" in j for j in jars), "no beam-runners-flink jar in lib/"

def header(key, value):  # manifest lines are at most 72 bytes; continuations start with a space
    line, out = f"{key}: {value}", []
    while len(line.encode()) > 72:
        out.append(line[:72])
        line = " " + line[72:]
    return "\r\n".join(out + [line]) + "\r\n"

manifest = (header("Manifest-Version", "1.0") + header("Main-Class", "org.apache.beam.runners.flink.FlinkJobServerDriver")
            + header("Class-Path", " ".join(jars)) + "\r\n")
with zipfile.ZipFile(os.path.join(folder, name), "w", zipfile.ZIP_DEFLATED) as jar:
    jar.writestr("META-INF/MANIFEST.MF", manifest)
PY
    stamp "$dir" "Beam $JOB_SERVER_BEAM Flink $FLINK_MINOR job server: runtime classpath of org.apache.beam:beam-runners-flink-$FLINK_MINOR:$JOB_SERVER_BEAM (+ org.slf4j:slf4j-jdk14:1.7.30) from Maven Central in lib/, started by the manifest-only $(basename "$JOB_SERVER_JAR")"
    rm -rf "$JOB_SERVER_DIR"
    mv "$dir" "$JOB_SERVER_DIR"
    rm -rf "$tmp"
    say "job server ready: $(rel "$JOB_SERVER_JAR") ($(ls "$JOB_SERVER_DIR/lib" | wc -l) jars, $((SECONDS - start)) s)"
}

fetch_prism() {
    if [[ -f $PRISM_DIR/.done ]]; then return 0; fi
    need go "install Go 1.22 or newer"
    local tmp start=$SECONDS
    tmp=$(new_tmp prism)
    say "building Beam's Prism runner $BEAM_VERSION from the Go module proxy (a few minutes)..."
    local gotmp=$tmp/go
    local -a goenv=(env GOBIN="$tmp/bin" GOPATH="$gotmp/path" GOMODCACHE="$gotmp/mod" GOCACHE="$gotmp/cache"
        GOPROXY="${GOPROXY:-https://proxy.golang.org}" GOFLAGS=-modcacherw GOTOOLCHAIN=local CGO_ENABLED=0)
    run "$tmp/go.log" "${goenv[@]}" go install -trimpath "github.com/apache/beam/sdks/v2/go/cmd/prism@v$BEAM_VERSION"
    mkdir -p "$tmp/prism"
    mv "$tmp/bin/prism" "$tmp/prism/prism"
    stamp "$tmp/prism" "Prism $BEAM_VERSION: go install github.com/apache/beam/sdks/v2/go/cmd/prism@v$BEAM_VERSION ($(go version))"
    rm -rf "$PRISM_DIR"
    mv "$tmp/prism" "$PRISM_DIR"
    rm -rf "$tmp"
    say "Prism ready: $(rel "$PRISM_BIN") ($((SECONDS - start)) s)"
}

write_manifest() {
    local file=$CACHE/engines.json
    cat >"$file.tmp" <<EOF
{
  "flink_version": "$FLINK_VERSION",
  "flink_home": "$(basename "$FLINK_HOME_DIR")",
  "flink_job_server_jar": "$(basename "$JOB_SERVER_DIR")/$(basename "$JOB_SERVER_JAR")",
  "flink_job_server_flink_version": "$FLINK_MINOR",
  "flink_job_server_beam_version": "$JOB_SERVER_BEAM",
  "flink_rest": "$REST_HOST:$REST_PORT",
  "prism": "$(basename "$PRISM_DIR")/prism",
  "prism_beam_version": "$BEAM_VERSION"
}
EOF
    mv "$file.tmp" "$file"
}

fetch() {
    mkdir -p "$CACHE"
    need flock "install util-linux"
    exec 9>"$CACHE/.fetch.lock"
    flock 9 # two fetches at once (two `make test`) take turns
    if [[ -f $FLINK_HOME_DIR/.done && -f $JOB_SERVER_DIR/.done && -f $PRISM_DIR/.done && -f $CACHE/engines.json ]]; then
        say "cached in $(rel "$CACHE"): Flink $FLINK_VERSION, Beam $JOB_SERVER_BEAM's Flink $FLINK_MINOR job server, Prism $BEAM_VERSION"
        return 0
    fi
    local start=$SECONDS
    rm -rf "$CACHE"/.tmp-*
    fetch_flink
    fetch_job_server
    fetch_prism
    write_manifest
    say "all fetched into $(rel "$CACHE") in $((SECONDS - start)) s"
}

# ------------------------------------------------------------------------------------------
# the Flink cluster
# ------------------------------------------------------------------------------------------

flink_env() {
    export FLINK_HOME=$FLINK_HOME_DIR
    export FLINK_CONF_DIR=$RUN_DIR/conf
    export FLINK_LOG_DIR=$RUN_DIR/log
    export FLINK_PID_DIR=$RUN_DIR/pid
}

# Java 17 needs these (from the wheel's conf/config.yaml, env.java.opts.all).
JAVA_OPENS="--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED"

# Beam's job server runs in the TaskManager as each job's user code, with its own copy of the
# vendored gRPC/Netty, whose pooled allocator keeps its direct-memory arenas after the job ends
# (the job's classloader is not collected). On a cluster that ran a few 1M-event jobs the
# TaskManager hit its direct-memory limit ("Cannot reserve 2097152 bytes of direct buffer
# memory") and the next job failed with "call is closed" or hung. Unpooled buffers are freed
# when released. The property carries the vendored package's name (Beam 2.62: grpc v1p60p1).
NETTY_UNPOOLED="-Dorg.apache.beam.vendor.grpc.v1p60p1.io.netty.allocator.type=unpooled"

write_flink_conf() {
    mkdir -p "$RUN_DIR"/{conf,log,pid,tmp}
    local f
    for f in log4j.properties log4j-console.properties log4j-cli.properties log4j-session.properties logback.xml logback-console.xml logback-session.xml; do
        cp "$FLINK_HOME_DIR/conf/$f" "$RUN_DIR/conf/$f"
    done
    echo "$REST_HOST:$REST_PORT" >"$RUN_DIR/conf/masters"
    echo "$REST_HOST" >"$RUN_DIR/conf/workers"
    cat >"$RUN_DIR/conf/config.yaml" <<EOF
# Written by scripts/engines.sh flink-up: a one-machine session cluster bound to 127.0.0.1.
env:
  java:
    opts:
      all: $JAVA_OPENS -Djava.io.tmpdir=$RUN_DIR/tmp
      taskmanager: $NETTY_UNPOOLED
  log:
    dir: $RUN_DIR/log
  pid:
    dir: $RUN_DIR/pid
jobmanager:
  bind-host: $REST_HOST
  rpc:
    address: $REST_HOST
    port: 6123
  memory:
    process:
      size: 1600m
  # One TaskManager holds every intermediate result: when it is lost, restart the whole job at
  # once. (With "region", the restarted tasks first wait for results of finished tasks that died
  # with it, fail with PartitionNotFound ~40 s later, and the job is restarted a second time.)
  execution:
    failover-strategy: full
taskmanager:
  bind-host: $REST_HOST
  host: $REST_HOST
  numberOfTaskSlots: $SLOTS
  rpc:
    port: 6124
  data:
    port: 6125
  memory:
    process:
      size: 4096m
    task:
      off-heap:
        size: 256m
parallelism:
  default: $SLOTS
rest:
  address: $REST_HOST
  bind-address: $REST_HOST
  port: $REST_PORT
blob:
  server:
    port: 6130
  storage:
    directory: $RUN_DIR/tmp
io:
  tmp:
    dirs: $RUN_DIR/tmp
web:
  tmpdir: $RUN_DIR/tmp
# Python's FlinkRunner has no retry options: a job survives a lost TaskManager only through the
# cluster's restart strategy (3 more attempts, 5 s apart).
restart-strategy:
  type: fixed-delay
  fixed-delay:
    attempts: 3
    delay: 5 s
# A killed TaskManager is noticed within 10 s.
heartbeat:
  interval: 2000
  timeout: 10000
EOF
}

# live_pids DAEMON: the live processes the pid file lists (checked by their main class, so a
# reused pid is not mistaken for Flink).
live_pids() {
    local file=$RUN_DIR/pid/flink-$FLINK_IDENT_STRING-$1.pid class pid
    case $1 in
    standalonesession) class=StandaloneSessionClusterEntrypoint ;;
    taskexecutor) class=TaskManagerRunner ;;
    esac
    [[ -f $file ]] || return 0
    while read -r pid; do
        [[ $pid =~ ^[0-9]+$ ]] || continue
        if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$class"; then
            echo "$pid"
        fi
    done <"$file"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

overview() { # prints "<taskmanagers> <slots-total>", or fails
    "$PY" -c '
import json, sys, urllib.request
d = json.load(urllib.request.urlopen(sys.argv[1], timeout=2))
print(d["taskmanagers"], d["slots-total"])' "http://$REST_HOST:$REST_PORT/overview" 2>/dev/null
}

# start_daemon jobmanager|taskmanager DAEMON: start it in a session of its own (flink-down kills
# the group) and print its pid once the pid file names a live process running Flink's class.
start_daemon() {
    setsid "$FLINK_HOME_DIR/bin/$1.sh" start </dev/null >>"$RUN_DIR/log/start.log" 2>&1 9>&-
    local deadline=$((SECONDS + 20)) pid
    while ((SECONDS < deadline)); do
        pid=$(live_pids "$2" | tail -n 1)
        if [[ -n $pid ]]; then
            echo "$pid"
            return 0
        fi
        sleep 0.2
    done
}

flink_up() {
    [[ -f $FLINK_HOME_DIR/.done ]] || die "Flink is not fetched yet: run 'make engines' (scripts/engines.sh fetch)"
    need java "install Java 17 (Debian: openjdk-17-jre-headless)"
    need setsid "install util-linux"
    flink_env
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/.lock"
    flock 9
    local jm tm
    jm=$(live_pids standalonesession | tail -n 1)
    tm=$(live_pids taskexecutor | tail -n 1)
    if [[ -z $jm && -z $tm ]]; then
        write_flink_conf
        rm -rf "${RUN_DIR:?}/tmp"/*
    fi
    if [[ -n $jm ]]; then
        say "flink-up: the JobManager is already running (pid $jm)"
    else
        if port_open "$REST_HOST" "$REST_PORT"; then
            die "flink-up: something else already listens on $REST_HOST:$REST_PORT (another Flink cluster? 'make flink-down' stops only the one started from $(rel "$RUN_DIR"))"
        fi
        jm=$(start_daemon jobmanager standalonesession)
        [[ -n $jm ]] || die "flink-up: the JobManager did not start; see $RUN_DIR/log/"
        say "flink-up: started the JobManager (pid $jm)"
    fi
    if [[ -n $tm ]]; then
        say "flink-up: a TaskManager is already running (pid $tm)"
    else
        tm=$(start_daemon taskmanager taskexecutor)
        [[ -n $tm ]] || die "flink-up: the TaskManager did not start; see $RUN_DIR/log/"
        say "flink-up: started a TaskManager (pid $tm)"
    fi
    local deadline=$((SECONDS + UP_TIMEOUT_S)) seen=""
    while ((SECONDS < deadline)); do
        seen=$(overview || true)
        if [[ -n $seen ]] && (($(cut -d' ' -f2 <<<"$seen") >= SLOTS)); then
            say "flink-up: Flink $FLINK_VERSION is up: http://$REST_HOST:$REST_PORT ($SLOTS task slots; logs in $(rel "$RUN_DIR")/log)"
            return 0
        fi
        if [[ -z $(live_pids standalonesession) || -z $(live_pids taskexecutor) ]]; then break; fi
        sleep 0.5
    done
    echo "engines: error: flink-up: the cluster did not offer $SLOTS task slots within ${UP_TIMEOUT_S} s (REST overview: ${seen:-no answer}); last log lines:" >&2
    tail -n 15 "$RUN_DIR"/log/*.log >&2 || true
    exit 1
}

pgid_of() { sed -E 's/^.*\) . [0-9]+ ([0-9]+) .*$/\1/' "/proc/$1/stat" 2>/dev/null; } # /proc/PID/stat: "pid (comm) state ppid pgrp ..."

stop_pids() { # stop_pids NAME PID...: SIGTERM each one's process group, SIGKILL after 15 s
    local name=$1 pid pgid
    shift
    local -a targets=()
    for pid in "$@"; do
        pgid=$(pgid_of "$pid")
        if [[ -n $pgid && $pgid != "$(pgid_of $$)" && $pgid != 0 ]]; then
            targets+=("-$pgid")
        else
            targets+=("$pid")
        fi
    done
    kill -TERM -- "${targets[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)); do
        local alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.2
    done
    kill -KILL -- "${targets[@]}" 2>/dev/null || true
    say "flink-down: stopped the $name (pid $*)"
}

flink_down() {
    flink_env
    if [[ ! -d $RUN_DIR ]]; then
        say "flink-down: no Flink cluster was started from $(rel "$RUN_DIR"); nothing to stop"
        return 0
    fi
    exec 9>"$RUN_DIR/.lock"
    flock 9
    local -a tms jms
    mapfile -t tms < <(live_pids taskexecutor)
    mapfile -t jms < <(live_pids standalonesession)
    if ((${#tms[@]} == 0 && ${#jms[@]} == 0)); then
        say "flink-down: no Flink cluster is running (from $(rel "$RUN_DIR")); nothing to stop"
    fi
    ((${#tms[@]} == 0)) || stop_pids "TaskManager" "${tms[@]}"
    ((${#jms[@]} == 0)) || stop_pids "JobManager" "${jms[@]}"
    rm -f "$RUN_DIR"/pid/*.pid
    rm -rf "${RUN_DIR:?}/tmp"
}

status() {
    local part
    for part in "$FLINK_HOME_DIR" "$JOB_SERVER_DIR" "$PRISM_DIR"; do
        if [[ -f $part/.done ]]; then say "cached: $(head -n 1 "$part/.done")"; else say "not fetched: $(rel "$part")"; fi
    done
    flink_env
    local jm tm
    jm=$(live_pids standalonesession | tr '\n' ' ')
    tm=$(live_pids taskexecutor | tr '\n' ' ')
    if [[ -n $jm$tm ]]; then
        say "Flink cluster from $(rel "$RUN_DIR"): JobManager pid ${jm:-none}, TaskManager pid ${tm:-none}; REST overview (taskmanagers, slots): $(overview || echo 'no answer')"
    else
        say "no Flink cluster running from $(rel "$RUN_DIR")"
    fi
}

# The tests run the engines in a private network namespace: `ip` (iproute2), `unshare` and
# `nsenter` (util-linux). Installed when missing, as scripts/ensure-system-deps.sh does.
netns_tools() {
    local -a missing=()
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    { command -v unshare >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1; } || missing+=(util-linux)
    if ((${#missing[@]} == 0)); then
        say "ip, unshare, nsenter present (the tests' private network namespace)"
        return 0
    fi
    if ((EUID != 0)); then
        die "missing Debian packages for the tests' network namespace: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
    fi
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/engines-apt.XXXXXX")
    run "$log" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    run "$log" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    rm -f "$log"
    say "installed ${missing[*]}"
}

need_file() { [[ -e $1 ]] || die "$(rel "$1") is not fetched yet: run 'make engines' (scripts/engines.sh fetch)"; }

case ${1:-} in
fetch) fetch ;;
flink-up) flink_up ;;
flink-down) flink_down ;;
status) status ;;
netns-tools) netns_tools ;;
env)
    need_file "$FLINK_HOME_DIR/.done"
    printf 'export FLINK_HOME=%q FLINK_CONF_DIR=%q FLINK_LOG_DIR=%q FLINK_PID_DIR=%q FLINK_IDENT_STRING=%q\n' \
        "$FLINK_HOME_DIR" "$RUN_DIR/conf" "$RUN_DIR/log" "$RUN_DIR/pid" "$FLINK_IDENT_STRING"
    ;;
prism-path) need_file "$PRISM_BIN" && echo "$PRISM_BIN" ;;
job-server-jar) need_file "$JOB_SERVER_JAR" && echo "$JOB_SERVER_JAR" ;;
flink-home) need_file "$FLINK_HOME_DIR/.done" && echo "$FLINK_HOME_DIR" ;;
*)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
