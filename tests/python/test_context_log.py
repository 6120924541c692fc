"""What Context.log() sends on the events pipe, against the executor's caps
on one line (src/worker/executor.c: 16 KiB, 16 levels, 1,024 values)."""

import json
import os

from stratq._context import MAX_LOG_DEPTH, MAX_LOG_VALUES, Context, _within


def sent_lines(log_calls):
    r, w = os.pipe()
    try:
        ctx = Context("job", 1, {}, None, 60, events_fd=w)
        for message, fields in log_calls:
            ctx.log(message, **fields)
        os.close(w)
        w = -1
        with os.fdopen(r, "rb") as f:
            r = -1
            return [json.loads(line) for line in f.read().splitlines()]
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)


def test_within_counts_values_and_depth_as_the_executor_does():
    line = {"t": "log", "msg": "m", "fields": {"a": [1, 2]}}
    # The line, t, msg, fields, a, 1 and 2; the line, fields and a open.
    assert _within(line, 3, 7)
    assert not _within(line, 3, 6)
    assert not _within(line, 2, 7)
    assert _within(5, 0, 1) and not _within([], 0, 1) and not _within([0], 1, 1)
    assert _within([{}] * 1023, 2, 1024) and not _within([{}] * 1024, 2, 1024)


def test_a_log_line_within_the_caps_is_sent_whole():
    fields = {"rows": list(range(MAX_LOG_VALUES - 5))}  # the line holds 1,024 values
    [line] = sent_lines([("loaded", fields)])
    assert line == {"t": "log", "msg": "loaded", "fields": fields}


def test_a_log_line_over_a_cap_is_sent_truncated():
    many = {"rows": list(range(MAX_LOG_VALUES - 4))}
    deep = {"tree": []}
    node = deep["tree"]
    for _ in range(MAX_LOG_DEPTH - 2):  # the line and fields are 2 levels
        node.append([])
        node = node[0]
    lines = sent_lines([("many", many), ("deep", deep), ("ok", {"n": 1})])
    assert lines[0] == {"t": "log", "msg": "many", "fields": {}, "truncated": True}
    assert lines[1] == {"t": "log", "msg": "deep", "fields": {}, "truncated": True}
    assert lines[2] == {"t": "log", "msg": "ok", "fields": {"n": 1}}
