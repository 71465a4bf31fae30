"""Recipes: a run's full configuration in one readable TOML file under `recipes/`.

    python train/gan.py --recipe recipes/dcgan-mnist.toml              # reproduce a bundled model
    python train/gan.py --recipe recipes/dcgan-mnist.toml --epochs 2   # a flag overrides one field

A recipe names the script it is for and groups its fields in tables (data, model, objective,
optimizer, budget, evaluation, ...) for the reader; the fields themselves are the script's
command-line options with dashes as underscores (`batch_size` is `--batch-size`), so a recipe
says nothing a command line could not. Unknown fields and fields of the wrong type are errors
that name the file and the field.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class RecipeError(ValueError):
    """A recipe file that cannot be read or does not fit the script."""


def read_recipe(path) -> dict:
    """The recipe at `path` as {"script": ..., "fields": {dest: value}, "path": ...}; tables are
    flattened (their names are only for the reader)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"no recipe file at {path}")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path} is not valid TOML: {error}") from error
    script = document.pop("script", None)
    description = document.pop("description", None)
    fields: dict = {}
    for key, value in document.items():
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for name, item in items:
            if name in fields:
                raise RecipeError(f"{path}: field {name!r} is given twice")
            fields[name] = item
    return {"script": script, "description": description, "fields": fields, "path": path}


def parse_with_recipe(parser: argparse.ArgumentParser, argv=None, *, script: str) -> argparse.Namespace:
    """Parse `argv`; with `--recipe FILE`, the recipe's fields become the defaults first, so that
    flags on the command line override single fields. The namespace records the recipe path."""
    argv = list(sys.argv[1:] if argv is None else argv)
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--recipe", default=None)
    known, _ = probe.parse_known_args(argv)
    script_defaults = {action.dest: action.default for action in parser._actions}
    if known.recipe is None:
        return _with_given(parser.parse_args(argv), script_defaults)
    try:
        recipe = read_recipe(known.recipe)
    except RecipeError as error:
        parser.error(str(error))
    if recipe["script"] not in (None, script):
        parser.error(f"{known.recipe} is a recipe for train/{recipe['script']}.py, not train/{script}.py")
    actions = {action.dest: action for action in parser._actions}
    defaults = {}
    for name, value in recipe["fields"].items():
        action = actions.get(name)
        if action is None or name in ("help", "recipe"):
            parser.error(f"{known.recipe}: unknown field {name!r} for train/{script}.py")
        defaults[name] = _checked(action, name, value, known.recipe, parser)
    parser.set_defaults(**defaults)
    return _with_given(parser.parse_args(argv), script_defaults)


def _with_given(args: argparse.Namespace, script_defaults: dict) -> argparse.Namespace:
    """Record in `args.given` the fields set by the recipe or on the command line (those that
    differ from the script's defaults): what a resumed run must not silently change."""
    args.given = sorted(key for key, value in vars(args).items() if key in script_defaults and value != script_defaults[key])
    return args


def _checked(action: argparse.Action, name: str, value, path, parser):
    """A recipe value of the type the flag takes (TOML already typed it; lists for nargs)."""

    def one(item):
        if action.type is not None and not isinstance(item, bool):
            try:
                item = action.type(item)
            except (TypeError, ValueError):
                parser.error(f"{path}: field {name!r} must be {getattr(action.type, '__name__', action.type)}, got {item!r}")
        if action.choices is not None and item not in action.choices:
            parser.error(f"{path}: field {name!r} must be one of {list(action.choices)}, got {item!r}")
        return item

    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            parser.error(f"{path}: field {name!r} must be true or false, got {value!r}")
        return value
    if action.nargs in ("+", "*"):
        if not isinstance(value, list):
            parser.error(f"{path}: field {name!r} must be a list, got {value!r}")
        return [one(item) for item in value]
    if isinstance(value, (list, dict)):
        parser.error(f"{path}: field {name!r} takes one value, got {value!r}")
    return one(value)


def add_recipe_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default=None, help="a recipe file (recipes/*.toml): its fields are the defaults, flags override them")
