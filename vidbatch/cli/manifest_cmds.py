"""``vidbatch validate`` and ``vidbatch render``: manifests checked and shown, nothing sent.

Both are one library call (:func:`vidbatch.manifest.check_manifests` /
:func:`~vidbatch.manifest.load_manifests`) and a rendering of its result. Problems and warnings
go to stderr, one per line, ``file:line: job NAME: field FIELD: message``; identical ones repeated
by many jobs of a matrix are shown once with a count.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable

import click

from .options import JsonCommand, manifests_argument, var_option
from .options import shown as _rel


def echo_problems(problems: Iterable[Any], kind: str) -> None:
    from ..manifest import group_problems

    for problem, more in group_problems(problems):
        tail = f" (and {more} more job{'s' if more > 1 else ''})" if more else ""
        click.echo(f"{kind}: {problem}{tail}", err=True)


@click.command(cls=JsonCommand)
@manifests_argument
@var_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (problems included) on stdout.")
@click.option("--strict", is_flag=True, help="Treat warnings as errors: exit 2 when there is any.")
@click.option("-q", "--quiet", is_flag=True, help="Print only problems and warnings, no OK lines.")
def validate(manifests: tuple[Path, ...], variables: dict[str, str], as_json: bool, strict: bool, quiet: bool) -> None:
    """Check manifests: structure, templates, images and the API's rules.

    Nothing is sent and nothing is written. Every problem of every manifest is listed with its
    file, line, job and field; warnings (an unknown camera command, say) are listed too but do
    not fail the check unless --strict is given. Several manifests are checked together, so two
    jobs writing the same output are caught even across files.

    \b
    Examples:
      vidbatch validate shots.toml
      vidbatch validate examples/*.toml examples/*.json
      vidbatch validate --var season=winter --strict shots.toml
      vidbatch validate --json shots.toml | jq '.manifests[].problems'

    \b
    Exit codes: 0 valid (warnings may be shown); 2 invalid (or warnings with --strict).
    """
    from ..errors import EXIT_USAGE
    from ..manifest import check_manifests

    results = check_manifests(manifests, variables=variables)
    failed = any(r.problems or (strict and r.warnings) for r in results)
    if as_json:
        doc = {
            "ok": not failed,
            "manifests": [
                {
                    "path": str(r.path),
                    "ok": not r.problems and not (strict and r.warnings),
                    "jobs": len(r.manifest.jobs) if r.manifest else None,
                    "problems": [p.to_json() for p in r.problems],
                    "warnings": [p.to_json() for p in r.warnings],
                }
                for r in results
            ],
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        for r in results:
            echo_problems(r.warnings, "warning")
            echo_problems(r.problems, "error")
            warned = f" ({len(r.warnings)} warning{'s' if len(r.warnings) != 1 else ''})" if r.warnings else ""
            if r.manifest is not None and not r.problems:
                if not quiet:
                    jobs = len(r.manifest.jobs)
                    click.echo(f"{r.path}: {jobs} job{'s' if jobs != 1 else ''} OK{warned}")
            else:
                n = len(r.problems)
                click.echo(f"{r.path}: {n} problem{'s' if n != 1 else ''}{warned}; nothing was sent or written", err=True)
        if strict and not any(r.problems for r in results) and failed:
            click.echo("warnings are errors with --strict", err=True)
    if failed:
        sys.exit(EXIT_USAGE)


def _content_item(item: dict[str, Any]) -> str:
    """One item of a V2 body's ``content``: ``text``, or ``ROLE URL`` (a local medium by path
    or data URL and hash)."""
    if item.get("type") == "text":
        text = str(item.get("text", ""))
        return "text (the prompt, " + f"{len(text)} characters)"
    value = item.get(str(item.get("type")), {}).get("url")
    if isinstance(value, dict) and "sha256" in value:
        value = f"{value.get('path') or value.get('data_url')} (sha256:{value['sha256'][:12]})"
    return f"{item.get('role')}  {value}"


def _request_summary(request: dict[str, Any]) -> str:
    bits = []
    for name, value in request.items():
        if name == "prompt":
            continue
        if isinstance(value, dict) and "sha256" in value:
            shown = value.get("path") or value.get("data_url")
            bits.append(f"{name}={shown} (sha256:{value['sha256'][:12]})")
        elif name == "subject_reference" and isinstance(value, list):
            for subject in value:
                for image in subject.get("image", []):
                    if isinstance(image, dict):
                        shown = image.get("path") or image.get("data_url")
                        bits.append(f"{name}={shown} (sha256:{image['sha256'][:12]}, {subject.get('type')})")
                    else:
                        bits.append(f"{name}={image} ({subject.get('type')})")
        else:
            bits.append(f"{name}={json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value}")
    return " ".join(bits)


@click.command(cls=JsonCommand)
@manifests_argument
@var_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout (an invalid manifest: one JSON error with its problems).")
@click.option(
    "-j", "--job", "names", multiple=True, metavar="PATTERN", help="Only jobs whose name matches (glob). Repeatable."
)
def render(manifests: tuple[Path, ...], variables: dict[str, str], as_json: bool, names: tuple[str, ...]) -> None:
    """Show every job the manifests expand to, fully resolved. Nothing is sent.

    For each job: its name, mode, output path, final prompt, its key (the identity that decides
    whether it was already rendered) and the request that would be sent; a MiniMax-H3 job
    shows its Video Generation V2 body, defaults written out, one line per content item (text
    first, then frames, then references). Images, videos and audios are shown by path and
    SHA-256, never as base64. An invalid manifest prints its problems and exits 2.

    \b
    Examples:
      vidbatch render shots.toml
      vidbatch render --var style="golden hour" shots.toml
      vidbatch render --job 'fox-*' shots.toml
      vidbatch render --json shots.toml | jq '.manifests[].jobs[].request'
    """
    import fnmatch

    from ..errors import EXIT_USAGE, ManifestError
    from ..facts import V2_PATH_CREATE, Api
    from ..manifest import load_manifests

    try:
        loaded = load_manifests(manifests, variables=variables)
    except ManifestError as e:
        if as_json:
            raise  # JsonCommand prints it as one JSON object, problems included
        echo_problems(e.problems, "error")
        click.echo(f"{len(e.problems)} problem{'s' if len(e.problems) != 1 else ''}; nothing was sent or written", err=True)
        sys.exit(EXIT_USAGE)

    def wanted(name: str) -> bool:
        return not names or any(fnmatch.fnmatchcase(name, pattern) for pattern in names)

    if as_json:
        doc = {
            "manifests": [
                {
                    "path": _rel(m.path),
                    "output_dir": _rel(m.output_dir),
                    "jobs": [
                        {
                            "name": job.name,
                            "shot": job.shot,
                            "take": job.take,
                            "index": job.index,
                            "mode": job.mode.value,
                            "output": _rel(job.output),
                            "key": job.key,
                            "prompt": job.prompt,
                            "request": job.display_request(),
                            "body": job.display_body(),
                            "origin": job.origin or None,
                            "warnings": job.warnings,
                        }
                        for job in m.jobs
                        if wanted(job.name)
                    ],
                    "warnings": [p.to_json() for p in m.warnings],
                }
                for m in loaded
            ]
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    first = True
    for m in loaded:
        # warnings of a job are shown with it; the others (outputs differing only in case) here
        shown = {(job.name, w) for job in m.jobs for w in job.warnings}
        echo_problems([w for w in m.warnings if (w.job, w.message) not in shown], "warning")
        jobs = [job for job in m.jobs if wanted(job.name)]
        if not first:
            click.echo()
        first = False
        click.secho(f"{_rel(m.path)}: {len(jobs)} job{'s' if len(jobs) != 1 else ''} → {_rel(m.output_dir)}/", bold=True)
        for job in jobs:
            click.echo()
            click.secho(f"{job.name}", bold=True, nl=False)
            click.echo(f"  {job.mode.label}" + (f"  ({job.origin})" if job.origin else ""))
            click.echo(f"  output   {_rel(job.output)}")
            if job.prompt is not None:
                click.echo("  prompt   " + job.prompt.replace("\n", "\n           "))
            if job.api is Api.V2:
                body = job.display_body()
                click.echo(f"  request  POST {V2_PATH_CREATE} {_request_summary({k: v for k, v in body.items() if k != 'content'})}")
                for item in body["content"]:
                    click.echo(f"  content  {_content_item(item)}")
            else:
                click.echo(f"  request  {_request_summary(job.display_request())}")
            click.echo(f"  key      {job.key}")
            for warning in job.warnings:
                click.echo(f"  warning  {warning}")
