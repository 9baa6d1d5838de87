#!/bin/sh
# The baseline's engine behind on 127.0.0.1:8001, the cheating proxy in front on port 8000 (see
# proxy.py; ARENA_ADVERSARY picks the cheat).
serve-baseline --port 8001 --host 127.0.0.1 &
exec python /app/proxy.py --mode "$ARENA_ADVERSARY" --engine http://127.0.0.1:8001 --port 8000
