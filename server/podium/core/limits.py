"""The server's limits on what one request or one run may ask of it.

A single event loop serves every RPC and runs every step, so no definition,
runtime value or expression may make it work unboundedly. Each limit is
checked as early as its value is known: definitions when they are created
or validated (INVALID_ARGUMENT naming the limit), runtime values when the step
computes them (the step fails with LIMIT_EXCEEDED naming the limit).
docs/limits.md lists them.
"""

from __future__ import annotations

# Failure type of a step whose runtime value broke a limit.
LIMIT_EXCEEDED = "podium.LimitExceeded"

# Steps in one workflow definition (checked before the definition is even translated).
MAX_STEPS = 10_000
# Iterations of one loop step (its max_iterations may not exceed this).
MAX_LOOP_ITERATIONS = 1_000
# Items of one for_each step, checked when its items expression is evaluated.
MAX_FAN_OUT_ITEMS = 10_000
# Size of one expression's result, as characters of strings and entries of
# lists and maps counted through the whole value.
MAX_EXPRESSION_RESULT_SIZE = 1_000_000
# How deeply lists and maps may nest in one expression's result: within what protobuf
# parses (100 message levels; a JSON level of a Struct takes three), with room
# for an agent to wrap it in a few levels more.
MAX_EXPRESSION_RESULT_DEPTH = 24
# How many times an expression's replace() calls with literal arguments may
# multiply a string's length (checked when the expression is compiled).
MAX_EXPRESSION_GROWTH = 100
# Bytes of one gRPC request the server accepts; larger ones are refused by
# gRPC itself (RESOURCE_EXHAUSTED) before any of Podium's code runs.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
