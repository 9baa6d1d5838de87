#!/bin/sh
# The `local` baseline's engine: the one place its flags live. Images that must run an engine
# exactly like the baseline's (the adversaries that cheat from inside a server) call this too,
# adding --port/--host to move it behind their proxy.
exec serve-vllm --enforce-eager --max-num-seqs 1 --distributed-executor-backend uni \
  --dtype float32 --max-model-len 1024 --max-logprobs 20 --disable-log-stats "$@"
