"""``vidbatch pick``: record which take of a shot is chosen, or rejected, in the manifest's picks
file (one call to :func:`vidbatch.picks.decide`)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import shown, var_option


@click.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("shot")
@click.argument("take", type=click.IntRange(1), required=False)
@click.option("--reject", is_flag=True, help="Reject TAKE (drop it from review) instead of picking it.")
@click.option("--clear", is_flag=True, help="Forget what was decided about TAKE, or about the whole SHOT without TAKE.")
@click.option("--sim", is_flag=True, help="Pick among the takes of --sim runs (their videos are in <output_dir>-sim).")
@var_option
def pick(manifest: Path, shot: str, take: int | None, reject: bool, clear: bool, sim: bool, variables: dict[str, str]) -> None:
    """Pick TAKE of SHOT as the chosen one (or reject it, or clear the decision).

    A shot with `takes = N` renders N takes; which one is used (by chained shots, cuts and the
    report) is a person's choice, kept in a plain file beside the manifest that you can commit:
    shots.toml -> shots.picks.toml, one table per shot:

    \b
      ["shot-03"]
      pick = 2
      video = "sha256:9f2c..."
      reject = [1, 3]

    A pick is of the video the take holds now (its sha256 is kept as `video`). If the take
    renders again later (its prompt edited, or --force), the pick no longer holds: chained
    shots and cuts that use the shot are blocked, and say so, until you look at the new render
    and pick again. A take with no video yet is picked for whatever it renders.

    Picking a rejected take un-rejects it; rejecting the picked take un-picks it. A shot with
    one take needs no pick. The manifest and the take's video are only read; nothing is sent
    and the state is not touched. `vidbatch review` sets the same file from buttons in the report.

    \b
    Examples:
      vidbatch pick shots.toml shot-03 2              # take 2 is the one
      vidbatch pick shots.toml shot-03 1 --reject     # drop take 1 from review
      vidbatch pick shots.toml shot-03 1 --clear      # forget what was decided about take 1
      vidbatch pick shots.toml shot-03 --clear        # forget every decision about shot-03
      vidbatch pick --sim shots.toml shot-03 2        # among the takes of --sim runs
    """
    from ..errors import UsageError
    from ..picks import Decision, decide
    from ..project import load

    if reject and clear:
        raise UsageError("--reject and --clear cannot be used together")
    decision = Decision.CLEAR if clear else Decision.REJECT if reject else Decision.PICK
    loaded = load([manifest], variables=variables, sim=sim).manifests[0]  # with --sim, the simulated outputs
    picks = decide(manifest, loaded.jobs, shot, take, decision)
    chosen = picks.chosen(shot)
    done = {Decision.PICK: "picked", Decision.REJECT: "rejected", Decision.CLEAR: "cleared"}[decision]
    what = f"take {take} {done}" if take is not None else f"every decision {done}"
    rejected = ", ".join(map(str, sorted(picks.rejected(shot))))
    state = f"chosen take {chosen}" if chosen is not None else "no take chosen yet"
    click.echo(f"{shot}: {what}; {state}" + (f"; rejected {rejected}" if rejected else "") + f" ({shown(picks.path)})")
    if decision is Decision.PICK and picks.shots[shot].video is None:
        output = next(j.output for j in loaded.jobs if j.shot == shot and j.take == take)
        hint = "" if sim else "; for the takes of --sim runs, add --sim"
        click.echo(f"note: take {take} has no video at {shown(output)} yet, so the pick holds for whatever it renders{hint}", err=True)
