"""Human-readable descriptions for ``ptyprep validate``, ``ptyprep sources`` and ``ptyprep formats``."""

import inspect
import re
import textwrap

from .engine.formats import format_names, get_format, recipe_formats
from .sources.registry import get_source, source_names, source_options


def describe_plan(recipe):
    """Check ``recipe`` fully (source opened, geometry read) and describe what a run would do."""
    formats = recipe_formats(recipe)
    formats[0].check_input()
    for fmt in formats:
        fmt.check()
    return "\n".join(formats[0].describe(formats))


def describe_sources():
    """Every registered source with its options and defaults."""
    lines = []
    for name, cls in _loaded(source_names(), get_source, lines):
        doc = inspect.getdoc(cls) or ""
        helps = option_help(doc)
        for option, default in source_options(cls).items():
            shown = "required" if default is inspect.Parameter.empty else repr(default)
            head = f"    {option:<20} {shown:<22} "
            if len(head) > 48:
                lines.append(head.rstrip())
                head = " " * 48
            text = textwrap.wrap(helps.get(option, ""), 100 - 48) or [""]
            lines.append((head + text[0]).rstrip())
            lines += [" " * 48 + more for more in text[1:]]
    return "\n".join(lines)


def describe_formats():
    """Every registered format: what it writes, what it owns, whether ``watch`` can grow it."""
    from .engine.formats import Format

    lines = []
    for name, cls in _loaded(format_names(), get_format, lines):
        leads = cls.open is not Format.open
        follows = cls.follower is not Format.follower and not getattr(cls, "watch_instead", "")
        grows_beside = cls.companion is not Format.companion
        lines.append(f"    preparation   {cls.preparation or '(none)'}"
                     f"{'' if leads else ' (writes what another format prepares)'}")
        if cls.section:
            lines.append(f"    recipe table  [{cls.section}]")
        instead = getattr(cls, "watch_instead", "") or "ptyprep run only"
        watch = ("yes, beside a growing .ptyd (format = [\"ptyd\", \"" + name + "\"])"
                 if grows_beside else "yes" if follows else f"no ({instead})")
        lines.append(f"    watch         {watch}")
    lines.append("Name several with the same preparation in one recipe: "
                 "[output] format = [\"ptyd\", ...]; the first one leads.")
    return "\n".join(lines)


def _loaded(names, get, lines):
    """``(name, class)`` of every plugin that loads, after its heading line in ``lines``; a
    plugin that cannot be loaded gets a line saying why (reported, not fatal)."""
    for name in names:
        try:
            cls = get(name)
        except Exception as exc:  # noqa: BLE001  a broken plugin must not hide the others
            lines.append(f"{name}: cannot be loaded ({exc})")
            continue
        lines.append(f"{name}  ({cls.__module__}.{cls.__name__})")
        lines += textwrap.wrap(summary(cls), 96, initial_indent="    ",
                               subsequent_indent="    ")
        yield name, cls


def option_help(docstring):
    """``{option: its whole description, as plain text}`` from a numpydoc ``Parameters``
    section (``a, b : type`` lines give both names the description)."""
    helps, names, text, in_params = {}, [], [], False
    lines = docstring.splitlines()

    def flush():
        for n in names:
            helps.setdefault(n, plain_text(" ".join(text)))

    for i, line in enumerate(lines):
        stripped = line.strip()
        underlined = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if stripped == "Parameters" and underlined:
            in_params = True
            continue
        if not in_params or set(stripped) == {"-"}:
            continue
        if stripped and not line.startswith(" ") and underlined:
            break  # next section
        if stripped and not line.startswith(" "):
            flush()
            names, text = [n.strip() for n in stripped.split(":")[0].split(",")], []
        elif stripped:
            text.append(stripped)
    flush()
    return helps


def plain_text(text):
    """``text`` without reStructuredText markup: double-backquoted literals and roles such as
    ``:class:`~a.B``` (shown as ``B``) become their plain words."""
    text = re.sub(r":\w+:`~[^`]*?([^.`]+)`", r"\1", text)
    text = re.sub(r":\w+:`([^`]*)`", r"\1", text)
    text = re.sub(r"``([^`]*)``", r"\1", text)
    return re.sub(r"`([^`]*)`", r"\1", text)


def summary(cls):
    """The first paragraph of ``cls``'s docstring, as plain text on one line."""
    doc = inspect.getdoc(cls) or ""
    return plain_text(" ".join(doc.split("\n\n")[0].split()))
