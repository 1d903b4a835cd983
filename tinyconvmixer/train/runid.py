"""What defines a training run, and what --resume may change.

A checkpoint stores every setting of its run (args) and the identity of its
data (a fingerprint of the decoded arrays, see data/cache.py). Resuming with
other values for the settings that DEFINE the run would silently train a
different run from the middle of this one: another batch size or seed gives
another order of images, other data or subsets other images, another
augmentation other inputs, another model shape does not fit the weights. Those
are refused, with the list of differences. Settings that may change on resume
(more epochs, a lower learning rate after a divergence, the evaluation batch
size, where the data lives) are taken, and printed as overridden.

    FIXED       refused when they differ
    CHANGEABLE  printed as overridden when they differ (so is any setting not listed)
    NOT_COMPARED where and how this process runs: not part of the run
"""

import math

from ..util.paths import quoted

FIXED = ("hdim", "depth", "kernel_size", "patch_size",           # the model's shape
         "train_subset", "test_subset", "val_split",             # which images
         "seed", "batch_size",                                   # their order and the batches
         "ra_n", "ra_m", "scale", "jitter", "reprob")            # the augmentation
CHANGEABLE = ("epochs", "lr_max", "wd", "clip_norm", "eval_batch_size", "data", "no_download")
NOT_COMPARED = ("resume", "out", "device", "smoke", "overwrite", "reference")


class RunIdentityError(ValueError):
    """Resuming would change what defines the run (see the message)."""


def flag(name):
    return "--" + name.replace("_", "-")


def check_saved_args(parser, saved):
    """Refuse a checkpoint's settings that this version's parser would not produce.

    Unknown names (another version wrote it) and wrong types are errors; a
    missing FIXED setting too (the run could not be checked); other missing ones
    take today's defaults.
    """
    if not isinstance(saved, dict):
        raise RunIdentityError("its settings ('args') are not a dict")
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    unknown = sorted(set(saved) - set(actions))
    missing = [name for name in FIXED if name not in saved]
    if unknown or missing:
        raise RunIdentityError(f"its settings have unknown name(s) {', '.join(unknown) or 'none'} and lack "
                               f"{', '.join(missing) or 'none'} (was it written by another version?)")
    for name, value in saved.items():
        action = actions[name]
        if value is None and action.default is None:
            continue
        if action.choices is not None:
            ok = value in action.choices
        elif action.type is int:
            ok = type(value) is int
        elif action.type is float:
            ok = type(value) in (int, float) and math.isfinite(value)
        elif action.const is True:                     # store_true
            ok = type(value) is bool
        else:
            ok = isinstance(value, str)
        if not ok:
            raise RunIdentityError(f"its setting {flag(name)} has an impossible value {value!r}")


def compare_args(saved, args):
    """(conflicts, overridden): lists of '--name old -> new' for the FIXED and the other settings."""
    conflicts, overridden = [], []
    for name, old in saved.items():
        new = getattr(args, name, old)
        if name in NOT_COMPARED or new == old:
            continue
        (conflicts if name in FIXED else overridden).append(f"{flag(name)} {old} -> {new}")
    return conflicts, overridden


def refuse_conflicts(conflicts, checkpoint):
    if conflicts:
        raise RunIdentityError(
            f"cannot resume from {quoted(checkpoint)} with other values of settings that define the run: "
            f"{'; '.join(conflicts)}. Leave them out to take the checkpoint's, or start a new run "
            "(without --resume) to train with them")


def check_data(saved, data_fingerprint, train_images, test_images, checkpoint, val_images=0):
    """Refuse data other than the run's: another fingerprint, or other numbers of images."""
    if not isinstance(saved, dict) or not {"fingerprint", "train_images", "test_images", "source"} <= set(saved):
        raise RunIdentityError(f"cannot resume from {quoted(checkpoint)}: it does not record its data's "
                               "identity (written by another version?)")
    if saved["fingerprint"] != data_fingerprint:
        source = quoted(saved["source"]) if isinstance(saved["source"], str) else saved["source"]
        raise RunIdentityError(f"cannot resume from {quoted(checkpoint)}: the data is not the run's "
                               f"(fingerprint {saved['fingerprint']} of {source}, now {data_fingerprint}); "
                               "give the run's data with --data PATH")
    counts = (saved["train_images"], saved.get("val_images", 0), saved["test_images"])
    if counts != (train_images, val_images, test_images):
        raise RunIdentityError(f"cannot resume from {quoted(checkpoint)}: it trained on {counts[0]}, "
                               f"validated on {counts[1]} and tested on {counts[2]} images, now "
                               f"{train_images}, {val_images} and {test_images}")
