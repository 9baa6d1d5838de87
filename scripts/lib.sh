# shellcheck shell=bash
# Shared by scripts/setup.sh and scripts/infra.sh: logging, paths, and probes of the local parts.
# Source it; it defines functions and variables and runs nothing.

ARENA_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARENA_REGISTRY_ADDR=${ARENA_REGISTRY_ADDR:-127.0.0.1:5000}
ARENA_STATE_DIR=$(realpath -m "${ARENA_STATE_DIR:-$ARENA_REPO/.arena/infra}")
# Image layers and registry blobs outlive a checkout (like /var/lib/docker): a second clone on the
# same machine, CI's included, reuses built images instead of rebuilding them cold.
ARENA_DATA_DIR=$(realpath -m "${ARENA_DATA_DIR:-/var/lib/arena}")
# The socket a private dockerd listens on; users may point DOCKER_HOST at it to ask for it.
ARENA_PRIVATE_DOCKER_HOST="unix://$ARENA_STATE_DIR/docker.sock"

log() { printf '[arena] %s\n' "$*" >&2; }
die() {
	printf '[arena] error: %s\n' "$*" >&2
	exit 1
}

# Does the Docker engine at this DOCKER_HOST answer? unix sockets are probed with curl, so this
# works before any docker CLI is installed; other schemes (tcp with TLS, ssh) go through the CLI.
docker_answers() {
	local host=$1
	case $host in
	unix://*)
		[ -S "${host#unix://}" ] &&
			[ "$(curl -s --max-time 5 --unix-socket "${host#unix://}" http://localhost/_ping)" = OK ]
		;;
	*) command -v docker >/dev/null && DOCKER_HOST=$host timeout 10 docker version >/dev/null 2>&1 ;;
	esac
}

registry_answers() {
	[ "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$1/v2/")" = 200 ]
}

# unix:// sockets that running dockerd processes listen on (from their command lines), so an
# engine started by hand without DOCKER_HOST being exported is still found and reused.
running_dockerd_hosts() {
	local pid arg prev
	for pid in $(pgrep -x dockerd); do
		prev=
		while IFS= read -r -d '' arg; do
			case $prev:$arg in
			--host:* | -H:*) echo "$arg" ;;
			esac
			case $arg in
			--host=* | -H=*) echo "${arg#*=}" ;;
			esac
			prev=$arg
		done 2>/dev/null <"/proc/$pid/cmdline"
	done | grep '^unix://' || true
}

# A Docker engine already running without DOCKER_HOST naming it: the default socket, then any
# dockerd on this host except Arena's private one. Prints its DOCKER_HOST, or nothing.
found_docker_host() {
	local host
	for host in unix:///var/run/docker.sock $(running_dockerd_hosts); do
		if [ "$host" != "$ARENA_PRIVATE_DOCKER_HOST" ] && docker_answers "$host"; then
			echo "$host"
			return 0
		fi
	done
}
