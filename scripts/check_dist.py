"""Checks a built wheel or sdist before it is published.

    python scripts/check_dist.py wheel dist/turbomqtt-*.whl [--platform manylinux_2_17_aarch64]
    python scripts/check_dist.py sdist dist/turbomqtt-*.tar.gz

A wheel must be the one abi3 wheel for CPython 3.9 and later (tags cp39-abi3-<platform>),
with `--platform` among its platform tags when given, the extension module built for that
platform's machine (ELF/Mach-O/PE header), the paho switch's .pth at the site-packages root,
and no runtime dependency (Requires-Dist only under extras: paho-mqtt is never pulled in).
An sdist must carry what `pip install` needs to build it (Cargo.toml and Cargo.lock, the
Rust and Python sources, pyproject.toml, README, licence files). Standard library only.
Exit status 1 with the failed checks listed.
"""

from __future__ import annotations

import argparse
import email.parser
import re
import struct
import sys
import tarfile
import zipfile
from pathlib import Path

# ELF e_machine values and Mach-O cpu types of the platforms wheels are built for.
ELF_MACHINES = {"x86_64": 62, "aarch64": 183, "armv7l": 40, "i686": 3}
MACHO_CPUS = {"x86_64": 0x01000007, "arm64": 0x0100000C}
PE_MACHINES = {"amd64": 0x8664, "arm64": 0xAA64, "win32": 0x14C}


def wheel_tags(name: str) -> tuple[str, str, list[str]]:
    """(python tag, abi tag, platform tags) of a wheel file name."""
    parts = name[: -len(".whl")].split("-")
    if len(parts) not in (5, 6):
        raise ValueError(f"not a wheel file name: {name}")
    return parts[-3], parts[-2], parts[-1].split(".")


def machine_of(platform_tag: str) -> str:
    for known in list(ELF_MACHINES) + list(MACHO_CPUS) + list(PE_MACHINES):
        if platform_tag.endswith(known):
            return known
    if platform_tag.startswith("macosx") and platform_tag.endswith("universal2"):
        return "universal2"
    raise ValueError(f"unknown machine in platform tag {platform_tag}")


def binary_machine(data: bytes) -> str:
    """The machine an extension module was built for, from its header."""
    if data[:4] == b"\x7fELF":
        (e_machine,) = struct.unpack_from("<H", data, 18)
        return next((k for k, v in ELF_MACHINES.items() if v == e_machine), f"elf:{e_machine}")
    if data[:4] in (b"\xcf\xfa\xed\xfe",):
        (cpu,) = struct.unpack_from("<I", data, 4)
        return next((k for k, v in MACHO_CPUS.items() if v == cpu), f"macho:{cpu:#x}")
    if data[:4] in (b"\xca\xfe\xba\xbe",):
        return "universal2"
    if data[:2] == b"MZ":
        (pe,) = struct.unpack_from("<I", data, 0x3C)
        (machine,) = struct.unpack_from("<H", data, pe + 4)
        return next((k for k, v in PE_MACHINES.items() if v == machine), f"pe:{machine:#x}")
    return "unknown"


def check_wheel(path: Path, platforms: list[str]) -> list[str]:
    errors = []
    py, abi, plats = wheel_tags(path.name)
    if (py, abi) != ("cp39", "abi3"):
        errors.append(f"tags {py}-{abi}: expected cp39-abi3 (one wheel for CPython 3.9+)")
    for p in platforms:
        if p not in plats:
            errors.append(f"platform tag {p} missing (has {'.'.join(plats)})")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        wheel = email.parser.HeaderParser().parsestr(z.read(f"{dist_info}/WHEEL").decode())
        expected = {f"{py}-{abi}-{p}" for p in plats}
        if set(wheel.get_all("Tag") or []) != expected:
            errors.append(f"WHEEL tags {wheel.get_all('Tag')} != file name's {sorted(expected)}")
        if wheel.get("Root-Is-Purelib", "").lower() != "false":
            errors.append("Root-Is-Purelib is not false for a wheel with a native module")
        meta = email.parser.HeaderParser().parsestr(z.read(f"{dist_info}/METADATA").decode())
        for req in meta.get_all("Requires-Dist") or []:
            if not re.search(r";.*\bextra\s*==", req):
                errors.append(f"runtime dependency {req!r}: turbomqtt must install alone")
        if meta.get("Requires-Python") != ">=3.9":
            errors.append(f"Requires-Python {meta.get('Requires-Python')!r}, expected '>=3.9'")
        modules = [n for n in names if re.match(r"turbomqtt/_core\.(.*\.)?(so|pyd)$", n)]
        if len(modules) != 1:
            errors.append(f"expected one extension module turbomqtt/_core.*, found {modules}")
        else:
            built = binary_machine(z.read(modules[0])[:4096])
            wanted = {machine_of(p) for p in plats}
            if built not in wanted and not ("universal2" in wanted and built == "universal2"):
                errors.append(f"{modules[0]} is built for {built}, tags say {sorted(wanted)}")
            elif modules[0].endswith(".so") and not modules[0].endswith(".abi3.so"):
                errors.append(f"{modules[0]}: not an abi3 module name")
        if not any(n.endswith(".data/purelib/turbomqtt_paho_switch.pth") for n in names):
            errors.append("the paho switch's turbomqtt_paho_switch.pth is missing")
    return errors


SDIST_FILES = [
    "Cargo.toml",
    "Cargo.lock",
    "pyproject.toml",
    "README.md",
    "LICENSE-MIT",
    "LICENSE-APACHE",
    "src/lib.rs",
    "src/bindings/mod.rs",
    "python/turbomqtt/__init__.py",
    "python/turbomqtt/py.typed",
    "python/turbomqtt.data/purelib/turbomqtt_paho_switch.pth",
    "PKG-INFO",
]


def check_sdist(path: Path) -> list[str]:
    errors = []
    with tarfile.open(path) as t:
        names = t.getnames()
    root = names[0].split("/")[0]
    present = {n[len(root) + 1:] for n in names if n.startswith(root + "/")}
    for f in SDIST_FILES:
        if f not in present:
            errors.append(f"{f} missing from the sdist")
    stray = sorted(n for n in present if n.startswith(("target/", ".venv/", "fuzz/target")))
    if stray:
        errors.append(f"build output in the sdist: {stray[:5]}")
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["wheel", "sdist"])
    ap.add_argument("path", type=Path)
    ap.add_argument("--platform", action="append", default=[],
                    help="a platform tag the wheel must carry (repeatable)")
    args = ap.parse_args()
    errors = check_wheel(args.path, args.platform) if args.kind == "wheel" \
        else check_sdist(args.path)
    for e in errors:
        print(f"{args.path.name}: {e}", file=sys.stderr)
    if not errors:
        print(f"{args.path.name}: ok")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
