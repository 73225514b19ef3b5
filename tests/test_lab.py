"""``workbench lab``: the JupyterLab command line, and a real JupyterLab started by the command."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from workbench.cli import KERNEL_NAME, LAB_OFFLINE_OPTIONS, lab_command

REPO = Path(__file__).resolve().parents[1]


def _options(cmd: list[str]) -> dict[str, str]:
    """``--Class.trait=value`` arguments of a command, by ``Class.trait``."""
    pairs = (arg[2:].split("=", 1) for arg in cmd if arg.startswith("--") and "=" in arg)
    return {name: value for name, value in pairs if "." in name}


# -- the command line (no JupyterLab started) --------------------------------------------------


def test_lab_command_serves_the_notebooks_with_the_project_kernel_and_calls_nothing_outside(
        tmp_path: Path) -> None:
    cmd = lab_command(notebooks=tmp_path, port=8899, no_browser=True)
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
    options = _options(cmd)
    assert options["ServerApp.root_dir"] == str(tmp_path) and options["ServerApp.port"] == "8899"
    assert options["MappingKernelManager.default_kernel_name"] == KERNEL_NAME
    assert options["LabApp.news_url"] == "None"  # None switches the feed off; "" is not None
    assert options["LabApp.extension_manager"] == "readonly"
    assert options["LabApp.check_for_updates_class"] == "jupyterlab.NeverCheckForUpdate"
    assert "--no-browser" in cmd and "--allow-root" not in cmd


def test_as_root_allow_root_is_added_and_extra_arguments_go_last_unchanged(tmp_path: Path) -> None:
    extra = ["--ip", "0.0.0.0", "--ServerApp.token=abc", "--some-flag"]
    cmd = lab_command(notebooks=tmp_path, port=8888, as_root=True, extra=extra)
    assert cmd[-len(extra):] == extra
    assert cmd.count("--allow-root") == 1 and "--no-browser" not in cmd
    # given by the user as well: not twice
    assert lab_command(notebooks=tmp_path, port=8888, as_root=True, extra=["--allow-root"]).count(
        "--allow-root") == 1


def test_an_option_given_by_the_user_replaces_the_workbench_one(tmp_path: Path) -> None:
    # JupyterLab refuses an option given twice ("only accepts one value")
    cmd = lab_command(notebooks=tmp_path, port=8888,
                      extra=["--LabApp.news_url=https://intranet.example/feed.xml", "--notebook-dir", "/srv/nb",
                             "--ServerApp.port", "9000"])
    options = _options(cmd)
    assert "ServerApp.root_dir" not in options and "ServerApp.port" not in options
    assert [a for a in cmd if a.startswith("--LabApp.news_url")] == [
        "--LabApp.news_url=https://intranet.example/feed.xml"]
    assert options["LabApp.extension_manager"] == "readonly"  # the others stay


def test_every_option_the_workbench_sets_exists_in_the_installed_jupyterlab(tmp_path: Path) -> None:
    from jupyter_server.serverapp import ServerApp
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager, MappingKernelManager
    from jupyterlab.handlers.announcements import NeverCheckForUpdate
    from jupyterlab.labapp import LabApp

    cmd = lab_command(notebooks=tmp_path, port=8888, no_browser=True, as_root=True)
    classes = {"LabApp": LabApp, "ServerApp": ServerApp, "MappingKernelManager": MappingKernelManager}
    for name in _options(cmd):
        owner, trait = name.split(".")
        assert trait in classes[owner].class_trait_names(config=True), name
    assert set(LAB_OFFLINE_OPTIONS) <= set(_options(cmd))
    # and JupyterLab reads them as meant
    app = LabApp()
    app.parse_command_line(cmd[3:])
    assert app.news_url is None and app.check_for_updates_class is NeverCheckForUpdate
    assert app.extension_manager == "readonly"
    assert app.config.ServerApp.allow_root is True and app.config.ServerApp.open_browser is False
    kernels = AsyncMappingKernelManager(config=app.config)
    assert kernels.default_kernel_name == KERNEL_NAME
    assert kernels.transport_encryption == "auto"  # pyzmq here has CurveZMQ


# -- a real JupyterLab ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(client: httpx.Client, proc: subprocess.Popen[bytes], log: Path, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"workbench lab exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if client.get("/api/status").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"JupyterLab did not answer within {timeout_s:.0f} s:\n{log.read_text(errors='replace')}")


def _run_code(base_ws: str, token: str, kernel_id: str, code: str, *, timeout_s: float = 60) -> str:
    """Execute ``code`` in a kernel through JupyterLab's websocket; what it printed."""
    import websocket  # websocket-client, a dependency of jupyter_server

    ws = websocket.create_connection(f"{base_ws}/api/kernels/{kernel_id}/channels",
                                     header=[f"Authorization: token {token}"], timeout=timeout_s)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        printed: list[str] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream":
                printed.append(msg["content"]["text"])
            elif kind == "error":
                pytest.fail(f"kernel error: {msg['content']['ename']}: {msg['content']['evalue']}")
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(printed)
        pytest.fail(f"no reply to {code!r} within {timeout_s:.0f} s")
    finally:
        ws.close()


def _gone(pid: int, *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


@pytest.mark.slow
def test_workbench_lab_serves_the_notebooks_and_the_project_kernel_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    # Tests run as root on the test machine: the case JupyterLab refuses without --allow-root. As
    # another user the test still runs, without the root-specific checks.
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    script = Path(sys.executable).with_name("workbench")
    assert script.is_file(), f"{script} missing: the package is not installed in this environment"
    home = tmp_path / "project"
    (home / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / "oee.ipynb", home / "notebooks" / "oee.ipynb")
    token, port = secrets.token_hex(16), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "JUPYTER"))}
    env.update(WORKBENCH_HOME=str(home), WORKBENCH_ENV_FILE=str(home / ".env"),
               # the test's own runtime files (connection files, server info) and no user config
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    log = tmp_path / "lab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(script), "lab", "--no-browser", "--port", str(port),
                                 f"--ServerApp.token={token}", "--ip", "127.0.0.1"],
                                env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    kernel_pid = None
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"token {token}"}, timeout=10) as client:
            _wait_until_up(client, proc, log, timeout_s=60)
            assert httpx.get(f"{base}/api/contents", timeout=10).status_code == 403  # the token is needed

            listing = client.get("/api/contents")
            assert listing.status_code == 200, listing.text
            found = {item["name"]: item["type"] for item in listing.json()["content"]}
            assert found.get("oee.ipynb") == "notebook", found

            specs = client.get("/api/kernelspecs").json()
            assert KERNEL_NAME in specs["kernelspecs"] and specs["default"] == KERNEL_NAME

            # nothing to fetch from outside: no news feed, read-only extension manager
            assert client.get("/lab/api/news").json() == {"news": []}
            page = client.get("/lab").text
            config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)'
                                          r"</script>", page, re.S).group(1))
            assert config["news"] == {"disabled": True}
            assert config["extensionManager"]["name"] == "read-only"

            # the project kernel runs (as root, too), over CurveZMQ-encrypted sockets
            started = client.post("/api/kernels", json={"name": KERNEL_NAME})
            assert started.status_code == 201, started.text
            printed = _run_code(f"ws://127.0.0.1:{port}", token, started.json()["id"],
                                "import os; print(os.getpid(), os.geteuid())")
            pid, uid = (int(v) for v in printed.split())
            kernel_pid = pid
            assert uid == os.geteuid()

        proc.send_signal(signal.SIGINT)  # Ctrl-C (stdin is not a terminal: no confirmation asked)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"workbench lab did not stop within 15 s of SIGINT:\n{log.read_text(errors='replace')}")
        # JupyterLab itself got the signal (workbench lab became it) and shut its kernel down
        assert _gone(kernel_pid, timeout_s=10), "the kernel outlived JupyterLab"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if kernel_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(kernel_pid, signal.SIGKILL)

    text = log.read_text(errors="replace")
    assert ("Running as root: starting JupyterLab with --allow-root." in text) is as_root, text
    assert "Running as root is not recommended" not in text
    assert "without encryption" not in text, text
    assert "Extension Manager is 'readonly'" in text
