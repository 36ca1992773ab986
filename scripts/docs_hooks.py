"""MkDocs hooks of the documentation site (mkdocs.yml `hooks:`).

- The broker's option table is generated from the keyword parameters of ``Broker.__init__``
  and their ``:param:`` lines, as ``turbomqtt.broker.OPTIONS`` is (read from the source
  with ``ast``, so the site builds without compiling the package): a page marks the place
  with ``<!-- broker-options -->``. A new option appears on the site by itself.
- reST's ``::`` in docstrings is shown as reST shows it (API reference pages).
- ``benches/chart.png`` is published as ``assets/chart.png``, so the site and the README
  show the one chart the benchmarks write.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BROKER_SOURCE = ROOT / "python" / "turbomqtt" / "broker.py"
CHART = ROOT / "benches" / "chart.png"
OPTIONS_MARKER = "<!-- broker-options -->"


def broker_options(source: Path = BROKER_SOURCE) -> list[tuple[str, str, str]]:
    """(name, default as Python source, meaning) for every keyword option of ``Broker``:
    the parameters of ``Broker.__init__`` with their ``:param name:`` lines, as
    ``turbomqtt.broker.OPTIONS`` holds them."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    init = _broker_init(tree, source)
    args = init.args
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    pairs = list(zip(positional, defaults))[1:] + list(zip(args.kwonlyargs, args.kw_defaults))
    docs = _parameter_docs(ast.get_docstring(init) or "")
    constants = _module_constants(tree)
    rows = []
    for arg, default in pairs:
        if default is None:
            raise TypeError(f"Broker option {arg.arg} at line {arg.lineno} has no default")
        if arg.arg not in docs:
            raise TypeError(f"Broker option {arg.arg} has no ':param {arg.arg}:' line")
        rows.append((arg.arg, _default_text(default, constants), docs[arg.arg]))
    return rows


def _broker_init(tree: ast.Module, source: Path) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Broker":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return item
    raise RuntimeError(f"no Broker.__init__ in {source}")


def _parameter_docs(docstring: str) -> dict[str, str]:
    """``name -> text`` of every ``:param name: text`` line, continuation lines (indented
    deeper) joined with single spaces."""
    docs: dict[str, str] = {}
    name = None
    for line in docstring.splitlines():
        match = re.match(r":param (\w+):\s*(.*)", line)
        if match:
            name, docs[match[1]] = match[1], match[2].strip()
        elif name is not None and line[:1].isspace() and line.strip():
            docs[name] += " " + line.strip()
        else:
            name = None
    return docs


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level names bound to constant expressions (``_MIB = 1 << 20``)."""
    constants: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = _evaluate(node.value, constants)
            except Exception:  # noqa: BLE001, S112 - not a constant: not needed here
                continue
    return constants


def _evaluate(node: ast.expr, constants: dict[str, Any]) -> Any:
    """A default written as arithmetic on literals and module constants (``4 * _MIB``)."""
    code = compile(ast.Expression(node), "<Broker option>", "eval")
    return eval(code, {"__builtins__": {}}, dict(constants))


def _default_text(node: ast.expr, constants: dict[str, Any]) -> str:
    try:
        return repr(_evaluate(node, constants))
    except Exception:  # noqa: BLE001 - shown as written instead
        return ast.unparse(node)


def options_table() -> str:
    lines = ["| option | default | meaning |", "| --- | --- | --- |"]
    for name, default, meaning in broker_options():
        cell = meaning.replace("|", "\\|")
        lines.append(f"| `{name}` | `{default}` | {cell} |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if OPTIONS_MARKER in markdown:
        markdown = markdown.replace(OPTIONS_MARKER, options_table())
    return markdown


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, "assets/chart.png", abs_src_path=str(CHART)))
    return files


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Docstrings in the API reference use reST's ``::`` before an example block: drop a
    ``::`` paragraph of its own and turn a trailing one into a colon, as reST shows them."""
    if page.file.src_uri.startswith("reference/"):
        html = re.sub(r"<p>::</p>\s*", "", html)
        html = html.replace("::</p>", ":</p>")
    return html
