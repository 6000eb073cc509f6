"""Human-readable descriptions for ``ptyprep validate`` and ``ptyprep sources``."""

import inspect

from .ptycho.plan import make_plan
from .sources.registry import get_source, source_names, source_options
from .service import open_source
from .ptycho.writer import check_output


def describe_plan(recipe):
    """Check ``recipe`` fully (source opened, geometry read) and describe what a run would do."""
    if recipe.output.format == "procdata":
        from .saxs.pipeline import describe_procdata

        return describe_procdata(recipe)
    dfile = recipe.path(recipe.output.dfile)
    check_output(dfile, recipe.output.overwrite)
    with open_source(recipe) as source:
        plan = make_plan(recipe, source)
    meta = plan.output_meta()
    center = ("automatic (centre of mass of the first chunk)" if plan.center is None
              else f"({plan.center[0]:.2f}, {plan.center[1]:.2f}) [{plan.center_mode}]")
    chunks = plan.chunks()
    lines = [
        f"recipe OK: source {recipe.source.name!r} ({type(source).__name__})",
        f"  frames        {plan.num_frames} of raw shape {plan.raw_shape}",
        f"  centre        {center} on the raw frame",
        f"  crop          {plan.shape} → orientation (transpose, flipud, fliplr) = {plan.orientation}"
        f" → rebin {plan.rebin} ({plan.rebin_mode})",
        f"  prepared      shape {meta['shape'].tolist()}, centre {meta['center'].tolist()}, "
        f"pixel {meta['psize'].tolist()} m",
        f"  geometry      {plan.energy_keV:g} keV, distance {plan.distance_m:g} m",
        f"  valid pixels  {plan.valid.mean() * 100:.2f}% of the raw frame (static mask)",
        f"  output        {dfile} ({recipe.output.save}, {recipe.output.compression}), "
        f"{len(chunks)} chunk(s) of ≤ {recipe.output.chunk_frames} frames",
    ]
    return "\n".join(lines)


def describe_sources():
    """Every registered source with its options and defaults."""
    lines = []
    for name in source_names():
        try:
            cls = get_source(name)
        except Exception as exc:  # a broken plugin is reported, not fatal
            lines.append(f"{name}: cannot be loaded ({exc})")
            continue
        doc = inspect.getdoc(cls) or ""
        lines.append(f"{name}  ({cls.__module__}.{cls.__name__}) {doc.split(chr(10))[0]}")
        helps = option_help(doc)
        for option, default in source_options(cls).items():
            shown = "required" if default is inspect.Parameter.empty else repr(default)
            lines.append(f"    {option:<20} {shown:<22} {helps.get(option, '')}".rstrip())
    return "\n".join(lines)


def option_help(docstring):
    """``{option: first line of its description}`` from a numpydoc ``Parameters`` section."""
    helps, names, in_params = {}, [], False
    lines = docstring.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped == "Parameters" and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
            in_params = True
            continue
        if not in_params or set(stripped) == {"-"}:
            continue
        if stripped and not line.startswith(" ") and i + 1 < len(lines) and set(
                lines[i + 1].strip()) == {"-"}:
            break  # next section
        if stripped and not line.startswith(" "):
            names = [n.strip() for n in stripped.split(":")[0].split(",")]
        elif stripped and names:
            for n in names:
                helps.setdefault(n, stripped)
            names = []
    return helps
