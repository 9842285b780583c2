"""The `ppipe` command line: the stages of `ppipe.stages` and the CONTRACT's commands.

Every `--json` output is one JSON document on stdout; logs go to stderr. Bad input exits with status 2 and
one line that names the input and what was expected.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from typing import Any, TextIO

# Where a `--json` command writes its document: the real stdout, set aside by `main` (ppipe.console.json_stdout)
# so that nothing else printed while the command runs can land beside the document.
_document: TextIO | None = None


def _emit(obj: Any, as_json: bool, summary_lines=None) -> None:
    """`obj` as one JSON document with `as_json`; otherwise for a person: `summary_lines(obj)` where the command
    has a summary, else the rows or the indented document."""
    if as_json:
        out = _document or sys.stdout
        json.dump(obj, out, default=str)
        out.write("\n")
    elif summary_lines is not None:
        print("\n".join(summary_lines(obj)))
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
    from ppipe.train.summary import summary_lines

    # --resume RUN: that run; --resume alone (""): the newest run of this config
    resume = True if args.resume == "" else args.resume
    try:
        _emit(stages.train(_config(args), data=args.data, resume=resume), args.json, summary_lines)
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
    from ppipe.tune.summary import summary_lines

    cfg = _config(args)
    _emit(run_tune(cfg, load_search_space(args.search, cfg), data=args.data, resume=args.resume), args.json,
          summary_lines)


def cmd_stage(name):
    def run(args):
        from ppipe import stages

        _emit(getattr(stages, name)(_config(args)), args.json)
    return run


def _given_weights(args, cfg) -> str | None:
    """The weights the command line names: --weights, or -o Global.pretrained_model=FILE (how PaddleClas's
    tools/eval.py and export_model.py take them). A recipe's own Global.pretrained_model is where fine-tuning
    started, not what the run trained, so only the command line's counts."""
    given = any(o.startswith("Global.pretrained_model=") for o in args.override or ())
    return args.weights or (cfg.Global.pretrained_model if given else None)


def cmd_evaluate(args):
    from ppipe import stages
    from ppipe.evaluation.summary import summary_lines

    cfg = _config(args)
    _emit(stages.evaluate(cfg, weights=_given_weights(args, cfg), model_ref=args.model, out=args.out), args.json,
          summary_lines)


def cmd_export(args):
    from ppipe import stages
    from ppipe.export.summary import summary_lines

    cfg = _config(args)
    _emit(stages.export(cfg, targets=args.targets, weights=_given_weights(args, cfg), out=args.out), args.json,
          summary_lines)


def _store(args):
    from ppipe.artifacts import ArtifactStore

    return ArtifactStore(args.store)


def cmd_artifacts_list(args):
    rows = _store(args).list()
    if args.json:
        _emit(rows, True)
    else:
        for r in rows:
            top1 = r.get("metrics", {}).get("top1")
            print(f"{r['name']}:{r['version']}  aliases={','.join(r['aliases'])}  top1={top1}  {r['uri']}")


def cmd_artifacts_show(args):
    from ppipe.artifacts.console import format_show

    shown = _store(args).show(args.ref)
    if args.json:
        _emit(shown, True)
    else:
        print(format_show(shown))


def cmd_artifacts_pull(args):
    _emit(_store(args).pull(args.ref, args.dest, overwrite=args.overwrite), args.json)


def cmd_artifacts_promote(args):
    doc = _store(args).promote(args.ref, args.alias, args.require or ())
    if args.json:
        _emit(doc, True)
    else:
        last = doc["history"][-1]
        print(f"{args.alias} -> {doc['version']} (was {last['from'] or 'unset'}; by {last['by']} at {last['at']})")


def cmd_artifacts_diff(args):
    from ppipe.artifacts.console import format_diff

    d = _store(args).diff(args.a, args.b)
    if args.json:
        _emit(d, True)
    else:
        print(format_diff(d))


def cmd_artifacts_gc(args):
    report = _store(args).gc(grace_s=args.grace_hours * 3600.0, dry_run=args.dry_run)
    if args.json:
        _emit(report, True)
        return
    verb = "would remove" if args.dry_run else "removed"
    for kind in ("incomplete", "unreferenced"):
        for url in report[kind]:
            print(f"{verb} {kind}: {url}")
    for url in report["kept_recent"]:
        print(f"kept (younger than {args.grace_hours:g} h, may be a publish in progress): {url}")


def _add_artifacts_parser(sub) -> None:
    arts = sub.add_parser("artifacts", help="the artifact store").add_subparsers(dest="what", required=True)

    def command(name, func, helptext):
        sp = arts.add_parser(name, help=helptext)
        sp.add_argument("--store", default=None, help="store URL (default: $PPIPE_STORE, else ./artifacts)")
        sp.add_argument("--json", action="store_true", help="print one JSON document")
        sp.set_defaults(func=func)
        return sp

    command("list", cmd_artifacts_list, "published artifacts")
    command("show", cmd_artifacts_show, "one version: files, metrics, targets, lineage, alias history").add_argument(
        "ref", help="NAME, NAME:VERSION or NAME@ALIAS")
    ap = command("pull", cmd_artifacts_pull, "download an artifact and verify every checksum")
    ap.add_argument("ref", help="NAME, NAME:VERSION or NAME@ALIAS")
    ap.add_argument("dest")
    ap.add_argument("--overwrite", action="store_true", help="replace a non-empty DEST")
    pr = command("promote", cmd_artifacts_promote, "point an alias at a version, optionally behind metric gates")
    pr.add_argument("ref", help="NAME, NAME:VERSION or NAME@ALIAS")
    pr.add_argument("alias")
    pr.add_argument("--require", action="append", metavar="METRIC>=X",
                    help="a gate on the version's metrics: METRIC>=X or METRIC<=X (repeatable; all must pass)")
    df = command("diff", cmd_artifacts_diff, "what differs between two versions")
    df.add_argument("a", metavar="REF")
    df.add_argument("b", metavar="REF")
    gc = command("gc", cmd_artifacts_gc, "remove what crashed publishes left (never a published version)")
    gc.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    gc.add_argument("--grace-hours", type=float, default=24.0,
                    help="keep unfinished versions younger than this: they may be publishes in progress")


def cmd_predict(args):
    from ppipe.predict import predict_images

    results = predict_images(args.model, args.images, topk=args.topk, store=args.store)
    if args.json:
        _emit(results, True)
    else:
        for r in results:
            if "error" in r:
                print(f"{r['image']}: ERROR {r['error']}")
                continue
            best = ", ".join(f"{t['label']} ({t['class_id']}) {t['score']:.4f}" for t in r["topk"])
            print(f"{r['image']}: {best}")
    if any("error" in r for r in results):
        sys.exit(1)


def _add_predict_parser(sub) -> None:
    pr = sub.add_parser("predict", help="top-k labels of images from a published model or an export folder")
    pr.add_argument("model", metavar="REF_OR_DIR",
                    help="NAME, NAME:vN or NAME@ALIAS in the store, or a pulled artifact / run / export folder")
    pr.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    pr.add_argument("--topk", type=int, default=5)
    pr.add_argument("--store", default=None, help="store URL (default: $PPIPE_STORE, else ./artifacts)")
    pr.add_argument("--json", action="store_true",
                    help='print [{"image", "topk": [{"class_id", "label", "score"}]}] (or "error")')
    pr.set_defaults(func=cmd_predict)


def cmd_deploy_tensorrt(args):
    from ppipe.export.tensorrt_engine import deploy_tensorrt

    result = deploy_tensorrt(args.path, precision=args.precision, int8_mode=args.int8)
    if args.json:
        _emit(result, True)
    elif result["status"] == "built":
        print(f"built {result['engine']} ({result['precision']}): max_rel_err {result['check']['max_rel_err']:.2e}")
    else:
        print(f"ppipe: deploy tensorrt {result['status']}: {result['reason']}", file=sys.stderr)
    # skipped (no TensorRT/GPU here) is not success: a script must not take the engine as built
    sys.exit({"built": 0, "failed": 1}.get(result["status"], 3))


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


def _with_config(sp, optional=False):
    sp.add_argument("config", nargs="?" if optional else None, help="PaddleClas-style YAML recipe")
    sp.add_argument("-o", "--override", action="append", metavar="Key.sub=value",
                    help="override a config value (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ppipe", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="every log line: debug level, and Ray's, Paddle's and gloo's own")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_models_parser, _add_data_parser, _add_training_parsers, _add_stage_parsers,
                _add_artifacts_parser, _add_predict_parser, _add_deploy_parser):
        add(sub)
    pl = sub.add_parser("pipeline", help="the whole chain as a Prefect flow (no CONFIG: the quickstart)")
    _with_config(pl, optional=True)
    pl.set_defaults(func=cmd_pipeline)
    return p


def _add_models_parser(sub) -> None:
    models = sub.add_parser("models", help="the model zoo").add_subparsers(dest="what", required=True)
    ml = models.add_parser("list", help="list architectures")
    ml.add_argument("pattern", nargs="?", default="*")
    ml.add_argument("--json", action="store_true")
    ml.set_defaults(func=cmd_models_list)


def _add_data_parser(sub) -> None:
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


def _add_training_parsers(sub) -> None:
    tr = sub.add_parser("train", help="distributed training on Ray")
    _with_config(tr)
    tr.add_argument("--data", help="a prepared dataset (the OUT of `ppipe data prepare`)")
    tr.add_argument("--resume", nargs="?", const="", default=None, metavar="RUN",
                    help="continue a run from its latest checkpoint (no RUN: the run of this config started last)")
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(func=cmd_train)

    tu = sub.add_parser("tune", help="hyperparameter search with Ray Tune (each trial a training run)")
    _with_config(tu)
    tu.add_argument("search", help="search file: `Section.key: loguniform(a, b)` lines and optional Tune: settings")
    tu.add_argument("--data", help="a prepared dataset (the OUT of `ppipe data prepare`)")
    tu.add_argument("--resume", action="store_true", help="continue the experiment after its driver stopped")
    tu.add_argument("--json", action="store_true")
    tu.set_defaults(func=cmd_tune)


def _add_stage_parsers(sub) -> None:
    for name, helptext in (("prepare", "prepare the config's Data.source into Data.prepared"),
                           ("evaluate", "the trained run (or weights) on the val split, over the Ray workers"),
                           ("export", "the deployment targets of the trained run, each checked and measured"),
                           ("publish", "publish the run to the artifact store")):
        sp = sub.add_parser(name, help=helptext)
        _with_config(sp)
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=cmd_stage(name))
        if name == "evaluate":
            sp.add_argument("--weights", default=None, metavar="FILE.pdparams",
                            help="evaluate these weights (as -o Global.pretrained_model=FILE) instead of the run's")
            sp.add_argument("--model", default=None, metavar="NAME@ALIAS",
                            help="evaluate a published artifact's weights (NAME, NAME:vN or NAME@ALIAS in "
                                 "Publish.store)")
            sp.add_argument("--out", default=None, metavar="DIR",
                            help="write eval.json and eval/ here (default: the run folder for the run's own "
                                 "model; nowhere for other weights)")
            sp.set_defaults(func=cmd_evaluate)
        if name == "export":
            sp.add_argument("--targets", default=None, metavar="T1,T2",
                            help="export targets to build (default: Export.targets, else all)")
            sp.add_argument("--weights", default=None, metavar="FILE.pdparams",
                            help="export these weights (as -o Global.pretrained_model=FILE) instead of the run's")
            sp.add_argument("--out", default=None, metavar="DIR",
                            help="where other weights' export goes (default: Global.save_inference_dir); the "
                                 "run's own export goes to its run folder")
            sp.set_defaults(func=cmd_export)


def _add_deploy_parser(sub) -> None:
    deploy = sub.add_parser("deploy", help="build a deployment from an export").add_subparsers(dest="what",
                                                                                          required=True)
    dt = deploy.add_parser("tensorrt", help="build, serialise and check a TensorRT engine (needs TensorRT + GPU)")
    dt.add_argument("path", metavar="ARTIFACT_OR_DIR",
                    help="a pulled artifact or run folder, an export folder, or its tensorrt/")
    dt.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                    help="default: build_spec.json's precision")
    dt.add_argument("--int8", choices=("explicit", "implicit"), default=None,
                    help="INT8 from the export's Q/DQ model (explicit, the default where the export has one) or "
                         "TensorRT 10's own calibration of the FP32 model (implicit)")
    dt.add_argument("--json", action="store_true")
    dt.set_defaults(func=cmd_deploy_tensorrt)


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions reported in one line (exit 2) rather than as a traceback: the input was wrong."""
    from ppipe.errors import UserError

    errors: list[type[BaseException]] = [UserError, FileNotFoundError, KeyError, ValueError]
    for module, name in (("ppipe.data", "DatasetError"), ("ppipe.artifacts", "ArtifactError"),
                         ("ppipe.export", "ExportError"), ("ppipe.inference", "InferenceError")):
        try:
            errors.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> None:
    global _document
    from ppipe import console

    args = build_parser().parse_args(argv)
    console.configure(args.verbose)
    as_json = getattr(args, "json", False)
    with console.json_stdout() if as_json else contextlib.nullcontext() as document:
        _document = document
        try:
            args.func(args)
        except _user_errors() as e:
            print(f"ppipe: error: {e}", file=sys.stderr)
            sys.exit(2)
        finally:
            _document = None


if __name__ == "__main__":
    main()
