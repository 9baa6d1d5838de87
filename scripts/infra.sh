#!/usr/bin/env bash
# Local infrastructure for Arena: a Docker engine and an image registry.
#
#   scripts/infra.sh start          start what is not running; prints `export ...` lines for eval
#   scripts/infra.sh stop           stop what this script started (PID files in the state dir)
#   scripts/infra.sh status         say what runs; exit 0 when both parts answer, 3 otherwise
#   scripts/infra.sh run CMD [ARG]  start, run CMD with the exports, then stop what this call started
#
# An engine the user already runs is used as it is (DOCKER_HOST, /var/run/docker.sock, or any
# dockerd on this host); otherwise a private dockerd runs on $ARENA_STATE_DIR/docker.sock with its own
# data and exec roots. A registry already answering on $ARENA_REGISTRY_ADDR is used as it is;
# otherwise Debian's docker-registry serves there from its own storage dir. Chopsticks is not
# started here: each test session starts its own (tests/fixtures/chain.py).
#
# Environment: ARENA_STATE_DIR (default <repo>/.arena/infra; PID files, sockets, logs), ARENA_DATA_DIR
# (default /var/lib/arena; image layers and registry blobs, kept across checkouts), ARENA_REGISTRY_ADDR (default
# 127.0.0.1:5000), DOCKER_HOST (an engine to use; set it to unix://$ARENA_STATE_DIR/docker.sock to
# ask for the private one even where another engine runs).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

state=$ARENA_STATE_DIR
dockerd_pidfile=$state/dockerd.pid
registry_pidfile=$state/registry.pid
registry_config=$state/registry.yml
dockerd_ready_s=60
registry_ready_s=30
stop_grace_s=60

# The PID in a PID file, if that process is alive and is the one we started (its command line
# names our socket or config); a stale file, or a PID reused by another process, yields nothing.
live_pid() {
	local pidfile=$1 needle=$2 pid
	[ -f "$pidfile" ] || return 0
	pid=$(<"$pidfile")
	if [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$needle"; then
		echo "$pid"
	fi
}

dockerd_pid() { live_pid "$dockerd_pidfile" "$ARENA_PRIVATE_DOCKER_HOST"; }
registry_pid() { live_pid "$registry_pidfile" "$registry_config"; }

# Poll until a probe succeeds; fail with the log's tail when the process dies or time runs out.
wait_until() {
	local what=$1 pid=$2 logfile=$3 limit_s=$4 deadline=$((SECONDS + $4))
	shift 4
	until "$@"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$logfile" >&2
			die "$what exited while starting; its log is $logfile"
		fi
		((SECONDS < deadline)) || die "$what did not answer within ${limit_s}s; its log is $logfile"
		sleep 0.2
	done
}

start_dockerd() {
	local extra=()
	# A second engine on a host must keep off the first one's docker0 bridge and iptables chains
	# (dockerd flushes its chains on start), so a private one beside another runs without them.
	if [ -n "$(running_dockerd_hosts)" ]; then
		extra=(--bridge=none --iptables=false)
		log "another dockerd runs on this host: the private one starts with ${extra[*]}"
	fi
	command -v dockerd >/dev/null || die "dockerd is not installed; run scripts/setup.sh first"
	# Left by a dockerd that was killed; dockerd refuses a PID file whose PID is alive again.
	rm -f "${ARENA_PRIVATE_DOCKER_HOST#unix://}" "$dockerd_pidfile"
	# 9>&-: the children must not inherit the state-dir lock.
	setsid dockerd --host "$ARENA_PRIVATE_DOCKER_HOST" --data-root "$ARENA_DATA_DIR/docker" \
		--exec-root "$state/exec" --pidfile "$dockerd_pidfile" "${extra[@]}" 9>&- \
		>"$state/dockerd.log" 2>&1 </dev/null &
	local pid=$!
	wait_until dockerd "$pid" "$state/dockerd.log" "$dockerd_ready_s" docker_answers "$ARENA_PRIVATE_DOCKER_HOST"
	log "dockerd started (pid $pid) on $ARENA_PRIVATE_DOCKER_HOST"
}

start_registry() {
	command -v docker-registry >/dev/null || die "docker-registry is not installed; run scripts/setup.sh first"
	cat >"$registry_config" <<-EOF
		version: 0.1
		storage:
		  filesystem:
		    rootdirectory: $ARENA_DATA_DIR/registry
		  delete:
		    enabled: true
		http:
		  addr: $ARENA_REGISTRY_ADDR
	EOF
	setsid docker-registry serve "$registry_config" >"$state/registry.log" 2>&1 </dev/null 9>&- &
	local pid=$!
	echo "$pid" >"$registry_pidfile"
	wait_until docker-registry "$pid" "$state/registry.log" "$registry_ready_s" registry_answers "$ARENA_REGISTRY_ADDR"
	log "docker-registry started (pid $pid) on $ARENA_REGISTRY_ADDR"
}

# Which engine to use, in this order: one DOCKER_HOST names, the private one if it runs, one that
# already runs on this host, else a new private one. Prints its DOCKER_HOST.
ensure_docker() {
	local pid host
	if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "$ARENA_PRIVATE_DOCKER_HOST" ]; then
		docker_answers "$DOCKER_HOST" ||
			die "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine, or unset DOCKER_HOST to let Arena run its own dockerd"
		log "using the Docker engine DOCKER_HOST names: $DOCKER_HOST"
		echo "$DOCKER_HOST"
		return
	fi
	pid=$(dockerd_pid)
	if [ -n "$pid" ]; then
		wait_until dockerd "$pid" "$state/dockerd.log" "$dockerd_ready_s" \
			docker_answers "$ARENA_PRIVATE_DOCKER_HOST"
		echo "$ARENA_PRIVATE_DOCKER_HOST"
		return
	fi
	[ -n "${DOCKER_HOST:-}" ] || host=$(found_docker_host)
	if [ -n "${host:-}" ]; then
		log "using the Docker engine already running at $host"
		echo "$host"
		return
	fi
	start_dockerd
	echo "$ARENA_PRIVATE_DOCKER_HOST"
}

ensure_registry() {
	local pid
	pid=$(registry_pid)
	if [ -n "$pid" ]; then
		wait_until docker-registry "$pid" "$state/registry.log" "$registry_ready_s" \
			registry_answers "$ARENA_REGISTRY_ADDR"
	elif registry_answers "$ARENA_REGISTRY_ADDR"; then
		log "using the registry already answering on $ARENA_REGISTRY_ADDR"
	else
		start_registry
	fi
}

# SIGTERM, wait for the process to go, SIGKILL after the grace period.
stop_pid() {
	local what=$1 pid=$2 deadline=$((SECONDS + stop_grace_s))
	kill -TERM "$pid" 2>/dev/null || return 0
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "$what (pid $pid) ignored SIGTERM for ${stop_grace_s}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.2
	done
	log "$what (pid $pid) stopped"
}

cmd_start() {
	mkdir -p "$state" "$ARENA_DATA_DIR"
	exec 9>"$state/lock"
	flock 9 # one start or stop at a time per state dir
	local host
	host=$(ensure_docker)
	ensure_registry
	printf 'export DOCKER_HOST=%s\nexport ARENA_REGISTRY_ADDR=%s\n' "$host" "$ARENA_REGISTRY_ADDR"
}

stop_registry() {
	local pid
	pid=$(registry_pid)
	[ -z "$pid" ] || stop_pid docker-registry "$pid"
	rm -f "$registry_pidfile"
}

stop_dockerd() {
	local pid
	pid=$(dockerd_pid)
	[ -z "$pid" ] || stop_pid dockerd "$pid"
	# A killed dockerd leaves the containerd it supervises running,
	pid=$(live_pid "$state/exec/containerd/containerd.pid" "$state/exec/containerd")
	[ -z "$pid" ] || stop_pid containerd "$pid"
	# and the bind mount of its data root, which it also leaves behind when killed.
	! mountpoint -q "$state/docker-data" || umount "$state/docker-data"
	rm -f "$dockerd_pidfile" "${ARENA_PRIVATE_DOCKER_HOST#unix://}"
}

cmd_stop() {
	[ -d "$state" ] || return 0
	exec 9>"$state/lock"
	flock 9 # one start or stop at a time per state dir
	stop_registry
	stop_dockerd
}

cmd_status() {
	local rc=0 pid host
	pid=$(dockerd_pid)
	if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "$ARENA_PRIVATE_DOCKER_HOST" ]; then
		host=$DOCKER_HOST
	elif [ -n "$pid" ]; then
		host=$ARENA_PRIVATE_DOCKER_HOST
	elif [ -z "${DOCKER_HOST:-}" ]; then
		host=$(found_docker_host)
	fi
	if [ -n "${host:-}" ] && docker_answers "$host"; then
		echo "docker engine: answering at $host${pid:+ (private dockerd, pid $pid)}"
	else
		echo "docker engine: none answering${host:+ at $host}"
		rc=3
	fi
	pid=$(registry_pid)
	if registry_answers "$ARENA_REGISTRY_ADDR"; then
		echo "registry: answering on $ARENA_REGISTRY_ADDR${pid:+ (private, pid $pid)}"
	else
		echo "registry: not answering on $ARENA_REGISTRY_ADDR"
		rc=3
	fi
	return $rc
}

# Runs a command with the infrastructure up, then stops what this call started (and nothing that
# ran before it), whether the command passes or fails.
cmd_run() {
	[ $# -gt 0 ] || die "usage: scripts/infra.sh run CMD [ARG...]"
	local exports rc=0
	# Globals: the EXIT trap runs after this function's locals are gone.
	had_dockerd=$(dockerd_pid)
	had_registry=$(registry_pid)
	trap '[ -n "$had_registry" ] || stop_registry; [ -n "$had_dockerd" ] || stop_dockerd' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	exports=$(cmd_start)
	eval "$exports"
	"$@" || rc=$?
	return $rc
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
run)
	shift
	cmd_run "$@"
	;;
*) die "usage: scripts/infra.sh start|stop|status|run CMD [ARG...]" ;;
esac
