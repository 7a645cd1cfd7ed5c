"""Real tokens for the custody tests: SoftHSM 2 in a temporary directory, and a TPM 2.0
made of swtpm + tpm2-abrmd (on a private D-Bus session bus) + tpm2-pkcs11.

Environment variables are set before the first module load in this process, because both
modules read their configuration in C_Initialize. Nothing touches system token stores.
"""

from __future__ import annotations

import ctypes.util
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.ports import listening_ports
from trusted_ledger.custody.keyspec import KeyAlgorithm
from trusted_ledger.custody.module_admin import init_token
from trusted_ledger.custody.pin import Pin
from trusted_ledger.custody.profiles import HsmProfile, load_profile
from trusted_ledger.custody.token import TokenPool

USER_PIN = "4711-test-user"
SO_PIN = "4711-test-so"
MAIN_TOKEN = "tl-main"
IMPORT_TOKEN = "tl-import"
CONTROL_TOKEN = "tl-control"  # only for the no-gate control run, which may corrupt state
IMPORTED_KEY = "imported"
TPM_TOKEN = "tl-tpm"


@dataclass
class TokenEnv:
    """One token the tests may use, and how to reach it."""

    kind: str
    profile: HsmProfile
    label: str
    pin: Pin
    algorithms: tuple[KeyAlgorithm, ...]
    env: dict[str, str] = field(default_factory=dict)
    root: Path = Path()


def _have(*tools: str) -> str | None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    return f"missing {', '.join(missing)}" if missing else None


def softhsm_env_vars(root: Path) -> dict[str, str]:
    tokens = root / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    return {"SOFTHSM2_CONF": str(conf)}


def softhsm_init_token(env: dict[str, str], label: str) -> None:
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label,
         "--so-pin", SO_PIN, "--pin", USER_PIN],
        env={**os.environ, **env}, check=True, capture_output=True,
    )  # fmt: skip


def _import_software_key(env: dict[str, str], pem_path: Path) -> None:
    """A key made in software and imported: CKA_LOCAL false, what custody must refuse."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem_path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    subprocess.run(
        ["softhsm2-util", "--import", str(pem_path), "--token", IMPORT_TOKEN,
         "--label", IMPORTED_KEY, "--id", "0a0b", "--pin", USER_PIN],
        env={**os.environ, **env}, check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> TokenEnv:
    reason = _have("softhsm2-util")
    if reason:
        pytest.skip(f"SoftHSM not installed: {reason}")
    root = tmp_path_factory.mktemp("softhsm")
    env = softhsm_env_vars(root)
    os.environ.update(env)  # before the first C_Initialize of libsofthsm2 in this process
    softhsm_init_token(env, MAIN_TOKEN)
    softhsm_init_token(env, IMPORT_TOKEN)
    softhsm_init_token(env, CONTROL_TOKEN)
    _import_software_key(env, root / "imported.pem")
    profile = load_profile("softhsm2")
    return TokenEnv("softhsm", profile, MAIN_TOKEN, Pin(USER_PIN), profile.algorithms, env, root)


def free_port_pair() -> int:
    """A free loopback port whose successor is free too: the swtpm TCTI always finds the
    control channel at port + 1.

    Both lie outside the kernel's ephemeral range (tests/ports.py): the recovery tests
    restart swtpm on them under HTTP load."""
    usable = set(listening_ports())
    candidates = [port for port in usable if port + 1 in usable]
    for port in random.sample(candidates, 200):
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no free pair of loopback ports outside the ephemeral range")


class SoftwareTpm:
    """swtpm + tpm2-abrmd on loopback, restartable (recovery tests kill swtpm)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.state.mkdir()
        self.store = root / "store"
        self.store.mkdir()
        self.port = free_port_pair()
        self.ctrl_port = self.port + 1
        self.swtpm: subprocess.Popen[bytes] | None = None
        self.abrmd: subprocess.Popen[bytes] | None = None
        bus = subprocess.run(
            ["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        address, pid = bus.stdout.split()[:2]
        self.dbus_pid = int(pid)
        self.env = {
            "DBUS_SESSION_BUS_ADDRESS": address,
            "TPM2_PKCS11_STORE": str(self.store),
            "TPM2_PKCS11_TCTI": "tabrmd:bus_type=session",
            "TPM2TOOLS_TCTI": "tabrmd:bus_type=session",
            "TPM2_PKCS11_LOG_LEVEL": "0",
        }

    def start(self) -> None:
        """swtpm on the state directory, then abrmd on top. Should swtpm fail to listen
        (its stderr goes to ``swtpm.log`` beside the state), it is started again on another
        pair of ports: only abrmd knows the port, and abrmd is started afresh as well."""
        for attempt in range(3):
            if attempt:
                self.port = free_port_pair()
                self.ctrl_port = self.port + 1
            if self._start_swtpm():
                break
        else:
            log = (self.root / "swtpm.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"swtpm did not start listening; its log ends:\n{log}")
        abrmd = ["tpm2-abrmd", "--session", f"--tcti=swtpm:host=127.0.0.1,port={self.port}"]
        if os.geteuid() == 0:
            abrmd.append("--allow-root")
        self.abrmd = subprocess.Popen(
            abrmd, env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_for_abrmd()

    def _start_swtpm(self) -> bool:
        with (self.root / "swtpm.log").open("ab") as log:
            log.write(f"--- swtpm on ports {self.port}/{self.ctrl_port}\n".encode())
            log.flush()
            self.swtpm = subprocess.Popen(
                ["swtpm", "socket", "--tpm2",
                 "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                 "--ctrl", f"type=tcp,port={self.ctrl_port},bindaddr=127.0.0.1",
                 "--flags", "startup-clear", "--tpmstate", f"dir={self.state}"],
                stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.swtpm.poll() is not None:
                return False  # it exited: most likely a port it could not bind
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return True
            time.sleep(0.02)
        self.swtpm.kill()
        self.swtpm.wait(timeout=10)
        return False

    def kill_swtpm(self) -> None:
        """The device disappears: swtpm dies, and abrmd with it (it cannot reconnect)."""
        for process in (self.swtpm, self.abrmd):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)

    def stop(self) -> None:
        self.kill_swtpm()
        os.kill(self.dbus_pid, signal.SIGTERM)

    def _wait_for_abrmd(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["tpm2_getrandom", "4", "--hex"], env={**os.environ, **self.env},
                capture_output=True, check=False,
            )  # fmt: skip
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("tpm2-abrmd did not come up on the session bus")


@pytest.fixture(scope="session")
def software_tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftwareTpm]:
    reason = _have("swtpm", "tpm2-abrmd", "dbus-daemon", "tpm2_ptool", "tpm2_getrandom")
    if reason:
        pytest.skip(f"TPM stack not installed: {reason}")
    if not any(Path(p).exists() for p in load_profile("tpm2").module_paths):
        pytest.skip("tpm2-pkcs11 module not installed")
    if ctypes.util.find_library("tss2-tcti-tabrmd") is None:
        pytest.skip("the tabrmd TCTI is not installed (Debian: libtss2-tcti-tabrmd0)")
    tpm = SoftwareTpm(tmp_path_factory.mktemp("tpm"))
    try:
        tpm.start()
    except (RuntimeError, OSError) as exc:
        tpm.stop()
        pytest.skip(f"could not start swtpm + tpm2-abrmd: {exc}")
    os.environ.update(tpm.env)  # before the first C_Initialize of libtpm2_pkcs11
    init_token(load_profile("tpm2"), TPM_TOKEN, Pin(SO_PIN), Pin(USER_PIN))
    yield tpm
    if "tpm" in _pools:  # log out while the TPM is still there: quiet C_Finalize at exit
        _pools.pop("tpm").close()
    tpm.stop()


@pytest.fixture(scope="session")
def tpm(software_tpm: SoftwareTpm) -> TokenEnv:
    profile = load_profile("tpm2")
    return TokenEnv(
        "tpm", profile, TPM_TOKEN, Pin(USER_PIN), profile.algorithms, software_tpm.env,
        software_tpm.root,
    )  # fmt: skip


@pytest.fixture(
    params=[
        pytest.param("softhsm", marks=pytest.mark.hsm),
        pytest.param("tpm", marks=[pytest.mark.hsm, pytest.mark.tpm]),
    ]
)
def token(request: pytest.FixtureRequest) -> TokenEnv:
    """The same test against SoftHSM and against the TPM."""
    env: TokenEnv = request.getfixturevalue(request.param)
    return env


_pools: dict[str, TokenPool] = {}


def shared_pool(env: TokenEnv) -> TokenPool:
    """One pool per token for the whole run: login is per process and token."""
    if env.kind not in _pools:
        _pools[env.kind] = TokenPool(env.profile, env.label, env.pin)
    return _pools[env.kind]
