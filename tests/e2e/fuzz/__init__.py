"""Hostile bytes over real HTTP: no request of any shape gives a 5xx from any API.

Every endpoint that takes a body or parameters gets FUZZ_EXAMPLES generated requests
(test_generated_requests.py: 300 in `make test`, replaying one fixed run; `make fuzz` sends
more, drawn anew) and the fixed corpus of known-bad inputs (test_known_bad_inputs.py). Each
request goes as raw bytes to the running service processes. Every answer must come within
seconds, be below 500 (all dependencies are up here, so not even a 503 is excused), and
refuse as problem details; a refused create must have stored nothing.
"""
