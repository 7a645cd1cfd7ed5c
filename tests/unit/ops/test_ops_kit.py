"""The ops kit is real: its files load with the node's own loaders and name real metrics.

- every metric in the alert rules and the Grafana dashboard is registered by
  ``observability/metrics.py``, and every label a selector filters on is one of its labels;
- the alert rules cover what issue 7 asks for (HSM errors, stalled height, guard refusal,
  lost peers, audit anchor overdue), each with a severity and a summary;
- the example consortium's node.toml files load with ``load_config``, its members file with
  ``load_members``, and each node's peer address is its own entry in the members file;
- the systemd units pass ``systemd-analyze verify`` (when systemd is installed) and carry
  the hardening the node needs; ``promtool`` checks the Prometheus files when installed
  (the Debian package is ~100 MB, so the set-up does not install it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trusted_ledger.node.config import load_config
from trusted_ledger.node.members import load_members
from trusted_ledger.node.operations import exposed_binds
from trusted_ledger.observability.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[3]
OPS = ROOT / "ops"
ALERTS = OPS / "prometheus" / "alerts.yml"
SCRAPE = OPS / "prometheus" / "prometheus.yml"
DASHBOARD = OPS / "grafana" / "trusted-ledger.json"
EXAMPLE = OPS / "examples" / "consortium-4-banks"
BANKS = ("bank-a", "bank-b", "bank-c", "bank-d")
TARGET_LABELS = {"instance", "job"}
"""Labels Prometheus adds to every scraped series."""

_SELECTOR = re.compile(r"\b(tl_[a-z0-9_]+)(?:\{([^}]*)\})?")
_MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")


def _collectors() -> dict[str, Any]:
    """Every sample name the registry exposes (``_total``, ``_bucket``, ...) -> collector."""
    return dict(REGISTRY._names_to_collectors)


def _expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert rule and dashboard target."""
    found = [
        (f"alerts.yml line {number}", line.split("expr:", 1)[1])
        for number, line in enumerate(ALERTS.read_text().splitlines(), 1)
        if line.strip().startswith("expr:")
    ]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        found.extend((f"panel {panel['title']!r}", t["expr"]) for t in panel["targets"])
    found.extend(
        (f"variable {v['name']}", v["definition"])
        for v in dashboard["templating"]["list"]
        if "definition" in v
    )
    return found


def test_every_metric_and_label_in_the_kit_exists() -> None:
    collectors = _collectors()
    expressions = _expressions()
    assert len(expressions) > 25
    used = set()
    for where, expression in expressions:
        selectors = _SELECTOR.findall(expression)
        # Prometheus's own ``up`` is the one other series the kit may use.
        assert selectors or expression.strip().startswith("up{"), f"{where}: {expression}"
        for name, matchers in selectors:
            assert name in collectors, f"{where}: {name} is not in observability/metrics.py"
            used.add(name)
            labels = set(collectors[name]._labelnames) | TARGET_LABELS
            if name.endswith("_bucket"):
                labels.add("le")
            for label in _MATCHER.findall(matchers):
                assert label in labels, f"{where}: {name} has no label {label!r}"
    # Metric names in descriptions (what to look at next) must exist too.
    for name in re.findall(r"\btl_[a-z0-9_]+", ALERTS.read_text()):
        assert name in collectors, f"alerts.yml mentions {name}, which does not exist"
    for wanted in (
        "tl_chain_head_height",
        "tl_consensus_round_changes_total",
        "tl_chain_commit_seconds_bucket",
        "tl_chain_pool_batches",
        "tl_chain_committed_transactions_total",
        "tl_consortium_peers_connected",
        "tl_custody_sign_seconds_bucket",
        "tl_custody_module_errors_total",
        "tl_custody_recoveries_total",
        "tl_custody_guard_refusals_total",
        "tl_processor_registered",
    ):
        assert wanted in used, f"the kit never shows {wanted}"


def _alert_rules() -> dict[str, str]:
    """Alert name -> the text of its rule (the rule file's list items)."""
    text = ALERTS.read_text()
    assert "\t" not in text, "YAML must not be indented with tabs"
    parts = re.split(r"^      - alert: ", text, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def test_alert_rules_cover_the_issue() -> None:
    rules = _alert_rules()
    assert len(rules) == len(set(rules)) >= 5
    for name, rule in rules.items():
        assert re.search(r"^        expr: \S", rule, re.MULTILINE), name
        assert re.search(r"^          severity: (critical|warning)$", rule, re.MULTILINE), name
        assert re.search(r"^          summary: \".+\"$", rule, re.MULTILINE), name
    covered = {
        "HSM errors": "tl_custody_module_errors_total",
        "stalled height": "changes(tl_chain_head_height",
        "guard refusal": "tl_custody_guard_refusals_total",
        "guard behind its key's signatures": "tl_custody_guard_raised_total",
        "lost peers": "tl_consortium_peers_connected",
        "audit anchor overdue": "tl_audit_anchor_age_seconds",
    }
    exprs = [line for rule in rules.values() for line in rule.splitlines() if "expr:" in line]
    for what, needle in covered.items():
        assert any(needle in line for line in exprs), f"no alert for {what}"
    assert "- alerts.yml" in SCRAPE.read_text()


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) >= 1


def _install_example(bank: str, into: Path) -> Path:
    """``bank``'s files laid out as /etc/trusted-ledger/main/ (TLS files as placeholders:
    the loader checks they exist; their contents are read only when the node starts)."""
    into.mkdir(parents=True)
    shutil.copy(EXAMPLE / bank / "node.toml", into / "node.toml")
    shutil.copy(EXAMPLE / "members.toml", into / "members.toml")
    (into / "tls").mkdir()
    for name in ("api.crt", "api.key", "clients-ca.crt"):
        (into / "tls" / name).write_text("placeholder\n")
    return into / "node.toml"


@pytest.mark.parametrize("bank", BANKS)
def test_example_configurations_load(bank: str, tmp_path: Path) -> None:
    config = load_config(_install_example(bank, tmp_path / bank))
    assert config.consensus.mode == "bft"
    assert config.node.chain_id == "interbank-settlement-1"
    assert config.data_dir == Path("/var/lib/trusted-ledger/main")
    members = load_members(config.resolve(config.consensus.members_file))
    assert [m.name for m in members] == list(BANKS)
    [mine] = [m for m in members if m.name == bank]
    assert config.network.bind == mine.address
    assert config.api.tls_cert_file and config.api.write_clients
    # Peers and clients are reached on the bank's network; processors stay on loopback.
    assert [key for key, _ in exposed_binds(config)] == ["api.bind", "network.bind"]


def test_the_four_banks_differ_only_where_they_must() -> None:
    texts = {bank: (EXAMPLE / bank / "node.toml").read_text() for bank in BANKS}
    profiles = {re.search(r'^profile = "(.+)"$', t, re.MULTILINE)[1] for t in texts.values()}  # type: ignore[index]
    assert len(profiles) == 4
    for profile in profiles:
        assert (ROOT / "hsm_profiles" / f"{profile}.toml").is_file(), profile


def _unit_copy(unit: str, into: Path) -> Path:
    """The unit with the install path of the executable replaced by this checkout's."""
    executable = Path(sys.executable).parent / "trusted-ledger"
    text = (OPS / "systemd" / unit).read_text()
    copied = into / unit
    copied.write_text(text.replace("/opt/trusted-ledger/venv/bin/trusted-ledger", str(executable)))
    return copied


def test_node_unit_is_hardened() -> None:
    text = (OPS / "systemd" / "trusted-ledger-node@.service").read_text()
    for directive in (
        "User=trusted-ledger",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/trusted-ledger/%i",
        "PrivateTmp=yes",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "CapabilityBoundingSet=\n",
    ):
        assert f"\n{directive}" in text, directive
    # The data directory of the examples is the one the unit may write (instance "main").
    assert "ExecStart=/opt/trusted-ledger/venv/bin/trusted-ledger node run --config " in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd not installed")
@pytest.mark.parametrize(
    ("unit", "instance"),
    [
        ("trusted-ledger-node@.service", "trusted-ledger-node@main.service"),
        ("trusted-ledger-processor@.service", "trusted-ledger-processor@provenance.service"),
        ("trusted-ledger-backup@.service", "trusted-ledger-backup@main.service"),
        ("trusted-ledger-backup@.timer", "trusted-ledger-backup@main.timer"),
    ],
)
def test_units_verify(unit: str, instance: str, tmp_path: Path) -> None:
    for other in (OPS / "systemd").iterdir():  # units that refer to each other
        _unit_copy(other.name, tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / instance)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"},
    )
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr and "Invalid" not in done.stderr, done.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_prometheus_files(tmp_path: Path) -> None:
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    shutil.copy(SCRAPE, tmp_path / "prometheus.yml")
    (tmp_path / "api-ca.crt").write_text("")
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        done = subprocess.run(
            ["promtool", *args], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
