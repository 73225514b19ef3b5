"""A private Mosquitto broker configured as ``deploy/mosquitto/workbench.conf`` says, on a free port.

Tests and benchmarks use it so that what they prove holds for the broker settings the README asks a
plant to use (persistence, no per-client queue limit), and so that restarting it mid-stream does
not disturb anything else on the machine.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from workbench.errors import SimulationError

DEPLOY_CONF = Path(__file__).resolve().parents[3] / "deploy" / "mosquitto" / "workbench.conf"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MosquittoBroker:
    """Run ``mosquitto`` with the workbench settings, persisting into ``data_dir``.

    Parameters
    ----------
    data_dir : Path
        Where the configuration, the persistence file and the log go.
    port : int, optional
        Listening port on 127.0.0.1 (default: a free one).
    """

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        if shutil.which("mosquitto") is None:
            raise SimulationError("mosquitto is not installed (apt-get install mosquitto)")
        if not DEPLOY_CONF.exists():
            raise SimulationError(f"{DEPLOY_CONF} is missing: run from a checkout of the workbench")
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        lines = []
        for line in DEPLOY_CONF.read_text().splitlines():
            if line.startswith("persistence_location"):
                line = f"persistence_location {self.data_dir}/"
            elif line.startswith("listener"):
                line = f"listener {self.port} 127.0.0.1"
            lines.append(line)
        lines.append(f"log_dest file {self.data_dir / 'mosquitto.log'}")
        # Started as root, mosquitto switches to the 'mosquitto' user, which cannot write our folder
        # (no log, and silently no persistence file): run it as whoever runs us.
        lines.append(f"user {getpass.getuser()}")
        self.conf = self.data_dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>``."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> MosquittoBroker:
        """Start and wait until it accepts connections."""
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        log = self.data_dir / "mosquitto.log"
        raise SimulationError(f"mosquitto did not start on port {self.port}: see {log}")

    def stop(self) -> None:
        """Stop cleanly (SIGTERM: the broker writes its persistence file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, *, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port with the same store."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def log(self) -> str:
        """The broker's log so far."""
        path = self.data_dir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
