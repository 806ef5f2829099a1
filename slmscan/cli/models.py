"""`slmscan models ...`: list, pull, add, path, verify and remove models."""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer

from .. import config
from . import fail, run

if TYPE_CHECKING:
    from ..models import Manifest

app = typer.Typer(
    help="Manage the models slmscan can use.", no_args_is_help=True, rich_markup_mode=None
)

Offline = Annotated[
    bool,
    typer.Option("--offline", help="Use no network at all (same as SLMSCAN_OFFLINE=1)."),
]


def _go_offline(offline: bool) -> None:
    # Before anything imports huggingface_hub, which reads these settings only once.
    if offline:
        os.environ["SLMSCAN_OFFLINE"] = "1"
    if config.is_offline():
        config.go_offline()
    config.quiet_hub()


def _size(manifest: Manifest) -> str:
    """The exact size when pinned, else the approximate one marked with ~."""
    value, prefix = (manifest.size, "") if manifest.size else (manifest.approx_size, "~")
    if not value:
        return "?"
    if value >= 1e9:
        return f"{prefix}{value / 1e9:.1f} GB"
    return f"{prefix}{value / 1e6:.0f} MB"


@app.command("list")
def list_models() -> None:
    """Show every known model: size, licence, source, and whether it is installed here."""
    from ..download import is_installed
    from ..models import HubSource, PackageSource, list_manifests

    _go_offline(False)
    rows = [("ID", "SIZE", "LICENCE", "SOURCE", "INSTALLED")]
    for manifest in run(list_manifests):
        source = manifest.source
        if isinstance(source, HubSource):
            where = f"hub {source.repo}"
        elif isinstance(source, PackageSource):
            where = f"bundled ({source.package})"
        else:
            where = f"file {source.path}"
        installed = "yes" if run(partial(is_installed, manifest)) else "no"
        rows.append((manifest.id, _size(manifest), manifest.licence, where, installed))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]))


@app.command()
def pull(
    model: Annotated[str, typer.Argument(help="Model id or alias (see `slmscan models list`).")],
    force: Annotated[
        bool, typer.Option("--force", help="Download (or assemble) again even if cached.")
    ] = False,
    update: Annotated[
        bool,
        typer.Option(
            "--update", help="Resolve the revision again and trust the file it points to now."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    offline: Offline = False,
) -> None:
    """Download a model (or assemble a bundled one) and verify its sha256."""
    from ..download import file_sha256, pull_model
    from ..models import find_manifest

    _go_offline(offline)
    manifest = run(lambda: find_manifest(model))
    path = run(lambda: pull_model(manifest, force=force, update=update, progress=not quiet))
    typer.echo(f"{manifest.id}: verified, sha256 {file_sha256(path)[:16]}…  {path}")


@app.command()
def add(
    repo: Annotated[str, typer.Argument(help="Hub repository, owner/name.")],
    filename: Annotated[str, typer.Argument(help="The .gguf file in that repository.")],
    revision: Annotated[str, typer.Option(help="Branch, tag or commit.")] = "main",
    model_id: Annotated[
        str | None,
        typer.Option(
            "--id", help="Id for the new model (default: from the file name).", show_default=False
        ),
    ] = None,
    family: Annotated[
        str | None,
        typer.Option(
            help="Prompt family: chatml, gemma, llama3, phi3 or completion "
            "(default: read from the file's vocabulary).",
            show_default=False,
        ),
    ] = None,
    no_pull: Annotated[
        bool, typer.Option("--no-pull", help="Write the manifest only, guessing from the name.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace a model with the same id.")] = (
        False
    ),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Add a GGUF file from the Hub as your own model (a manifest in $SLMSCAN_HOME/models)."""
    from ..download import add_hub_model
    from ..errors import UsageError

    _go_offline(False)
    families = ("chatml", "gemma", "llama3", "phi3", "completion")
    if family is not None and family not in families:
        raise fail(UsageError(f"unknown family {family!r}", hint=f"one of: {', '.join(families)}"))
    manifest, where = run(
        lambda: add_hub_model(
            repo,
            filename,
            revision=revision,
            model_id=model_id,
            family=family,  # type: ignore[arg-type]
            pull=not no_pull,
            overwrite=force,
            progress=not quiet,
        )
    )
    typer.echo(f"added {manifest.id} (family {manifest.family}): {where}")
    if no_pull:
        typer.echo(f"next: slmscan models pull {manifest.id}", err=True)


@app.command()
def path(
    model: Annotated[str, typer.Argument(help="Model id or alias.")],
    offline: Offline = False,
) -> None:
    """Print where a model's file is on this machine."""
    from ..download import model_path
    from ..models import find_manifest

    _go_offline(offline)
    manifest = run(lambda: find_manifest(model))
    typer.echo(str(run(lambda: model_path(manifest))))


@app.command()
def verify(
    model: Annotated[
        str | None, typer.Argument(help="Model id or alias (default: every installed model).")
    ] = None,
    offline: Offline = False,
) -> None:
    """Check installed models against their pinned or recorded sha256."""
    from ..download import installed_path, model_path, verify_model
    from ..errors import SlmscanError
    from ..models import find_manifest, list_manifests

    _go_offline(offline)
    if model is not None:
        manifest = run(lambda: find_manifest(model))
        target = run(lambda: model_path(manifest))
        sha = run(lambda: verify_model(manifest, target))
        typer.echo(f"ok  {manifest.id}  sha256 {sha[:16]}…  {target}")
        return
    failed = 0
    for known in run(list_manifests):
        try:
            # Only what is here: a bundled model not yet assembled is not assembled for this.
            found = installed_path(known, assemble=False)
            if found is None:
                continue
            digest = verify_model(known, found)
        except SlmscanError as e:
            failed += 1
            typer.echo(f"FAILED  {known.id}: {e.message}", err=True)
            if e.hint:
                typer.echo(f"Hint: {e.hint}", err=True)
            continue
        typer.echo(f"ok  {known.id}  sha256 {digest[:16]}…  {found}")
    if failed:
        raise typer.Exit(1)


@app.command("rm")
def remove(model: Annotated[str, typer.Argument(help="Model id or alias.")]) -> None:
    """Delete a downloaded model's file from the Hugging Face cache (bundled ones stay)."""
    from ..download import remove_model
    from ..models import find_manifest

    _go_offline(False)
    manifest = run(lambda: find_manifest(model))
    for removed in run(lambda: remove_model(manifest)):
        typer.echo(f"removed {removed}")
