"""The node runtime: configuration (one TOML file), ``node init`` and ``node run``.

The top layer (DESIGN.md): it wires custody, chain, processing and the API into one
process and owns nothing but that wiring. Configuration format: docs/node.md. The runtime
(``node.runtime``: ``serve``, ``open_node``) is imported where it runs, not here, so that
creating a node does not load the API server.
"""

from trusted_ledger.node.bootstrap import ADMIN_KEY_NAME, InitOptions, InitResult, init_node
from trusted_ledger.node.config import CONFIG_FILE_NAME, NodeConfig, load_config, render_config

__all__ = [
    "ADMIN_KEY_NAME",
    "CONFIG_FILE_NAME",
    "InitOptions",
    "InitResult",
    "NodeConfig",
    "init_node",
    "load_config",
    "render_config",
]
