#!/bin/sh
# The honest engine behind, the lying proxy in front (see cheater.py).
serve-vllm --port 8001 --host 127.0.0.1 --enforce-eager --dtype float32 \
  --max-model-len 1024 --max-logprobs 20 --disable-log-stats &
exec python /app/cheater.py
