# Kernel introspection: completion, inspection (docs) and variable summaries.
#
# This file is prepended to driver.py (both run as one `python -c` script), so it only
# defines things; its functions use the driver's globals (send, G, _from, _diag) when called.
#
# Why a reader thread: cells run on the main thread, which would not read the command pipe
# until the cell ends. `commands()` reads fd 3 on its own thread instead: the introspection
# ops below are answered at once on short-lived helper threads (so they work while a cell
# runs), and every other command is handed to the main loop in order.
import inspect as _inspect
import json
import os
import queue as _queue
import reprlib as _reprlib
import signal
import sys
import threading
import time as _time
import types

INTROSPECT_OPS = ("complete", "inspect", "variables")
# Helpers that may run at once; past that the kernel answers "busy" (a helper stuck in a
# hostile __repr__ must not pile up threads).
MAX_HELPERS = 4
# How long a request waits for another request's jedi call (jedi is not thread-safe).
JEDI_WAIT = 4.0
MAX_MATCHES = 500
MAX_DOC_CHARS = 20000
MAX_SIGNATURE_CHARS = 2000
SUMMARY_CHARS = 120
# Most names summarized per request, and the time after which the rest get no summary.
MAX_VARIABLES = 500
VARIABLES_BUDGET = 1.0
# Longest one value's summary may take (a __repr__ is user code and may never return).
SUMMARY_TIME = 0.5

_helpers = threading.BoundedSemaphore(MAX_HELPERS)
# Plans the server cancelled: their steps not yet started are skipped (set by the reader).
CANCELLED_PLANS = set()
_jedi_lock = threading.Lock()


def commands(fd):
    """The main loop's commands in order; ends when the server closes the pipe."""
    q = _queue.SimpleQueue()
    threading.Thread(target=_read_commands, args=(fd, q), name="commands", daemon=True).start()
    while True:
        req = q.get()
        if req is None:
            return
        yield req


def _read_commands(fd, q):
    # Signals stay with the main thread, where user code runs.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        cmds = os.fdopen(fd, "rb", closefd=False)
        while True:
            line = cmds.readline()
            if not line:
                break  # server went away
            try:
                req = json.loads(line)
                op = req.get("op")
            except Exception as e:
                print("kernel: bad command: %r" % (e,), file=_diag)
                continue
            if op in INTROSPECT_OPS:
                _introspect(req)
            elif op == "cancel_plan":
                # Taken here, not queued: the main loop is busy running that plan.
                CANCELLED_PLANS.add(req.get("id"))
            else:
                q.put(req)
    finally:
        q.put(None)


def _introspect(req):
    rid = req.get("id")
    if not _helpers.acquire(blocking=False):
        send({"type": "introspected", "id": rid, "result": {"busy": True}})
        return
    threading.Thread(target=_helper, args=(req,), name="introspect", daemon=True).start()


def _helper(req):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        op = req.get("op")
        if op == "complete":
            result = _complete(req)
        elif op == "inspect":
            result = _inspect_at(req)
        else:
            result = _variables(req)
    except BaseException as e:  # even SystemExit from user code must not reach the driver
        result = {"error": "%s: %s" % (type(e).__name__, str(e)[:500])}
    finally:
        _helpers.release()
    try:
        send({"type": "introspected", "id": req.get("id"), "result": result})
    except BaseException as e:
        print("kernel: could not answer an introspection request: %r" % (e,), file=_diag)


def _jedi():
    import jedi

    # Completing must never run the user's code (properties, __getattr__, __getitem__).
    jedi.settings.allow_unsafe_interpreter_executions = False
    return jedi


def _position(code, cursor):
    """jedi's (line, column) for a code point offset."""
    before = code[:cursor]
    line = before.count("\n") + 1
    return line, len(before) - (before.rfind("\n") + 1)


def _script(req):
    code = req.get("code")
    cursor = req.get("cursor")
    if not isinstance(code, str) or not isinstance(cursor, int) or not 0 <= cursor <= len(code):
        raise ValueError("bad code or cursor")
    # A snapshot: the main thread may change the namespace while jedi reads it.
    namespace = dict(G)
    return _jedi().Interpreter(code, [namespace]), code, cursor


def _complete(req):
    try:
        _jedi()
    except ImportError:
        return {"matches": [], "error": "jedi is not installed in the kernel's Python"}
    if not _jedi_lock.acquire(timeout=JEDI_WAIT):
        return {"matches": [], "busy": True}
    try:
        script, code, cursor = _script(req)
        line, col = _position(code, cursor)
        completions = script.complete(line, col)
        matches = []
        typed = None
        for c in completions:
            name = c.name
            rest = c.complete
            if rest is None or not name.endswith(rest):
                continue
            n = len(name) - len(rest)
            if typed is None:
                typed = n
            if n != typed:
                continue
            # Private names only once the user typed the underscore.
            if name.startswith("_") and not name[:n].startswith("_"):
                continue
            matches.append({"text": name, "type": c.type})
            if len(matches) >= MAX_MATCHES:
                break
        start = cursor - (typed or 0)
        return {"matches": matches, "cursor_start": start, "cursor_end": cursor}
    finally:
        _jedi_lock.release()


def _inspect_at(req):
    try:
        _jedi()
    except ImportError:
        return {"found": False, "error": "jedi is not installed in the kernel's Python"}
    if not _jedi_lock.acquire(timeout=JEDI_WAIT):
        return {"found": False, "busy": True}
    try:
        script, code, cursor = _script(req)
        line, col = _position(code, cursor)
        # Operators and brackets have help too; a call's opening bracket should describe the
        # function instead.
        names = [n for n in script.help(line, col) if n.name.isidentifier()]
        if not names:
            # Inside a call's parentheses: describe the function being called.
            names = script.get_signatures(line, col)
        if not names:
            return {"found": False}
        n = names[0]
        full = n.full_name or n.name
        if full.startswith("jedi."):
            full = n.name
        try:
            sigs = [s.to_string() for s in n.get_signatures()] if hasattr(n, "get_signatures") else []
        except Exception:
            sigs = []
        if not sigs and hasattr(n, "to_string"):
            sigs = [n.to_string()]
        doc = n.docstring(raw=True) or ""
        result = {"found": True, "name": full, "type": n.type}
        if sigs:
            result["signature"] = "\n".join(sigs)[:MAX_SIGNATURE_CHARS]
        if doc:
            result["docstring"] = doc[:MAX_DOC_CHARS]
        return result
    finally:
        _jedi_lock.release()


def _cut(text, limit=SUMMARY_CHARS):
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


_short = _reprlib.Repr()
_short.maxstring = SUMMARY_CHARS
_short.maxother = SUMMARY_CHARS
_short.maxlist = _short.maxtuple = _short.maxset = _short.maxdict = 8
_short.maxlevel = 2


def _summary(v):
    """A one-line description of a value: cheap, no deep repr of big objects."""
    if _from(v, "pandas"):
        import pandas as pd

        if isinstance(v, pd.DataFrame):
            rows, cols = v.shape
            names = ", ".join(str(c) for c in list(v.columns[:20]))
            return _cut("%d rows \u00d7 %d columns: %s" % (rows, cols, names))
        if isinstance(v, pd.Series):
            return _cut("%d values, dtype %s" % (len(v), v.dtype))
    if _from(v, "numpy"):
        import numpy as np

        if isinstance(v, np.ndarray):
            return _cut("array %s, dtype %s" % ("\u00d7".join(map(str, v.shape)) or "scalar", v.dtype))
    if isinstance(v, types.ModuleType):
        return _cut("module " + str(getattr(v, "__name__", "?")))
    if isinstance(v, type):
        return _cut("class " + v.__qualname__)
    if isinstance(v, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        try:
            sig = str(_inspect.signature(v))
        except (TypeError, ValueError):
            sig = "(...)"
        return _cut("def %s%s" % (getattr(v, "__name__", "?"), sig))
    if isinstance(v, (list, tuple, set, frozenset, dict)):
        return _cut("%d items: %s" % (len(v), _short.repr(v)))
    return _cut(_short.repr(v))


class _OutOfTime(BaseException):
    """Raised into user code (a __repr__) that runs past its time; BaseException so that an
    `except Exception` in it does not swallow it."""


def _within(seconds, fn, *args):
    """fn(*args), stopped when it runs Python code past `seconds` (loops in C are not)."""
    deadline = _time.monotonic() + seconds

    def tracer(frame, event, arg):
        if _time.monotonic() > deadline:
            raise _OutOfTime()
        return tracer

    # Tracing this (helper) thread only; the cell on the main thread is not slowed down.
    sys.settrace(tracer)
    try:
        return fn(*args)
    finally:
        sys.settrace(None)


def _variables(req):
    names = req.get("names")
    if not isinstance(names, list):
        names = []
    deadline = _time.monotonic() + VARIABLES_BUDGET
    out = []
    for name in names[:MAX_VARIABLES]:
        if not isinstance(name, str):
            continue
        v = G.get(name, _variables)
        if v is _variables:
            continue
        entry = {"name": name, "type": type(v).__name__}
        if _time.monotonic() < deadline:
            try:
                entry["summary"] = _within(SUMMARY_TIME, _summary, v)
            except _OutOfTime:
                entry["summary"] = "(no summary: its repr took too long)"
            except BaseException as e:
                entry["summary"] = "(no summary: %s)" % type(e).__name__
        else:
            entry["summary"] = "(not summarized: out of time)"
        out.append(entry)
    return {"variables": out}
