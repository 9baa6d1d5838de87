#!/bin/sh
# The honest engine behind, the lying proxy in front (see cheater.py).
serve-baseline --port 8001 --host 127.0.0.1 &
exec python /app/cheater.py
