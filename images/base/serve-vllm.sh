#!/bin/sh
# The arena's server contract: OpenAI API on port 8000, weights at /models, served as arena-tiny.
# Extra arguments are vLLM engine flags (the baseline adds --enforce-eager).
exec python -m vllm.entrypoints.openai.api_server \
  --model /models --served-model-name arena-tiny \
  --host 0.0.0.0 --port 8000 "$@"
