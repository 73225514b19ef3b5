"""Fresh kernels in a fraction of a second: fork them from a process that has done the imports.

A report notebook spends most of its time before its first line of analysis: a new Python
process, IPython, then pandas, scipy, plotly and the workbench library (1–2 s on a small
server) — five notebooks pay that five times. A *kernel zygote* pays it once per pipeline run:
a process that imports those modules and then forks one child per notebook. Each child is a
brand-new kernel process (nothing a notebook does is seen by the next: no shared namespace,
memory or state), it just starts with the modules already imported.

Wiring: :class:`KernelZygote` starts and owns the process; its :attr:`~KernelZygote.address`
(a Unix socket path) is all a notebook run needs — :func:`kernel_manager_class` makes a
jupyter_client kernel manager whose provisioner asks the zygote for the kernel process instead
of launching ``python -m ipykernel_launcher``. Everything else (connection file, ZMQ channels,
interrupt, shutdown) is jupyter_client's own. The socket is in a private temporary directory
(mode 0700): only the user who started the run can ask the zygote for anything.

Falls back to a normal kernel launch, with a warning in the log, when the zygote cannot be
used: another interpreter in the kernel spec, a kernel that is not ``python -m …``, a zygote
that died or did not start, or a platform without ``fork`` (Windows).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench.errors import ReportError
from workbench.reports._zygote import recv_line

log = logging.getLogger(__name__)

#: What a zygote imports before forking kernels: the kernel itself and what the notebooks import.
DEFAULT_PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.debugger",  # debugpy / pydevd: imported at kernel start when the spec enables debugging
    "IPython",
    "IPython.core.history",
    "tornado.ioloop",
    "psutil",
    "pandas",
    "plotly.graph_objects",
    "plotly.io",
    "scipy.special",
    "workbench.notebook",
    "workbench.plots",
    "workbench.oee",
    "workbench.jobs",
    "workbench.losses",
    "workbench.reliability",
    "workbench.spc",
    # The model sections (root_cause, anomalies, yield_forecast) — scikit-learn and imbalanced-learn
    # come with them. Not SHAP, skops, Prophet or MLflow (~4 s that every kernel would wait for at
    # the start of a run): the morning model run computed the sections (workbench.ml.daily), so a
    # notebook needs them only when it computes a section itself, and the root-cause notebook alone
    # reads the registry (MLflow) for the champion's card.
    "workbench.ml.sections",
    "workbench.ml.ml_plots",
    "workbench.ml.daily",
    "workbench.notebook:warm_up",  # module:function — called once, after the imports
)


class ZygoteUnavailable(ReportError):  # noqa: N818 — it says what happened
    """The zygote cannot start a kernel (not running, refused the request, or not applicable)."""


def supported() -> bool:
    """Whether kernels can be forked here (POSIX with ``fork`` and Unix sockets)."""
    return hasattr(os, "fork") and hasattr(socket, "AF_UNIX") and sys.platform != "win32"


_PID_FILE = "zygote.pid"


def _may_still_bind(address: str) -> bool:
    """Whether the zygote meant to serve ``address`` exists (its owner writes its pid beside the
    socket; the folder goes when the owner closes it)."""
    try:
        pid = int((Path(address).parent / _PID_FILE).read_text(encoding="ascii"))
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zygote that died before binding is a zombie until its owner reaps it (Linux)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _request(address: str, payload: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
    """One request / one reply over the zygote's socket."""
    deadline = time.monotonic() + timeout_s
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.1))
            sock.connect(address)
            sock.sendall(json.dumps(payload).encode() + b"\n")
            data = recv_line(sock)
            break
        except FileNotFoundError:
            # Not bound yet (the zygote binds before it imports: a start-up race), unless there is
            # no zygote to wait for any more.
            if not _may_still_bind(address) or time.monotonic() >= deadline:
                raise ZygoteUnavailable(f"kernel zygote at {address} is not running") from None
            time.sleep(0.02)
        except (OSError, ValueError) as exc:  # refused, reset, timed out, oversized reply
            raise ZygoteUnavailable(f"kernel zygote at {address}: {exc}") from None
        finally:
            sock.close()
    if not data:
        raise ZygoteUnavailable(f"kernel zygote at {address} closed the connection without a reply")
    reply = json.loads(data.decode())
    if not reply.get("ok"):
        raise ZygoteUnavailable(f"kernel zygote at {address}: {reply.get('error', 'refused')}")
    return reply


class ForkedKernelProcess:
    """The part of :class:`subprocess.Popen` jupyter_client uses, for a kernel the zygote forked.

    The kernel is the zygote's child, not ours: the zygote reaps it and tells its exit code.
    """

    stdin = stdout = stderr = None

    def __init__(self, address: str, pid: int) -> None:
        self.address = address
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code, or None while the kernel runs."""
        if self.returncode is None:
            try:
                self.returncode = _request(self.address, {"op": "status", "pid": self.pid},
                                           timeout_s=5).get("returncode")
            except ZygoteUnavailable:
                # The zygote is gone (its children exit with it); ask the system instead.
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    self.returncode = -signal.SIGTERM
                except PermissionError:
                    pass
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the kernel to exit (``subprocess.TimeoutExpired`` after ``timeout`` s)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
            time.sleep(0.05)
        return int(self.returncode)  # type: ignore[arg-type]

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the kernel process."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        """SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)


class KernelZygote:
    """Start and own a kernel zygote for one kernel spec.

    Parameters
    ----------
    kernel_name : str
        The Jupyter kernel spec whose interpreter the zygote runs (so forked kernels are exactly
        what that spec would start).
    preload : sequence of str
        Modules to import before forking, and ``module:function`` entries to call once after
        (e.g. :func:`workbench.notebook.warm_up`). One that fails is skipped and logged; the
        notebook that needs it reports the error.
    cwd : Path, optional
        Working directory of the zygote process.

    Examples
    --------
    >>> with KernelZygote("workbench") as zygote:               # doctest: +SKIP
    ...     run_section(nb, out_dir=out, parameters={}, kernels=zygote.address)
    """

    def __init__(self, kernel_name: str = "workbench", *, preload: Sequence[str] = DEFAULT_PRELOAD,
                 cwd: Path | None = None) -> None:
        if not supported():
            raise ZygoteUnavailable("forking kernels needs a POSIX system")
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        try:
            spec = KernelSpecManager().get_kernel_spec(kernel_name)
        except NoSuchKernel:
            raise ReportError(f"no Jupyter kernel named {kernel_name!r}; `make venv` installs 'workbench' "
                              "(python -m ipykernel install --sys-prefix --name workbench)") from None
        self.kernel_name = kernel_name
        self.python = spec.argv[0]
        # The kernel's interpreter options too (e.g. -Xfrozen_modules=off for the debugger).
        options = spec.argv[1:spec.argv.index("-m")] if "-m" in spec.argv[1:] else []
        self._dir = Path(tempfile.mkdtemp(prefix="wb-zygote-"))
        self.address = str(self._dir / "zygote.sock")
        self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [self.python, *options, "-m", "workbench.reports._zygote", self.address, *preload],
            stdin=subprocess.PIPE, cwd=str(cwd) if cwd else None, start_new_session=True)
        (self._dir / _PID_FILE).write_text(str(self.process.pid), encoding="ascii")

    def ping(self, *, timeout_s: float = 120) -> dict[str, Any]:
        """Wait until the zygote has done its imports; what it preloaded and what failed."""
        return _request(self.address, {"op": "ping"}, timeout_s=timeout_s)

    def close(self) -> None:
        """Stop the zygote (closing its input ends it; it terminates its own kernels still running)."""
        proc, self.process = self.process, None
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # type: ignore[union-attr]
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> KernelZygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a zygote must not outlive a forgotten owner
        with contextlib.suppress(Exception):
            self.close()


def _provisioner_class() -> type:
    from jupyter_client.provisioning import LocalProvisioner

    class ZygoteProvisioner(LocalProvisioner):  # type: ignore[misc]
        """Ask the zygote for the kernel process; launch it normally when the zygote cannot."""

        zygote_address: str | None = None

        async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
            address = self.zygote_address
            if address:
                env = dict(kwargs.get("env") or os.environ)
                if not kwargs.get("independent"):
                    env["JPY_PARENT_PID"] = str(os.getpid())  # as jupyter_client's launcher does
                request = {"op": "spawn", "argv": list(cmd), "cwd": str(kwargs.get("cwd") or os.getcwd()),
                           "env": env}
                try:
                    reply = _request(address, request, timeout_s=120)
                except ZygoteUnavailable as exc:
                    log.warning("%s; starting the kernel the usual way", exc)
                else:
                    self.process = ForkedKernelProcess(address, int(reply["pid"]))
                    self.pid = self.process.pid
                    self.pgid = self.process.pid  # the child calls setsid(): it leads its own group
                    self.cwd = kwargs.get("cwd", Path.cwd())
                    return self.connection_info
            return await super().launch_kernel(cmd, **kwargs)

        async def wait(self) -> int | None:
            if not isinstance(self.process, ForkedKernelProcess):
                return await super().wait()
            # As LocalProvisioner.wait, polling every 10 ms rather than 100 ms: asking the zygote
            # is cheap, and a report run waits for every kernel it shuts down.
            while self.process.poll() is None:
                await asyncio.sleep(0.01)
            code, self.process = self.process.returncode, None
            return code

    return ZygoteProvisioner


def transport_encryption() -> str:
    """The CurveZMQ policy for kernels the workbench starts (jupyter_client's ``transport_encryption``).

    ``"auto"``: a kernel whose spec declares ``supported_encryption: curve`` (what
    ``ipykernel install`` writes since ipykernel 7.3) gets manager-provisioned CurveZMQ keys, so
    code and outputs between the kernel and its client are encrypted even on localhost — and
    the kernel no longer logs "Kernel is running over TCP without encryption" into every run.
    Not ``"required"``: a kernel spec installed by an older ipykernel would then fail the run
    instead of running unencrypted. ``"disabled"`` when pyzmq's libzmq lacks CurveZMQ
    (jupyter_client refuses the other policies there).

    Returns
    -------
    str
        ``"auto"`` or ``"disabled"``.
    """
    import zmq

    return "auto" if zmq.has("curve") else "disabled"


def kernel_manager_class(address: str | None = None, *, env: Mapping[str, str] | None = None) -> type:
    """A jupyter_client ``AsyncKernelManager`` for report runs.

    Parameters
    ----------
    address : str, optional
        A :class:`KernelZygote`'s address: kernels are forked by it (else launched as usual).
    env : mapping, optional
        Environment variables to set in the kernel, over the caller's environment.

    Returns
    -------
    type
        Pass it to papermill / nbclient as ``kernel_manager_class``. Its kernels talk over
        CurveZMQ-encrypted sockets when their spec allows it (see :func:`transport_encryption`).
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    provisioner = _provisioner_class()
    extra = dict(env or {})
    encryption = transport_encryption()

    class ReportKernelManager(AsyncKernelManager):  # type: ignore[misc]
        @default("transport_encryption")
        def _encrypt_when_the_kernel_can(self) -> str:
            return encryption

        async def _async_pre_start_kernel(self, **kw: Any) -> Any:
            if extra:
                kw["env"] = {**(kw.get("env") or os.environ), **extra}
            if self.provisioner is None and address:
                self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
                prov = provisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
                prov.zygote_address = address
                self.provisioner = prov
            return await super()._async_pre_start_kernel(**kw)

        async def _async_finish_shutdown(self, waittime: float | None = None, pollinterval: float = 0.1,
                                         restart: bool = False) -> None:
            # A finished notebook's kernel exits within milliseconds of the shutdown request;
            # jupyter_client looks every 100 ms, which holds each report slot that much longer.
            await super()._async_finish_shutdown(waittime, min(pollinterval, 0.01), restart)

    return ReportKernelManager
