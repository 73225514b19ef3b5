"""The kernel zygote process: import the analysis libraries once, fork a fresh kernel per notebook.

Started by :class:`workbench.reports.kernels.KernelZygote` as
``<kernel's python> -m workbench.reports._zygote <socket path> <module> …``. It binds the Unix
socket first (so a client that connects early just waits), imports the listed modules (and
calls each ``module:function`` entry once), then serves one JSON request per connection:

``{"op": "ping"}``
    → ``{"ok": true, "pid": …, "preloaded": [...], "failed": {module: error}}``
``{"op": "spawn", "argv": [...], "cwd": "...", "env": {...}}``
    → ``{"ok": true, "pid": …}``: a child forked from this process runs ``python -m <module>
    <args>`` from ``argv`` (``-m ipykernel_launcher -f <connection file>``) in a session of
    its own, in ``cwd``, with exactly ``env`` as its environment.
``{"op": "status", "pid": …}``
    → ``{"ok": true, "returncode": int or null}`` (null while the child runs).

The process stays single-threaded and creates no event loop, ZMQ context or database
connection before forking: a child gets the imported modules and nothing else. It exits when
its standard input closes (its owner went away) and then terminates the children still running.
Everything here uses the standard library only, so the zygote itself starts fast.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import time
import traceback
import warnings

_MAX_REQUEST = 1 << 20


def _reap(exits: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        exits[pid] = os.waitstatus_to_exitcode(status)


def _module_and_args(argv: list[str]) -> tuple[str, list[str]]:
    """``[python, (interpreter options…), -m, module, args…]`` → ``(module, args)``."""
    if "-m" not in argv[1:]:
        raise ValueError(f"not a `python -m module …` command: {argv!r}")
    at = argv.index("-m", 1)
    if at + 1 >= len(argv):
        raise ValueError(f"no module after -m in {argv!r}")
    return argv[at + 1], argv[at + 2:]


def _child(module: str, args: list[str], cwd: str | None, env: dict[str, str],
           closing: list[socket.socket]) -> None:
    """Become the kernel; never returns."""
    code = 1
    try:
        os.setsid()  # its own process group: an interrupt for the kernel never reaches the zygote
        for sock in closing:
            sock.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if cwd:
            os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            # Python reseeds `random` after a fork; numpy's legacy global generator is not, and
            # every child would otherwise draw the same "random" numbers.
            numpy.random.seed()
        if module == "ipykernel_launcher" and env.get("JPY_PARENT_PID"):
            # ipykernel reads JPY_PARENT_PID when it is imported, i.e. in the zygote where it is
            # unset; say it again so the kernel knows it has an owner (and watches for its exit).
            args = [f"--IPKernelApp.parent_handle={int(env['JPY_PARENT_PID'])}", *args]
        sys.argv = [module, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed stream must not keep the child alive
                stream.flush()
        os._exit(code)


def _answer(conn: socket.socket, reply: dict[str, object]) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(reply).encode() + b"\n")
    conn.close()


def recv_line(sock: socket.socket, *, limit: int = _MAX_REQUEST) -> bytes:
    """Read one newline-terminated message (or what came before the peer closed)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ValueError("message too large")
    return data


def _read_request(conn: socket.socket) -> dict[str, object]:
    conn.settimeout(10)
    request = json.loads(recv_line(conn).decode() or "{}")
    if not isinstance(request, dict):
        raise ValueError("request must be a JSON object")
    return request


def serve(address: str, modules: list[str]) -> int:
    """Bind ``address``, import ``modules``, then serve until standard input closes."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    preloaded: list[str] = []
    failed: dict[str, str] = {}
    started = time.perf_counter()
    # tqdm.auto (imported by shap and mlflow) warns that ipywidgets is missing once ipykernel is
    # loaded; report kernels draw no progress bars. For good, not only while preloading: the
    # kernels forked from here inherit it, and one that imports SHAP or MLflow itself (a model
    # section computed in the report) would print the warning on its page.
    warnings.filterwarnings("ignore", message="IProgress not found")
    for name in modules:
        try:
            module, _, function = name.partition(":")
            with warnings.catch_warnings():
                loaded = importlib.import_module(module)
                if function:
                    getattr(loaded, function)()
            preloaded.append(name)
        except BaseException as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
            print(f"[workbench kernel zygote] could not preload {name}: {failed[name]}", file=sys.stderr)
    preload_s = time.perf_counter() - started

    exits: dict[int, int] = {}
    children: set[int] = set()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "listen")
    selector.register(sys.stdin, selectors.EVENT_READ, "owner")
    running = True
    while running:
        for key, _ in selector.select(timeout=0.5):
            if key.data == "owner":
                if not os.read(sys.stdin.fileno(), 4096):
                    running = False
                continue
            conn, _ = listener.accept()
            try:
                request = _read_request(conn)
                op = request.get("op")
                if op == "ping":
                    _answer(conn, {"ok": True, "pid": os.getpid(), "preloaded": preloaded, "failed": failed,
                                   "preload_s": round(preload_s, 3)})
                elif op == "spawn":
                    argv = [str(a) for a in request["argv"]]  # type: ignore[union-attr]
                    if os.path.abspath(argv[0]) != os.path.abspath(sys.executable):
                        raise ValueError(f"the kernel's interpreter {argv[0]} is not this zygote's "
                                         f"({sys.executable})")
                    module, args = _module_and_args(argv)
                    env = {str(k): str(v) for k, v in dict(request.get("env") or os.environ).items()}
                    cwd = request.get("cwd")
                    pid = os.fork()
                    if pid == 0:
                        selector.close()
                        _child(module, args, str(cwd) if cwd else None, env, [listener, conn])
                    children.add(pid)
                    _answer(conn, {"ok": True, "pid": pid})
                elif op == "status":
                    _reap(exits)
                    pid = int(request["pid"])  # type: ignore[arg-type]
                    if pid not in children:
                        _answer(conn, {"ok": False, "error": f"process {pid} is not a child of this zygote"})
                    else:
                        _answer(conn, {"ok": True, "returncode": exits.get(pid)})
                else:
                    _answer(conn, {"ok": False, "error": f"unknown op {op!r}"})
            except Exception as exc:
                _answer(conn, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        _reap(exits)

    # The owner is gone: stop the kernels it started that are still running.
    _reap(exits)
    for pid in children - set(exits):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)
    listener.close()
    with contextlib.suppress(OSError):
        os.unlink(address)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m workbench.reports._zygote <socket path> [module …]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m workbench.reports._zygote SOCKET [MODULE ...]", file=sys.stderr)
        return 2
    return serve(args[0], args[1:])


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown of everything preloaded (about half a second): the owner
    # waits for this exit, and there is nothing left to clean up.
    os._exit(status)
