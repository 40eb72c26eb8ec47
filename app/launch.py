"""The app's launcher: ``ovsam-annotator --help`` (installed) or ``python launch.py --help``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults in the help, except ``None`` (those options say their default in words)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The launcher's options: the folder, where outputs go, the models (declared once in
    :mod:`annotator.options`) and the address to serve on."""
    from annotator.options import add_engine_arguments

    p = argparse.ArgumentParser(
        prog="ovsam-annotator",
        description="Click or box an object, get its mask and an open-vocabulary label, export COCO JSON.",
        formatter_class=_DefaultsShown,
    )
    p.add_argument("--images", help="folder of images to annotate (default: bundled sample photos from scikit-image)")
    p.add_argument("--out", default="exports", help="folder for the annotation store and exports")
    p.add_argument("--db", metavar="URL",
                   help="keep the annotations in this database instead of <out>/<folder>.annotations.db: "
                   "postgresql://USER:PASSWORD@HOST/DB (shared by a team) or sqlite:///FILE")  # fmt: skip
    add_engine_arguments(p)
    p.add_argument("--classes", metavar="FILE",
                   help="label only with these classes: a text file (one class a line, 'id:name' allowed) or a "
                   "COCO JSON's categories; also the vocabulary CLIP names masks from (instead of --vocab). "
                   "New classes take the file's ids; any other label is refused")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 for the network)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name the page is reached by besides localhost and --host (this machine's DNS name, "
                   "a proxy's); repeatable. Requests naming another Host are refused (DNS rebinding)")  # fmt: skip
    p.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                   help="ask for this user name and password (HTTP Basic; repeatable); each annotation records "
                   "its author. Serve behind TLS on a network")  # fmt: skip
    p.add_argument("--auth-file", action="append", default=[], metavar="FILE",
                   help="users as USER:PASSWORD lines (# comments), as --auth; keep it readable by you only")  # fmt: skip
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="serve on a non-loopback --host without --auth: anyone who reaches the port may "
                   "read and change every annotation")  # fmt: skip
    return p.parse_args(argv)


def class_list(path: str | Path) -> dict[str, int]:
    """The classes of ``--classes FILE``, name → id, read as a vocabulary file
    (:func:`annotator.vocabulary.load_vocabulary`: ``.txt`` one class a line, ``id:name`` allowed,
    else numbered from 1 in order; or a COCO ``.json``'s ``categories``).

    Raises:
        annotator.vocabulary.VocabularyError: no such file (a registry name is refused too: the
            list is the project's own), unreadable, or no class in it.
    """
    from annotator.vocabulary import VocabularyError, load_vocabulary

    if not Path(path).is_file():
        raise VocabularyError(f"--classes {path}: no such file (one class a line, or a COCO JSON)")
    vocab = load_vocabulary(path)
    return dict(zip(vocab.names, vocab.ids, strict=True))


def main(argv: list[str] | None = None) -> int:
    """Load the models, open the folder, serve the page until interrupted.

    Returns:
        0, or 2 when the models, the vocabulary, the folder or its store cannot be opened,
        the users are malformed, or a network address would be served without them (the
        reason on stderr).
    """
    args = parse_args(argv)
    from .auth import AuthError, is_loopback, load_users

    try:
        users = load_users(args.auth, args.auth_file)
    except (AuthError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not users and not is_loopback(args.host) and not args.insecure_no_auth:
        print(
            f"error: --host {args.host} serves the network, and nobody would be asked to sign in: "
            "add --auth USER:PASSWORD (or --auth-file FILE), or --insecure-no-auth on a network you trust",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from annotator.backends import BackendError
    from annotator.checkpoints import CheckpointError
    from annotator.engine import build_engine, engine_summary
    from annotator.images import write_sample_images
    from annotator.options import DEFAULTS, engine_config_from_args
    from annotator.store import StoreError
    from annotator.vocabulary import VocabularyError
    from annotator.workspace import Workspace

    images = args.images
    if images is None:
        images = Path(args.out) / "sample_images"
        write_sample_images(images)
    try:
        classes = class_list(args.classes) if args.classes else None
        if classes is not None and args.vocab != DEFAULTS.vocab:
            print(
                f"warning: --vocab {args.vocab} is ignored: --classes {args.classes} is the vocabulary", file=sys.stderr
            )
        engine = build_engine(engine_config_from_args(args, vocab=args.classes))
        ws = Workspace.open_folder(engine, images, args.out, database=args.db)
        if classes is not None:
            for warning in ws.store.declare_classes(classes):
                print(f"warning: --classes: {warning}", file=sys.stderr)
    except (BackendError, CheckpointError, VocabularyError, StoreError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("launch").info("%s; %d images in %s", engine_summary(engine), len(ws.keys), ws.root)
    from .page import serve

    serve(ws, host=args.host, port=args.port, extra_hosts=args.allowed_host, users=users)
    return 0


if __name__ == "__main__":
    sys.exit(main())
