# Notebook kernel driver: runs user code in this subprocess on behalf of the server.
#
# Protocol: line-delimited JSON, commands in on fd 3, messages out on fd 4. fds 1 and 2
# are redirected into internal pipes whose contents are forwarded as "stream" messages,
# so nothing user code writes (print, os.write, C extensions, subprocesses) can corrupt
# the protocol.
import array
import ast
import base64
import builtins
import codecs
import collections
import fcntl
import importlib
import io
import itertools
import json
import linecache
import math
import os
import select
import signal
import sys
import termios
import threading
import traceback
import types

CMD_FD = 3
MSG_FD = 4
CELL_FILENAME = "<cell>"
# Each run compiles under its own name so linecache can show the right source line even for
# a function defined by another cell; tracebacks print them all as CELL_FILENAME.
CELL_PREFIX = "<cell-"
MAX_CELL_SOURCES = 2000
MAX_ROWS = 1000
MAX_OUTPUT_BYTES = 8 * 1024 * 1024  # same as the server's cap (src/kernel/caps.rs)


class _State:
    # in_user: SIGINT raises KeyboardInterrupt only while user code runs (idle SIGINT is ignored).
    # critical: >0 while writing a protocol message; an interrupt then is deferred so a
    # message is never cut in half.
    in_user = False
    critical = 0
    pending_interrupt = False
    current_id = None


STATE = _State()


def _on_sigint(signum, frame):
    if not STATE.in_user:
        return
    if STATE.critical:
        STATE.pending_interrupt = True
        return
    raise KeyboardInterrupt


signal.signal(signal.SIGINT, _on_sigint)

# The protocol fds must not leak into user subprocesses, or EOF would not signal death.
os.set_inheritable(CMD_FD, False)
os.set_inheritable(MSG_FD, False)

# Keep the original stderr (read by the server's log) for driver diagnostics and crash dumps.
_DIAG_FD = os.dup(2)
_diag = open(_DIAG_FD, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
try:
    import faulthandler

    faulthandler.enable(file=_diag)
except Exception:  # pragma: no cover - diagnostics only
    pass

_send_lock = threading.Lock()
_MAIN_THREAD = threading.main_thread()


def _json_safe(v, depth=0):
    """Convert arbitrary nested data into strict-JSON-compatible Python values."""
    if depth > 100:
        return str(v)
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _json_safe(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x, depth + 1) for x in v]
    return _cell(v, tag=False)


def _dumps(msg):
    try:
        text = json.dumps(msg, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError):
        text = json.dumps(_json_safe(msg), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # Lone surrogates cannot be encoded as UTF-8; replace them rather than break the line.
    return text.encode("utf-8", "replace") + b"\n"


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def send(msg, data=None):
    if data is None:
        data = _dumps(msg)
    # Only the main thread receives KeyboardInterrupt, so only it needs the deferral.
    on_main = threading.current_thread() is _MAIN_THREAD
    if on_main:
        STATE.critical += 1
    try:
        with _send_lock:
            _write_all(MSG_FD, data)
    finally:
        if on_main:
            STATE.critical -= 1
    if on_main and STATE.pending_interrupt and STATE.in_user and not STATE.critical:
        STATE.pending_interrupt = False
        raise KeyboardInterrupt


class _Capture:
    """Redirects one fd into a pipe and forwards everything written there as stream messages."""

    def __init__(self, name, fd):
        self.name = name
        self.fd = fd
        r, w = os.pipe()
        self.sync_fd = os.dup(w)  # our own write end: still works if user code closes fd
        os.dup2(w, fd)  # inheritable, so subprocesses write into the pipe too
        os.close(w)
        self.r = r
        self.token = b"\x00\x1b[kernel-sync-" + os.urandom(8).hex().encode() + b"]\x00"
        self.event = threading.Event()
        self.sync_lock = threading.Lock()
        # Held by the pump while it has bytes out of the pipe that it has not forwarded, so
        # `sync` can tell "all forwarded" without a round trip through the pump.
        self.pump_lock = threading.Lock()
        self.held = 0
        threading.Thread(target=self._pump, name="capture-" + name, daemon=True).start()

    def _emit(self, text):
        if text:
            send({"type": "stream", "id": STATE.current_id, "name": self.name, "text": text})

    def _pump(self):
        # Signals must be handled by the main thread (where user code runs).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        dec = codecs.getincrementaldecoder("utf-8")("replace")
        token = self.token
        pending = b""
        while True:
            try:
                select.select([self.r], [], [])
            except (OSError, ValueError):
                return
            with self.pump_lock:
                try:
                    chunk = os.read(self.r, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                pending += chunk
                while True:
                    i = pending.find(token)
                    if i < 0:
                        break
                    self._emit(dec.decode(pending[:i]))
                    pending = pending[i + len(token):]
                    self.event.set()
                # Hold back a tail that could be the start of a sync token split across reads.
                hold = 0
                for k in range(min(len(token) - 1, len(pending)), 0, -1):
                    if pending.endswith(token[:k]):
                        hold = k
                        break
                self._emit(dec.decode(pending[: len(pending) - hold]))
                pending = pending[len(pending) - hold:]
                self.held = len(pending)

    def _drained(self):
        """Whether everything written to the fd so far was forwarded: the pipe is empty and
        the pump holds nothing (checked under its lock, so not mid-chunk)."""
        if not self.pump_lock.acquire(blocking=False):
            return False
        try:
            if self.held:
                return False
            waiting = array.array("i", [0])
            fcntl.ioctl(self.r, termios.FIONREAD, waiting, True)
            return waiting[0] == 0
        except OSError:
            return False
        finally:
            self.pump_lock.release()

    def sync(self, timeout=5.0):
        """Block until everything written to the fd so far has been forwarded."""
        if self._drained():
            return
        with self.sync_lock:
            self.event.clear()
            try:
                os.write(self.sync_fd, self.token)
            except OSError:
                return
            self.event.wait(timeout)


class _Stream(io.TextIOWrapper):
    """sys.stdout/sys.stderr: write-through, and keeps stdout/stderr order when switching."""

    def write(self, s):
        _switch_to(self._capture)
        n = super().write(s)
        if self._capture is _err:
            # stderr is rare and conventionally unbuffered: deliver it before returning, so
            # later raw writes to fd 1 (os.write, subprocesses) cannot overtake it.
            self._capture.sync()
        return n


_last_capture = None


def _switch_to(cap):
    global _last_capture
    prev = _last_capture
    if prev is not None and prev is not cap:
        prev.sync()
    _last_capture = cap


def _make_stream(cap):
    s = _Stream(
        io.FileIO(cap.fd, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )
    s._capture = cap
    return s


_out = _Capture("stdout", 1)
_err = _Capture("stderr", 2)
sys.stdout = sys.__stdout__ = _make_stream(_out)
sys.stderr = sys.__stderr__ = _make_stream(_err)

try:
    import ctypes

    _libc = ctypes.CDLL(None)
except Exception:  # pragma: no cover
    _libc = None


def sync_streams():
    """Deliver all pending stdout/stderr output (Python, C stdio and raw fd writes)."""
    for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            s.flush()
        except Exception:
            pass
    if _libc is not None:
        try:
            _libc.fflush(None)
        except Exception:
            pass
    _out.sync()
    _err.sync()


# ---------------------------------------------------------------- rich output formatting


def _mro_modules(obj):
    return [getattr(c, "__module__", "") or "" for c in type(obj).__mro__]


def _from(obj, pkg):
    return any(m == pkg or m.startswith(pkg + ".") for m in _mro_modules(obj))


def _float_tag(v):
    """A NaN or infinity, tagged so a table can show NaN apart from a missing value (None)."""
    return {"type": "float", "value": "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")}


def _cell(v, tag=True):
    """One table cell / nested value as a JSON-safe scalar; NaN and infinities are tagged
    (see _float_tag) unless `tag` is false, when they become None."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        return _float_tag(v) if tag else None
    mods = _mro_modules(v)
    if any(m.startswith("pandas") for m in mods):
        import pandas as pd

        try:
            if pd.isna(v) is True:
                return None
        except Exception:
            pass
        if isinstance(v, pd.Timestamp):
            return v.isoformat()
        if isinstance(v, pd.Timedelta):
            return str(v)
    if any(m.startswith("numpy") for m in mods):
        import numpy as np

        if isinstance(v, np.datetime64):
            return None if np.isnat(v) else str(v)
        if isinstance(v, np.timedelta64):
            return None if np.isnat(v) else str(v)
        if isinstance(v, np.ndarray):
            return _json_safe(v.tolist())
        if isinstance(v, np.generic):
            return _cell(v.item(), tag)
    if hasattr(v, "isoformat"):
        try:
            return v.isoformat()
        except Exception:
            pass
    if isinstance(v, (list, tuple, dict)):
        return _json_safe(v)
    if isinstance(v, bytes):
        return repr(v)
    return str(v)


def _col_name(c):
    if isinstance(c, tuple):
        return " / ".join(str(x) for x in c)
    return str(c)


def _table(df):
    import pandas as pd

    total = len(df)
    head = df.iloc[:MAX_ROWS]
    idx = df.index
    default_index = (
        isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1 and idx.name is None
    )
    columns = []
    index_rows = None
    if not default_index:
        names = list(idx.names)
        for i, n in enumerate(names):
            columns.append(str(n) if n is not None else ("index" if len(names) == 1 else "level_%d" % i))
        if isinstance(idx, pd.MultiIndex):
            index_rows = [list(t) for t in head.index]
        else:
            index_rows = [[x] for x in head.index]
    columns.extend(_col_name(c) for c in df.columns)
    values = head.to_numpy(dtype=object).tolist()
    rows = []
    for i, row in enumerate(values):
        if index_rows is not None:
            row = index_rows[i] + row
        rows.append([_cell(x) for x in row])
    data = {"type": "table", "columns": columns, "rows": rows}
    if total > MAX_ROWS:
        data["truncated"] = "showing %d of %d rows" % (MAX_ROWS, total)
    return {"mime_type": "application/json", "data": data, "metadata": {}}


def _mpl_figure(obj):
    from matplotlib.artist import Artist
    from matplotlib.figure import Figure, SubFigure

    if isinstance(obj, Figure):
        return obj
    if isinstance(obj, SubFigure):
        return obj.figure
    if isinstance(obj, Artist):
        return getattr(obj, "figure", None)
    return None


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return {
        "mime_type": "image/png",
        "data": base64.b64encode(buf.getvalue()).decode("ascii"),
        "metadata": {},
    }


def _close_figure(fig):
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close(fig)
        except Exception:
            pass


def _rich(obj):
    """Best rich representation for obj, or None to fall back to repr."""
    if _from(obj, "pandas"):
        import pandas as pd

        if isinstance(obj, pd.DataFrame):
            return _table(obj)
        if isinstance(obj, pd.Series):
            return _table(obj.to_frame(name=obj.name if obj.name is not None else "value"))
    if _from(obj, "matplotlib"):
        fig = _mpl_figure(obj)
        if fig is not None:
            out = _png(fig)
            _close_figure(fig)
            return out
    if isinstance(obj, (list, tuple)) and obj and all(_from(x, "matplotlib") for x in obj):
        figs = {id(f): f for f in (_mpl_figure(x) for x in obj) if f is not None}
        if len(figs) == 1:
            fig = next(iter(figs.values()))
            out = _png(fig)
            _close_figure(fig)
            return out
    if _from(obj, "plotly"):
        from plotly.basedatatypes import BaseFigure

        if isinstance(obj, BaseFigure):
            # to_json handles numpy arrays and NaN; the protocol wants the plain dict.
            return {
                "mime_type": "application/vnd.plotly.v1+json",
                "data": json.loads(obj.to_json()),
                "metadata": {},
            }
    if _from(obj, "altair") and hasattr(obj, "to_dict"):
        spec = _json_safe(obj.to_dict())
        schema = str(spec.get("$schema", "")) if isinstance(spec, dict) else ""
        major = "6"
        marker = "vega-lite/v"
        if marker in schema:
            digits = schema.split(marker, 1)[1].split(".", 1)[0]
            if digits.isdigit():
                major = digits
        return {"mime_type": "application/vnd.vegalite.v%s+json" % major, "data": spec, "metadata": {}}
    html = getattr(obj, "_repr_html_", None)
    if callable(html) and not isinstance(obj, type):
        h = html()
        if isinstance(h, str):
            return {"mime_type": "text/html", "data": h, "metadata": {}}
    # Duck-typed like IPython's display protocol (IPython.display.Markdown has it), so no
    # IPython is needed; it may answer the text or (text, metadata).
    markdown = getattr(obj, "_repr_markdown_", None)
    if callable(markdown) and not isinstance(obj, type):
        md = markdown()
        if isinstance(md, tuple) and md:
            md = md[0]
        if isinstance(md, str):
            return {"mime_type": "text/markdown", "data": md, "metadata": {}}
    return None


def format_output(obj):
    try:
        out = _rich(obj)
    except KeyboardInterrupt:
        raise
    except Exception as e:
        # A failing rich formatter should not lose the value: fall back to repr.
        print("kernel: rich display failed (%s: %s)" % (type(e).__name__, e), file=_diag)
        out = None
    if out is None:
        out = {"mime_type": "text/plain", "data": repr(obj), "metadata": {}}
    return out


def emit_output(out):
    msg = {"type": "output", "id": STATE.current_id, "output": out}
    data = _dumps(msg)
    if len(data) > MAX_OUTPUT_BYTES:
        # The server would drop it anyway (it enforces the same cap); this only saves the
        # pipe traffic. It shows one notice for all of the cell's dropped outputs.
        msg = {"type": "dropped", "id": STATE.current_id, "bytes": len(data)}
        data = _dumps(msg)
    # Outputs appear in order with the prints that preceded them.
    sync_streams()
    send(msg, data)


def display(*objs):
    """Show each object as a rich output of the current cell."""
    for obj in objs:
        if obj is not None:
            emit_output(format_output(obj))


builtins.display = display


def emit_open_figures():
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for num in plt.get_fignums():
        emit_output(_png(plt.figure(num)))
    plt.close("all")


def close_open_figures():
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close("all")
        except Exception:
            pass


# ---------------------------------------------------------------- execution

_main = types.ModuleType("__main__")
_main.__dict__["__builtins__"] = builtins
sys.modules["__main__"] = _main  # so pickle etc. find classes defined in cells
G = _main.__dict__


_cell_sources = collections.deque()
_cell_runs = itertools.count(1)


def _cell_source(code):
    """A fresh file name for this run's code, whose lines linecache now knows."""
    name = "%s%d>" % (CELL_PREFIX, next(_cell_runs))
    _remember_source(name, code)
    return name


def _remember_source(name, code):
    # mtime None: linecache.checkcache keeps the entry (there is no file to compare with).
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    _cell_sources.append(name)
    if len(_cell_sources) > MAX_CELL_SOURCES:
        linecache.cache.pop(_cell_sources.popleft(), None)


def _is_cell_file(name):
    return name == CELL_FILENAME or name.startswith(CELL_PREFIX)


def _show_cell_names(te, seen=None):
    """Prints every run's file name as CELL_FILENAME, after its source lines are read."""
    seen = seen if seen is not None else set()
    if te is None or id(te) in seen:
        return
    seen.add(id(te))
    for fs in te.stack:
        if _is_cell_file(fs.filename):
            fs.line  # noqa: B018 - reads the line from linecache under the real name
            fs.filename = CELL_FILENAME
    if _is_cell_file(getattr(te, "filename", None) or ""):
        te.filename = CELL_FILENAME
    _show_cell_names(te.__cause__, seen)
    _show_cell_names(te.__context__, seen)
    for sub in getattr(te, "exceptions", None) or []:
        _show_cell_names(sub, seen)


def format_error(e):
    """Traceback limited to frames from user code (with their source lines), ending with the
    exception line."""
    tb = e.__traceback__
    while tb is not None and not _is_cell_file(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    te = traceback.TracebackException(type(e), e, tb)
    _show_cell_names(te)
    return "".join(te.format()).rstrip("\n")


def explain_ipython_syntax(e):
    """A SyntaxError on an IPython magic or !shell line (e.g. from an imported Jupyter notebook)
    becomes one that says so; this kernel runs plain Python and never runs them."""
    text = (getattr(e, "text", None) or "").strip() if isinstance(e, SyntaxError) else ""
    if not (text.startswith("%") or (text.startswith("!") and not text.startswith("!="))):
        return e
    kind = "a shell command (!)" if text.startswith("!") else "an IPython magic (%)"
    msg = "%s is %s, which this notebook does not run (it runs plain Python); remove or rewrite it" % (
        text[:80],
        kind,
    )
    return SyntaxError(msg, (e.filename, e.lineno, e.offset, e.text))


# Compiled cells by source: re-running unchanged code (what reactive runs mostly do) skips
# parsing and compiling, which costs more than running a small cell. Bounded by entries and
# by source size (big notebooks re-run whole); the oldest entry goes first.
_compiled = {}
_compiled_bytes = [0]
MAX_COMPILED = 32768
MAX_COMPILED_BYTES = 8 * 1024 * 1024


def _compile_cell(code):
    hit = _compiled.get(code)
    if hit is not None:
        filename, body, last_code, _ = hit
        if filename not in linecache.cache:
            # Its source lines were rotated out; tracebacks still need them.
            _remember_source(filename, code)
        return body, last_code
    filename = _cell_source(code)
    tree = compile(code, filename, "exec", ast.PyCF_ONLY_AST)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    body = compile(tree, filename, "exec")
    last_code = compile(last, filename, "eval") if last is not None else None
    while _compiled and (len(_compiled) >= MAX_COMPILED or _compiled_bytes[0] + len(code) > MAX_COMPILED_BYTES):
        _compiled_bytes[0] -= len(_compiled.pop(next(iter(_compiled)))[3])
    if len(code) <= MAX_COMPILED_BYTES:
        _compiled[code] = (filename, body, last_code, code)
        _compiled_bytes[0] += len(code)
    return body, last_code


def run_cell(code):
    body, last_code = _compile_cell(code)
    STATE.in_user = True
    try:
        exec(body, G)
        if last_code is not None:
            value = eval(last_code, G)
            if value is not None:
                display(value)
        emit_open_figures()
    finally:
        STATE.in_user = False
        STATE.pending_interrupt = False


# The notebook's package layer records each install here; a change means new importable code.
_LAYER_MANIFEST = os.environ.pop("PACKAGE_LAYER_MANIFEST", None)
_layer_seen = [None]


def _notice_installs():
    if not _LAYER_MANIFEST:
        return
    try:
        stamp = os.stat(_LAYER_MANIFEST).st_mtime_ns
    except OSError:
        stamp = None
    if stamp != _layer_seen[0]:
        _layer_seen[0] = stamp
        importlib.invalidate_caches()


def do_execute(req):
    _notice_installs()
    for name in req.get("forget") or []:
        G.pop(name, None)
    execute_step(req.get("id"), req.get("code", ""))


def do_plan(req):
    """Runs a plan's steps back to back. A step whose parent failed, was blocked or was
    interrupted in this plan is `blocked`; after an interrupt, or once the server cancels the
    plan, the steps not yet started are `cancelled`."""
    _notice_installs()
    plan_id = req.get("id")
    failed = set()
    stop = False
    # A step's `done` goes out with the next step's `started`, in one write: the next step
    # begins at once, so nothing waits for it, and a plan costs one write per cell.
    pending = []
    for step in req.get("steps") or []:
        sid = step.get("id")
        if stop or plan_id in CANCELLED_PLANS:
            pending.append(_dumps({"type": "done", "id": sid, "status": "cancelled", "error": None}))
            continue
        if any(p in failed for p in step.get("parents") or ()):
            failed.add(sid)
            pending.append(_dumps({"type": "done", "id": sid, "status": "blocked", "error": None}))
            continue
        started = b'{"type":"started","id":%d}\n' % sid if type(sid) is int else _dumps({"type": "started", "id": sid})
        pending.append(started)
        send(None, b"".join(pending))
        status, done = execute_step(sid, step.get("code", ""), defer_done=True)
        pending = [done]
        if status != "ok":
            failed.add(sid)
        if status == "interrupted":
            stop = True
    if pending:
        send(None, b"".join(pending))
    CANCELLED_PLANS.discard(plan_id)


def execute_step(rid, code, defer_done=False):
    """Runs one cell as command `rid`, streaming its output, then reports `done` (or, with
    `defer_done`, returns the message for the caller to send): (status, unsent message)."""
    STATE.current_id = rid
    status, error = "ok", None
    try:
        run_cell(code)
    except KeyboardInterrupt:
        status = "interrupted"
        close_open_figures()
    except BaseException as e:
        status, error = "error", format_error(explain_ipython_syntax(e))
        close_open_figures()
    try:
        sync_streams()
    except KeyboardInterrupt:
        pass
    if error is None and type(rid) is int:
        # The common case, formatted directly (json.dumps costs more than the cell).
        done = b'{"type":"done","id":%d,"status":"%s","error":null}\n' % (rid, status.encode())
    else:
        done = _dumps({"type": "done", "id": rid, "status": status, "error": error})
    STATE.current_id = None
    if defer_done:
        return status, done
    send(None, done)
    return status, b""


def sql_value(v):
    import datetime
    import decimal

    if v is None:
        return {"type": "none"}
    mods = _mro_modules(v)
    if any(m.startswith("numpy") for m in mods):
        import numpy as np

        if isinstance(v, np.datetime64):
            if np.isnat(v):
                return {"type": "none"}
            import datetime as _dt

            v = v.astype("datetime64[us]").item()
            if not isinstance(v, (_dt.date, _dt.datetime)):
                return {"type": "unsupported", "python_type": "numpy.datetime64"}
        elif isinstance(v, np.generic) and not isinstance(v, (np.str_, np.bytes_, np.void)):
            v = v.item()
    if type(v).__name__ == "NaTType":
        return {"type": "none"}
    if isinstance(v, bool):
        return {"type": "bool", "value": v}
    if isinstance(v, int):
        if -(2**63) <= v < 2**63:
            return {"type": "int", "value": v}
        return {"type": "decimal", "value": str(v)}
    if isinstance(v, float):
        if math.isfinite(v):
            return {"type": "float", "value": v}
        return {"type": "float", "value": "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")}
    if isinstance(v, str):
        return {"type": "str", "value": v}
    if isinstance(v, datetime.datetime):
        return {"type": "datetime", "value": v.isoformat()}
    if isinstance(v, datetime.date):
        return {"type": "date", "value": v.isoformat()}
    if isinstance(v, decimal.Decimal):
        return {"type": "decimal", "value": str(v)}
    return {"type": "unsupported", "python_type": type(v).__qualname__}


def _unsupported(v, error):
    try:
        return {"type": "unsupported", "python_type": str(type(v).__qualname__), "error": str(error)}
    except KeyboardInterrupt:
        raise
    except BaseException:
        return {"type": "unsupported", "python_type": "object"}


def do_get_values(req):
    rid = req.get("id")
    values = []
    missing = None
    interrupted = False
    # Converting a value can run user code (__str__, isoformat, a __class__ property, ...), so it
    # is interruptible like a cell: the server sends SIGINT when it takes too long.
    STATE.in_user = True
    try:
        for name in req.get("names") or []:
            if name not in G:
                missing = name
                break
            try:
                values.append(sql_value(G[name]))
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # even SystemExit from a __str__ must not stop the driver
                values.append(_unsupported(G[name], e))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        STATE.in_user = False
        STATE.pending_interrupt = False
    if interrupted:
        send({"type": "values", "id": rid, "interrupted": True})
    elif missing is not None:
        send({"type": "values", "id": rid, "missing": missing})
    else:
        send({"type": "values", "id": rid, "values": values})


# ---------------------------------------------------------------- SQL on the embedded engine

_duck = {}


class _SqlError(Exception):
    """An error whose message is the whole report (no traceback of driver frames)."""


def _duck_connection():
    con = _duck.get("con")
    if con is None:
        try:
            import duckdb
        except ImportError as e:
            raise _SqlError(
                "This notebook has no database connection, so SQL cells run on the embedded "
                "DuckDB engine in the kernel, but the kernel's Python cannot import duckdb "
                "(%s). Install it into that environment (pip install duckdb) or set a "
                "PostgreSQL connection for the notebook." % (e,)
            )
        con = _duck["con"] = duckdb.connect(":memory:")
    return con


def _have_pandas():
    try:
        import pandas  # noqa: F401

        return True
    except ImportError:
        return False


def _rows_table(columns, rows):
    """The table output for plain rows (no pandas)."""
    data = {
        "type": "table",
        "columns": [str(c) for c in columns],
        "rows": [[_cell(x) for x in r] for r in rows[:MAX_ROWS]],
    }
    if len(rows) > MAX_ROWS:
        data["truncated"] = "showing %d of %d rows" % (MAX_ROWS, len(rows))
    return {"mime_type": "application/json", "data": data, "metadata": {}}


def _query(con, code, params, box):
    """Runs in a worker thread: execute and fetch, leaving the value or the error in box."""
    try:
        # The query runs in a frame whose globals are the notebook's, so DuckDB's replacement
        # scan (which looks at the calling frame only) finds the notebook's DataFrames by name
        # and never the driver's own variables; parameters are bound, never spliced in.
        scope = {"_rn_con": con, "_rn_sql": code, "_rn_params": params}
        eval("_rn_con.execute(_rn_sql, _rn_params)", G, scope)
        if con.description is None:
            box["columns"] = None
        else:
            box["columns"] = [d[0] for d in con.description]
            box["value"] = con.df() if _have_pandas() else con.fetchall()
    except BaseException as e:
        box["error"] = e


def _run_sql(code, names, result_name):
    con = _duck_connection()
    for n in names:
        if n not in G:
            raise _SqlError("NameError: name '%s' is not defined (run the cell that defines it first)" % n)
    params = [G[n] for n in names]
    # DuckDB stops a query cleanly only through con.interrupt(); a KeyboardInterrupt raised
    # inside it leaves the engine unable to run the next query. So the query runs in a worker
    # thread and this (main) thread turns SIGINT into an interrupt of the connection.
    box = {}
    worker = threading.Thread(target=_query, args=(con, code, params, box), daemon=True)
    worker.start()
    interrupted = False
    while worker.is_alive():
        try:
            worker.join(0.05)
        except KeyboardInterrupt:
            interrupted = True
            try:
                con.interrupt()
            except Exception:
                pass
    if interrupted:
        raise KeyboardInterrupt
    e = box.get("error")
    if e is not None:
        if type(e).__module__.startswith("duckdb") or type(e).__module__ == "_duckdb":
            raise _SqlError("%s: %s" % (type(e).__name__, e))
        raise e
    columns = box.get("columns")
    if columns is None:
        value, out = None, None
    elif _have_pandas():
        value = box["value"]
        out = _table(value)
    else:
        rows = box["value"]
        value = [dict(zip(columns, r)) for r in rows]
        out = _rows_table(columns, rows)
    if result_name:
        G[result_name] = value
    if out is not None:
        emit_output(out)


def do_sql(req):
    STATE.current_id = req.get("id")
    status, error = "ok", None
    STATE.in_user = True
    try:
        _run_sql(req.get("code", ""), req.get("names") or [], req.get("result_name"))
    except KeyboardInterrupt:
        status = "interrupted"
    except _SqlError as e:
        status, error = "error", str(e)
    except BaseException as e:
        status, error = "error", "".join(traceback.format_exception_only(type(e), e)).rstrip("\n")
    finally:
        STATE.in_user = False
        STATE.pending_interrupt = False
    try:
        sync_streams()
    except KeyboardInterrupt:
        pass
    send({"type": "done", "id": STATE.current_id, "status": status, "error": error})
    STATE.current_id = None


def do_bind_table(req):
    rid = req.get("id")
    status, error = "ok", None
    try:
        columns = [str(c) for c in req.get("columns") or []]
        rows = req.get("rows") or []
        if _have_pandas():
            import pandas as pd

            value = pd.DataFrame(rows, columns=columns)
        else:
            value = [dict(zip(columns, r)) for r in rows]
        G[req["name"]] = value
    except BaseException as e:
        status, error = "error", "".join(traceback.format_exception_only(type(e), e)).rstrip("\n")
    send({"type": "done", "id": rid, "status": status, "error": error})


def do_forget(req):
    for name in req.get("names") or []:
        G.pop(name, None)
    send({"type": "forgot", "id": req.get("id")})


def main():
    send({"type": "ready", "pid": os.getpid(), "version": sys.version.split()[0]})
    # Read on a thread of its own (introspect.py), which answers completion and inspection
    # requests itself, so they work while a cell runs.
    for req in commands(CMD_FD):
        op = req.get("op")
        if op == "execute":
            do_execute(req)
        elif op == "plan":
            do_plan(req)
        elif op == "get_values":
            do_get_values(req)
        elif op == "forget":
            do_forget(req)
        elif op == "sql":
            do_sql(req)
        elif op == "bind_table":
            do_bind_table(req)
        elif op == "shutdown":
            break
        else:
            print("kernel: unknown op %r" % (op,), file=_diag)
    try:
        sync_streams()
    except BaseException:
        pass
    os._exit(0)


main()
