"""Command line: ``python -m turbomqtt <command> ...``.

Commands:
  run SCRIPT [ARGS...]   run a Python script with the paho switch on, so its
                         ``import paho.mqtt.client`` gets turbomqtt's client.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys


def _run(args: argparse.Namespace) -> int:
    from turbomqtt._paho_switch import install_as_paho

    install_as_paho()
    script = args.script
    sys.argv = [script, *args.args]
    # As `python SCRIPT` does: the script's folder comes first on the import path.
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m turbomqtt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    run = commands.add_parser("run", help="run a script with paho.mqtt imports served by turbomqtt")
    run.add_argument("script", help="path of the Python script")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments given to the script")
    run.set_defaults(handler=_run)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
