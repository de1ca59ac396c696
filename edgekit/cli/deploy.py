"""`edgekit deploy`: put a compress run's bundle on boards and bring their figures back."""

from __future__ import annotations

import argparse
import sys

from edgekit.cli.ssh import add_ssh_arguments, ssh_options
from edgekit.core.errors import InvalidInputError


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "deploy", help="copy a run's bundle to a board, build, verify, benchmark, report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Copy RUN_DIR/bundle to a board over SSH, build the TensorRT engine there "
        "(Jetson targets),\nverify the deployed file against reference.npz in the board's "
        "runtime, benchmark it\n(with power where the board has sensors) and add the board's "
        "figures to RUN_DIR/report.md.\nThe board needs python3 with numpy and its runtime; "
        "edgekit comes in the bundle.\nExit 0 when every board verified the file, 1 otherwise.",
        epilog="examples:\n"
        "  edgekit deploy runs/compress-jetson-orin-nano --remote nvidia@orin.local\n"
        "  edgekit deploy runs/compress-raspberry-pi-5 --inventory boards.toml\n"
        "  edgekit deploy RUN_DIR --results copied-json/ --host-name my-pi   # by hand")
    d.add_argument("run_dir", help="output folder of `edgekit compress`")
    d.add_argument("--runs", type=int, default=200, help="timed runs per file (default 200)")
    d.add_argument("--power", default="auto", help="power sampler on the board (default auto)")
    d.add_argument("--threads", type=int, help="runtime threads on the board")
    d.add_argument("--remote-dir", help="where the bundle goes on the board (default "
                   "edgekit-bundles/<run name> in the remote home)")
    d.add_argument("--results", metavar="FOLDER", help="merge verify/bench JSON made on the "
                   "board by hand (DEVICE.md) instead of connecting")
    d.add_argument("--host-name", help="with --results: the board's name in the report")
    add_ssh_arguments(d)
    d.set_defaults(func=run_deploy)


def run_deploy(args: argparse.Namespace) -> int:
    from edgekit.pipeline import deploy

    given = [bool(args.remote), bool(args.inventory), bool(args.results)]
    if sum(given) != 1:
        raise InvalidInputError("give one of --remote, --inventory or --results")
    if args.results and not args.host_name:
        raise InvalidInputError("--results needs --host-name (the board's name in the report)")
    run = deploy.Run.open(args.run_dir)
    settings = deploy.DeploySettings(runs=args.runs, power=args.power, threads=args.threads,
                                     remote_dir=args.remote_dir)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.results:
        records = {args.host_name: deploy.import_results(run, args.results, args.host_name)}
    elif args.remote:
        from edgekit.bench.remote import SSHTarget

        target = SSHTarget.parse(args.remote)
        records = {target.destination: deploy.deploy(run, target, ssh_options(args), settings,
                                                     log=log)}
    else:
        from edgekit.bench.remote import load_inventory

        hosts = load_inventory(args.inventory, ssh_options(args))
        records = deploy.deploy_fleet(run, hosts, settings, log=log)
    report = deploy.merge(run, records)
    for name, record in records.items():
        print(f"{name}: {deploy.summary(record)}")
    print(f"report: {report}")
    return 0 if all(deploy.passed(r) for r in records.values()) else 1
