"""Command line: ``serve`` the API, ``generate`` from a spec file, list ``models``, write the ``schema``.

Heavy imports (torch, diffusers, uvicorn) happen inside the commands, after the arguments are checked,
so a refused ``serve`` (public host, no token) or ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from pathlib import Path

from .loopback import is_loopback_name
from .version import PROTOCOL, __version__

log = logging.getLogger("scenecast")
# backend/models/memory.py's REQUESTABLE (importing it here would import torch through backend.models)
MEMORY_MODES = ("auto", "full", "fp8", "offload", "fp8-offload", "group-offload")

DEFAULT_PORT = 7437
TOKEN_ENV = "SCENECAST_TOKEN"
MODELS_FOLDERS_ENV = "SCENECAST_MODELS_FOLDERS"  # read by backend/models/folders.py
# backend/models/families.py's GGUF_FAMILIES (a test keeps the two equal; importing would import torch)
GGUF_FAMILIES = ("flux", "flux-schnell", "qwen")


class CliError(Exception):
    """A problem the user can fix; printed as ``error: message`` and ``fix: ...``, exit status 2."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message, self.fix = message, fix


def default_data_dir() -> Path:
    if os.environ.get("SCENECAST_DATA"):
        return Path(os.environ["SCENECAST_DATA"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "scenecast"


# -- commands -----------------------------------------------------------------------------------------
def serve_token(args: argparse.Namespace) -> str | None:
    """The token ``serve`` demands (flag, else environment), refused at start when it could never match."""
    from .logs import refuse_unusable_token

    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is not None:
        why = refuse_unusable_token(token)
        if why is not None:
            where = "--token" if args.token else TOKEN_ENV
            raise CliError(f"the token given by {where} could never be presented by a client: {why}",
                           "choose a token of printable ASCII letters, digits and -._~+/ (e.g. the output of"
                           " `python -c \"import secrets; print(secrets.token_urlsafe(24))\"`)")
    if not is_loopback_name(args.host) and not token:
        raise CliError(f"refusing to listen on {args.host} without a token: anyone who can reach it could use this machine",
                       f"start with --token <secret> (or set {TOKEN_ENV}), or listen on 127.0.0.1")
    return token


def serve_test_gates(args: argparse.Namespace) -> Path | None:
    """``--test-gates DIR`` (hidden; the test suite's step gates, backend/testing/gates.py): refused unless the
    environment has ``SCENECAST_TEST_GATES=1``, so that no production start can hold jobs at a gate."""
    if args.test_gates is None:
        return None
    from .testing.gates import GATE_ENV, allowed

    if not allowed():
        raise CliError("--test-gates is for Scenecast's own test suite: it lets a file hold any job at a step",
                       f"remove --test-gates (the test suite sets {GATE_ENV}=1 to use it)")
    return Path(args.test_gates)


def cmd_serve(args: argparse.Namespace) -> int:
    token = serve_token(args)
    gates_dir = serve_test_gates(args)
    from .logs import setup_logging

    setup_logging(args.log_level, Path(args.log_file) if args.log_file else None,
                  max_bytes=int(args.log_max_mb * (1 << 20)), backups=args.log_backups, secrets=[token or ""])
    from .ports import PortInUse, bind_listening_socket

    try:  # before torch is imported: a busy port is reported at once, and cannot be taken meanwhile
        sock = bind_listening_socket(args.host, args.port)
    except PortInUse as exc:
        raise CliError(str(exc), f"stop what holds port {exc.port}, or start with --port <another port>"
                       " (--port 0 picks a free one; the add-on picks a free port for a backend it starts)")
    port = sock.getsockname()[1]
    import uvicorn

    from .api import ServerState, create_app
    from .api.routes_leases import attach_leases
    from .jobs.leases import LeaseTable
    from .serving import ListeningServer, stop_when_idle
    from .jobs.images import ImageStore
    from .jobs.queue import JobQueue
    from .jobs.retention import Retention, restore_jobs
    from .models import ModelManager
    from .pipelines import run_job

    set_threads(args.threads)
    from .models.folders import models_folders

    data = Path(args.data or default_data_dir())
    out = Path(args.out) if args.out else data / "outputs"
    models = ModelManager(device=args.device, dtype=args.dtype, memory_budget_gb=args.memory_budget_gb,
                          memory_mode=args.memory_mode, gguf_companions=dict(args.gguf_companion or []))
    device = models.describe()
    runner = run_job
    if gates_dir is not None:
        from .testing.gates import FileGates, gated

        log.warning("test gates on (%s): a job marked [test-gate:ID@N] waits at step N; for tests only", gates_dir)
        runner = gated(run_job, FileGates(gates_dir))
    queue = JobQueue(runner, models, out, keep_finished=args.keep_jobs)
    retention = Retention(out, data / "images", keep_jobs=args.keep_jobs,
                          max_age_s=args.keep_days * 86400 if args.keep_days else None,
                          max_bytes=int(args.max_output_gb * 1e9) if args.max_output_gb else None,
                          upload_ttl_s=args.upload_ttl_hours * 3600 if args.upload_ttl_hours else None)
    retention.sweep_debris()
    retention.enforce(keep=args.keep_jobs)
    queue.restore(restore_jobs(out))
    queue.on_forget = retention.forget
    state = ServerState(queue=queue, store=ImageStore(data / "images"), models=models, device=device, token=token,
                        retention=retention)
    import torch

    log.info("scenecast backend %s, protocol %d: device %s, dtype %s, %d CPU threads, pid %d", __version__, PROTOCOL,
             device["device"], device["dtype"], torch.get_num_threads(), os.getpid())
    if models_folders():
        log.info("models folders: %s", ", ".join(map(str, models_folders())))
    # log_config=None: uvicorn's loggers propagate to the root handlers set up above, which redact tokens.
    config = uvicorn.Config(create_app(state), host=args.host, port=port, log_level=args.log_level,
                            log_config=None, access_log=args.log_level == "debug", ws="websockets-sansio")
    listening = f"listening on http://{args.host}:{port}{' (token required)' if token else ''}; results in {out}"
    server = ListeningServer(config, listening)
    leases = LeaseTable(busy=lambda: queue.running() is not None or queue.queued() > 0)
    attach_leases(config.app, leases, server.stop_because, args.idle_exit)
    if args.idle_exit is not None:
        threading.Thread(target=stop_when_idle, args=(server, leases, args.idle_exit), daemon=True,
                         name="scenecast-idle-exit").start()
    server.run(sockets=[sock])
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .cli_generate import generate_local, load_spec_file

    spec_path = Path(args.spec)
    data, image_paths = load_spec_file(spec_path, args.model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = spec_path.stem
    if args.server:
        from .cli_remote import generate_remote

        written = generate_remote(args.server, data, image_paths, out, stem,
                                  token=args.token or os.environ.get(TOKEN_ENV))
    else:
        set_threads(args.threads)
        written = generate_local(data, image_paths, out, stem, device=args.device, dtype=args.dtype,
                                 memory_mode=args.memory_mode, gguf_companions=dict(args.gguf_companion or []))
    for path in written:
        print(path)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    if args.server:
        from .cli_remote import Client

        models = Client(args.server, args.token or os.environ.get(TOKEN_ENV)).get_json("/v1/models")["models"]
    else:
        from .models import ModelManager

        models = ModelManager(device=args.device, dtype=args.dtype,
                              gguf_companions=dict(args.gguf_companion or [])).list_models()
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    for m in models:
        mark = "installed" if m.get("installed") else "not installed"
        if m.get("runnable") is False:
            mark += f" (not usable: {m.get('reason') or 'a family Scenecast does not run'})"
        family = str(m.get("family", "?")) + (f" GGUF {m.get('quantization')}" if m.get("format") == "gguf" else "")
        print(f"{m.get('id')}\t{m.get('kind', '?')}\t{family}\t{m.get('source', '?')}\t{mark}")
    if any(not m.get("installed") and m.get("source") == "hub" for m in models):
        print("\nfetch a hub model with `hf download <id>` (or let the backend fetch it on first use, online)")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .cli_schema import write_schema_docs

    for path in write_schema_docs(Path(args.docs)):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scenecast-backend", description="Scenecast backend: Stable Diffusion + "
                                     f"ControlNet server for the Blender add-on (version {__version__}, protocol {PROTOCOL}).")
    parser.add_argument("--version", action="version", version=f"scenecast-backend {__version__} (protocol {PROTOCOL})")
    sub = parser.add_subparsers(dest="command", required=True)

    def device_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", help="cuda, cuda:1, mps or cpu (default: the best available, said in the log)")
        p.add_argument("--dtype", help="float16, bfloat16 or float32 for every family (default: per device and "
                       "family: bfloat16 for FLUX/Z-Image/Qwen-Image where the GPU has it)")
        p.add_argument("--memory-mode", default="auto", choices=list(MEMORY_MODES),
                       help="how models are held: auto (by free GPU memory), full, fp8, offload, fp8-offload, "
                       "group-offload (docs/models.md, 'Memory modes')")
        p.add_argument("--models-folder", action="append", metavar="DIR",
                       help="a ComfyUI or A1111/Forge folder (or any folder of .safetensors / .gguf) whose models are "
                       f"usable by file name; repeatable; goes before ${MODELS_FOLDERS_ENV} (see docs/models.md)")
        p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice); on a shared"
                       " CPU fewer threads than cores avoids oversubscription")
        p.add_argument("--gguf-companion", action="append", metavar="FAMILY=MODEL", type=gguf_companion,
                       help="where a GGUF transformer of FAMILY (flux, flux-schnell, qwen) gets its VAE, text encoders"
                       " and scheduler: a diffusers folder, hub id or builtin (default: the family's reference"
                       " repo, e.g. black-forest-labs/FLUX.1-dev); repeatable (docs/models.md, 'GGUF transformers')")

    serve = sub.add_parser("serve", help="run the HTTP + WebSocket server")
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1; any other host needs a token")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0 picks a free port"
                       " (the log's \"listening on\" line names it)")
    serve.add_argument("--token", help=f"require `Authorization: Bearer TOKEN` (or set {TOKEN_ENV})")
    device_args(serve)
    serve.add_argument("--out", help="where results are written (default: DATA/outputs)")
    serve.add_argument("--data", help="server data: uploaded images, outputs (default: $SCENECAST_DATA or "
                       "$XDG_CACHE_HOME/scenecast)")
    serve.add_argument("--memory-budget-gb", type=float, help="evict cached pipelines beyond this")
    serve.add_argument("--keep-jobs", type=int, default=200, help="finished jobs kept, queryable and on disk;"
                       " older ones' result files are deleted (default 200)")
    serve.add_argument("--keep-days", type=float, default=30.0, help="delete results older than this (default 30;"
                       " 0: no age limit)")
    serve.add_argument("--max-output-gb", type=float, default=0.0, help="delete the oldest results beyond this"
                       " size of the output folder (default 0: no size limit)")
    serve.add_argument("--upload-ttl-hours", type=float, default=24.0, help="uploaded images (POST /v1/images)"
                       " expire this long after their last upload (default 24; 0: never)")
    serve.add_argument("--idle-exit", type=float, metavar="SECONDS",
                       help="stop after this long with no client lease (POST /v1/leases) and no job; default: "
                       "run until stopped. The add-on starts its backend with one")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-file", help="also log to this file, rotated (tokens are redacted in every log)")
    serve.add_argument("--log-max-mb", type=float, default=10.0, help="rotate the log file at this size (default 10)")
    serve.add_argument("--test-gates", help=argparse.SUPPRESS)  # tests only: see serve_test_gates
    serve.add_argument("--log-backups", type=int, default=3, help="rotated log files kept (default 3)")
    serve.set_defaults(func=cmd_serve)

    gen = sub.add_parser("generate", help="run a spec file, in this process or on a server")
    gen.add_argument("spec", help="JSON spec file (see docs/spec.md, 'Spec files')")
    gen.add_argument("--out", required=True, help="directory for the PNGs and the JSON record")
    gen.add_argument("--server", help="URL of a running server, e.g. http://127.0.0.1:7437")
    gen.add_argument("--model", help="base model for every stage, overriding the spec (e.g. builtin:tiny)")
    gen.add_argument("--token", help=f"the server's token (or set {TOKEN_ENV})")
    device_args(gen)
    gen.set_defaults(func=cmd_generate)

    models = sub.add_parser("models", help="list known and installed models")
    models.add_argument("--server", help="ask a running server instead of this machine")
    models.add_argument("--token")
    models.add_argument("--json", action="store_true", help="print JSON")
    device_args(models)
    models.set_defaults(func=cmd_models)

    schema = sub.add_parser("schema", help="write docs/job-spec.schema.json and docs/spec.md from backend/spec.py")
    schema.add_argument("--docs", default=str(Path(__file__).resolve().parent.parent / "docs"))
    schema.set_defaults(func=cmd_schema)
    return parser


def gguf_companion(value: str) -> tuple[str, str]:
    """``FAMILY=MODEL`` of ``--gguf-companion``, checked before anything heavy is imported."""
    family, sep, model = value.partition("=")
    if not sep or family.strip() not in GGUF_FAMILIES or not model.strip():
        raise argparse.ArgumentTypeError(f"{value!r}: give FAMILY=MODEL, FAMILY one of {', '.join(GGUF_FAMILIES)}"
                                         " (e.g. flux=/models/FLUX.1-dev)")
    return family.strip(), model.strip()


def use_models_folders(folders: list[str] | None) -> None:
    """``--models-folder`` values go in front of ``$SCENECAST_MODELS_FOLDERS`` for this process (and the
    models layer reads them there). Checked here, before anything heavy is imported."""
    if not folders:
        return
    for folder in folders:
        if not Path(folder).expanduser().is_dir():
            raise CliError(f"--models-folder {folder}: no such folder",
                           "give a ComfyUI or A1111/Forge folder (or its models/ folder), or a folder of .safetensors")
    given = [str(Path(f).expanduser()) for f in folders]
    current = [p for p in os.environ.get(MODELS_FOLDERS_ENV, "").split(os.pathsep) if p and p not in given]
    os.environ[MODELS_FOLDERS_ENV] = os.pathsep.join(given + current)


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = getattr(args, "log_level", "info").upper()
    from .logs import setup_logging

    setup_logging(level)
    try:
        use_models_folders(getattr(args, "models_folder", None))
        return args.func(args)
    except CliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.fix:
            print(f"fix: {exc.fix}", file=sys.stderr)
        return 2
    except Exception as exc:
        from .models import ModelError

        if isinstance(exc, ModelError):
            print(f"error: {exc.message}", file=sys.stderr)
            if exc.fix:
                print(f"fix: {exc.fix}", file=sys.stderr)
            return 2
        raise


def main_exit() -> None:
    """The ``scenecast-backend`` console script (pyproject.toml)."""
    sys.exit(main())
