"""``python -m turbomqtt <command>``: command-line entry points.

- ``broker``: run the embedded MQTT broker until Ctrl-C.
- ``run SCRIPT [ARGS...]``: run a Python script with the paho switch on, so its
  ``import paho.mqtt.client`` gets turbomqtt's client.
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from turbomqtt._conf import ConfigFile


def _setup_logging(verbose: int, config: ConfigFile | None) -> None:
    """``-v`` / ``-vv`` win; otherwise the file's ``log_type`` / ``log_dest``, if any."""
    if verbose:
        level = logging.DEBUG if verbose >= 2 else logging.INFO
    elif config is not None and config.log_level is not None:
        level = config.log_level
    else:
        level = logging.WARNING
    handlers: list[logging.Handler] = []
    for dest in config.log_dest if config is not None else []:
        if dest == "stdout":
            handlers.append(logging.StreamHandler(sys.stdout))
        elif dest == "stderr":
            handlers.append(logging.StreamHandler(sys.stderr))
        elif dest == "none":
            handlers.append(logging.NullHandler())
        else:
            handlers.append(logging.FileHandler(dest[1]))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers or None,
    )


def _run_broker(args: argparse.Namespace) -> int:
    from turbomqtt._conf import ConfigError, read_config
    from turbomqtt.broker import Broker

    def fail(message: str) -> int:
        print(f"turbomqtt broker: {message}", file=sys.stderr)
        return 1

    config = None
    if args.config:
        try:
            config = read_config(args.config)
        except ConfigError as e:
            return fail(str(e))
        for warning in config.warnings:
            print(f"turbomqtt broker: warning: {warning}", file=sys.stderr)
    _setup_logging(args.verbose, config)
    options: dict[str, Any] = dict(config.options) if config is not None else {}
    if options.get("listeners") and (args.host is not None or args.port is not None):
        return fail(
            f"{args.config} defines listeners: give --host/--port or listeners in the file, "
            "not both"
        )
    # The command line wins over the file's default listener.
    if args.host is not None:
        options["host"] = args.host
    if args.port is not None:
        options["port"] = args.port
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        where = f"{args.config}: " if args.config else ""
        try:
            broker = Broker(**options)
            broker.start()
        except OSError as e:
            return fail(str(e))
        except (ValueError, TypeError, NotImplementedError) as e:
            return fail(f"{where}{e}")
        try:
            print(f"turbomqtt broker listening on {_listener_urls(broker)}", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            url = broker.url
            broker.stop()
            print(f"turbomqtt broker on {url} stopped", flush=True)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


def _listener_urls(broker: Any) -> str:
    """Every bound listener as a URL, comma-separated, in configuration order."""
    urls = []
    for listener in broker.listeners:
        scheme = {("tcp", False): "mqtt", ("tcp", True): "mqtts"}.get(
            (listener["transport"], listener["tls"]), "wss" if listener["tls"] else "ws"
        )
        host = listener["host"]
        urls.append(f"{scheme}://{f'[{host}]' if ':' in host else host}:{listener['port']}")
    return ", ".join(urls)


def _run_script(args: argparse.Namespace) -> int:
    from turbomqtt._paho_switch import install_as_paho

    install_as_paho()
    script = args.script
    sys.argv = [script, *args.args]
    # As `python SCRIPT` does: the script's folder comes first on the import path.
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    return 0


# Shown by --help; plain text, as a terminal displays it.
_DESCRIPTION = "turbomqtt's command line: an MQTT broker, and paho-mqtt programs run on turbomqtt."
_EPILOG = """\
examples:
  python -m turbomqtt broker --port 1883 -v
  python -m turbomqtt run my_paho_script.py --its-own-arguments

'run' turns the paho switch on, so that the script's 'import paho.mqtt.client' gets
turbomqtt's client.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m turbomqtt",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="command")
    commands.required = True

    broker = commands.add_parser(
        "broker",
        help="run the embedded MQTT broker",
        description="Run turbomqtt's MQTT 3.1/3.1.1/5.0 broker until Ctrl-C.",
    )
    broker.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    broker.add_argument(
        "-p", "--port", type=int, default=None, help="listen port (default 1883; 0 picks one)"
    )
    broker.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=None,
        help="configuration file: *.toml is TOML, any other name is read as mosquitto.conf",
    )
    broker.add_argument(
        "-v", "--verbose", action="count", default=0, help="log connections (-vv: debug)"
    )
    broker.set_defaults(func=_run_broker)

    run = commands.add_parser(
        "run", help="run a script with paho.mqtt imports served by turbomqtt"
    )
    run.add_argument("script", help="path of the Python script")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments given to the script")
    run.set_defaults(func=_run_script)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
