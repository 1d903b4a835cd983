"""Regenerate the bundled sample, sample/cifar10-sample.tar.gz.

The sample is an image-folder tarball of the first 250 training and first 50
test images of every class (by file name) of the JPEG copy of CIFAR-10, with
the JPEG files copied byte for byte (no re-encoding). The output is
deterministic (sorted members, zeroed times and owners), so running this again
on the same source gives the identical file:

    python tools/make_sample.py ../shared/data/cifar10-jpeg.tar.gz
"""

import argparse
import gzip
import io
import os
import tarfile

from tinyconvmixer.data.archive import iter_archive
from tinyconvmixer.data.cifar import CLASSES, SPLITS
from tinyconvmixer.data.dataset import SAMPLE_PATH
from tinyconvmixer.util.atomic import atomic_write

PER_CLASS = {"train": 250, "test": 50}


def make_sample(source, dest=SAMPLE_PATH, per_class=None):
    """Write the sample tarball `dest` from the image-folder archive `source`; returns the member count."""
    per_class = per_class or PER_CLASS
    chosen = {}    # member name -> JPEG bytes
    for name, data in iter_archive(source, lambda n: n.lower().endswith((".jpg", ".jpeg", ".png"))):
        parts = name.split("/")
        if data is not None and len(parts) >= 3 and parts[-3] in SPLITS and parts[-2] in CLASSES:
            chosen["/".join(parts[-3:])] = data
    members = []
    for split in SPLITS:
        for cls in CLASSES:
            names = sorted(n for n in chosen if n.startswith(f"{split}/{cls}/"))
            if len(names) < per_class[split]:
                raise ValueError(f"{source}: only {len(names)} images in {split}/{cls}/")
            members += names[: per_class[split]]

    def write(tmp):
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in members:
                info = tarfile.TarInfo(name)     # owner, group and time all zero: reproducible
                info.size, info.mode = len(chosen[name]), 0o644
                tar.addfile(info, io.BytesIO(chosen[name]))

    atomic_write(dest, write)
    return len(members)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="image-folder .tar.gz of CIFAR-10, e.g. cifar10-jpeg.tar.gz")
    parser.add_argument("dest", nargs="?", default=SAMPLE_PATH, help="output (default: the bundled sample)")
    args = parser.parse_args(argv)
    count = make_sample(args.source, args.dest)
    print(f"wrote {args.dest}: {count} images, {os.path.getsize(args.dest) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
