"""The `ppipe` command line: the stages of `ppipe.stages` and the CONTRACT's commands.

Every `--json` output is one JSON document on stdout; logs go to stderr. Bad input exits with status 2 and
one line that names the input and what was expected.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from typing import Any


def _emit(obj: Any, as_json: bool) -> None:
    if as_json:
        json.dump(obj, sys.stdout, default=str)
        sys.stdout.write("\n")
    elif isinstance(obj, list):
        for row in obj:
            print("  ".join(str(v) for v in row.values()) if isinstance(row, dict) else row)
    else:
        print(json.dumps(obj, indent=1, default=str))


def _config(args):
    from ppipe.config import load_config

    return load_config(args.config, args.override or ())


def cmd_models_list(args):
    from ppipe.models import models_table

    rows = models_table(args.pattern)
    if args.json:
        _emit(rows, True)
    else:
        for r in rows:
            print(f"{r['name']:<48} {r['family']:<20} {r['params_m']:>8.2f}M  {r['input_size']}")


def cmd_data_demo(args):
    from ppipe.data import write_digits_demo

    _emit(write_digits_demo(args.out, image_size=args.image_size), args.json)


def cmd_data_prepare(args):
    from ppipe.data import prepare_dataset

    _emit(prepare_dataset(args.source, args.out, shard_size=args.shard_size, num_workers=args.workers,
                          executor="ray" if args.ray else "processes"), args.json)


def cmd_train(args):
    from ppipe import stages
    from ppipe.train.interrupt import RunInterrupted

    # --resume RUN: that run; --resume alone (""): the newest run of this config
    resume = True if args.resume == "" else args.resume
    try:
        _emit(stages.train(_config(args), data=args.data, resume=resume), args.json)
    except RunInterrupted as stop:
        print(f"ppipe: {_interrupted_run(stop, args)}", file=sys.stderr)
        sys.exit(stop.exit_code)


def _interrupted_run(stop, args) -> str:
    """One line: which run a signal stopped, what it keeps, and the command that continues it."""
    import shlex

    command = ["ppipe", "train", args.config] + (["--data", args.data] if args.data else [])
    command += [part for o in args.override or () for part in ("-o", o)]
    again = shlex.join(command + ["--resume", stop.run_name])
    if stop.checkpoint is None:
        return (f"{stop.signal_name}: stopped run {stop.run_name} before its first checkpoint; start it again "
                f"with: {shlex.join(command)}")
    epoch = f"epoch {stop.checkpoint.epoch}, " if stop.checkpoint.epoch is not None else ""
    return (f"{stop.signal_name}: stopped run {stop.run_name}; its last checkpoint ({epoch}{stop.checkpoint.path}) "
            f"is kept. Continue it with: {again}")


def cmd_tune(args):
    from ppipe.tune import load_search_space, run_tune

    cfg = _config(args)
    _emit(run_tune(cfg, load_search_space(args.search, cfg), data=args.data, resume=args.resume), args.json)


def cmd_stage(name):
    def run(args):
        from ppipe import stages

        _emit(getattr(stages, name)(_config(args)), args.json)
    return run


def cmd_export(args):
    from ppipe import stages

    _emit(stages.export(_config(args), targets=args.targets), args.json)


def cmd_artifacts_list(args):
    from ppipe.artifacts import ArtifactStore

    rows = ArtifactStore(args.store).list()
    if args.json:
        _emit(rows, True)
    else:
        for r in rows:
            top1 = r.get("metrics", {}).get("top1")
            print(f"{r['name']}:{r['version']}  aliases={','.join(r['aliases'])}  top1={top1}  {r['uri']}")


def cmd_artifacts_pull(args):
    from ppipe.artifacts import ArtifactStore

    _emit(ArtifactStore(args.store).pull(args.ref, args.dest), args.json)


def cmd_pipeline(args):
    # The flow lives in flows/ (Prefect); ppipe itself never imports Prefect, so it runs as its own process.
    cmd = [sys.executable, "-m", "flows.pipeline"]
    if args.config:
        cmd.append(args.config)
    for o in args.override or ():
        cmd += ["-o", o]
    env = dict(os.environ)
    # Prefect's ephemeral API starts with the flow (migrating its database on first use); its default 20 s
    # is too short on a busy 2-core machine.
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    sys.exit(subprocess.call(cmd, env=env))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ppipe", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp, optional=False):
        sp.add_argument("config", nargs="?" if optional else None, help="PaddleClas-style YAML recipe")
        sp.add_argument("-o", "--override", action="append", metavar="Key.sub=value",
                        help="override a config value (repeatable)")

    models = sub.add_parser("models", help="the model zoo").add_subparsers(dest="what", required=True)
    ml = models.add_parser("list", help="list architectures")
    ml.add_argument("pattern", nargs="?", default="*")
    ml.add_argument("--json", action="store_true")
    ml.set_defaults(func=cmd_models_list)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="what", required=True)
    dd = data.add_parser("demo", help="write the embedded digits dataset as an ImageNet-layout folder")
    dd.add_argument("out")
    dd.add_argument("--image-size", type=int, default=32)
    dd.add_argument("--json", action="store_true")
    dd.set_defaults(func=cmd_data_demo)
    dp = data.add_parser("prepare", help="ImageNet-layout folder -> Parquet shards + manifest")
    dp.add_argument("source")
    dp.add_argument("out")
    dp.add_argument("--shard-size", type=int, default=1024, help="images per shard")
    dp.add_argument("--workers", type=int, default=None, help="decode processes (default: all cores)")
    dp.add_argument("--ray", action="store_true",
                    help="decode as Ray tasks (RAY_ADDRESS or a local instance); the source must be readable "
                         "from every node")
    dp.add_argument("--json", action="store_true")
    dp.set_defaults(func=cmd_data_prepare)

    tr = sub.add_parser("train", help="distributed training on Ray")
    with_config(tr)
    tr.add_argument("--data", help="a prepared dataset (the OUT of `ppipe data prepare`)")
    tr.add_argument("--resume", nargs="?", const="", default=None, metavar="RUN",
                    help="continue a run from its latest checkpoint (no RUN: the run of this config started last)")
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(func=cmd_train)

    tu = sub.add_parser("tune", help="hyperparameter search with Ray Tune (each trial a training run)")
    with_config(tu)
    tu.add_argument("search", help="search file: `Section.key: loguniform(a, b)` lines and optional Tune: settings")
    tu.add_argument("--data", help="a prepared dataset (the OUT of `ppipe data prepare`)")
    tu.add_argument("--resume", action="store_true", help="continue the experiment after its driver stopped")
    tu.add_argument("--json", action="store_true")
    tu.set_defaults(func=cmd_tune)

    for name, helptext in (("prepare", "prepare the config's Data.source into Data.prepared"),
                           ("evaluate", "top-1/top-5 of the trained run on the val split"),
                           ("export", "the deployment targets of the trained run, each checked and measured"),
                           ("publish", "publish the run to the artifact store")):
        sp = sub.add_parser(name, help=helptext)
        with_config(sp)
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=cmd_stage(name))
        if name == "export":
            sp.add_argument("--targets", default=None, metavar="T1,T2",
                            help="export targets to build (default: Export.targets, else all)")
            sp.set_defaults(func=cmd_export)

    arts = sub.add_parser("artifacts", help="the artifact store").add_subparsers(dest="what", required=True)
    al = arts.add_parser("list", help="published artifacts")
    al.add_argument("--store", default=None, help="store URL (default: $PPIPE_STORE, else ./artifacts)")
    al.add_argument("--json", action="store_true")
    al.set_defaults(func=cmd_artifacts_list)
    ap = arts.add_parser("pull", help="download an artifact and verify every checksum")
    ap.add_argument("ref", help="NAME, NAME:VERSION or NAME@ALIAS")
    ap.add_argument("dest")
    ap.add_argument("--store", default=None)
    ap.add_argument("--json", action="store_true")
    ap.set_defaults(func=cmd_artifacts_pull)

    pl = sub.add_parser("pipeline", help="the whole chain as a Prefect flow (no CONFIG: the quickstart)")
    with_config(pl, optional=True)
    pl.set_defaults(func=cmd_pipeline)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions reported in one line (exit 2) rather than as a traceback: the input was wrong."""
    from ppipe.errors import UserError

    errors: list[type[BaseException]] = [UserError, FileNotFoundError, KeyError, ValueError]
    for module, name in (("ppipe.data", "DatasetError"), ("ppipe.artifacts", "ArtifactError"),
                         ("ppipe.export", "ExportError")):
        try:
            errors.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        args.func(args)
    except _user_errors() as e:
        print(f"ppipe: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
