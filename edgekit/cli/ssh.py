"""The SSH flags shared by `edgekit bench --remote` and `edgekit deploy` (torch-free)."""

from __future__ import annotations

import argparse
from typing import Any


def add_ssh_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("remote (SSH; host keys are always checked)")
    group.add_argument("--remote", metavar="USER@HOST[:PORT]", help="run on this host")
    group.add_argument("--inventory", metavar="HOSTS.toml", help="run on every [[host]]")
    group.add_argument("--known-hosts", help="known_hosts file to check host keys against")
    group.add_argument("--identity", help="SSH private key")
    group.add_argument("--remote-python", default="python3",
                       help="python command on the remote side (default python3)")
    group.add_argument("--connect-timeout", type=float, default=10.0)
    group.add_argument("--run-timeout", type=float, default=900.0)
    group.add_argument("--ssh-config", help="ssh -F file (e.g. /dev/null)")


def ssh_options(args: argparse.Namespace) -> Any:
    from edgekit.bench.remote import SSHOptions

    return SSHOptions(known_hosts=args.known_hosts, identity=args.identity,
                      remote_python=args.remote_python, connect_timeout_s=args.connect_timeout,
                      run_timeout_s=args.run_timeout, ssh_config=args.ssh_config)
