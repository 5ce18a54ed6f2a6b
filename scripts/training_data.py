"""What the training scripts (train_judge.py, train_search_model.py) share about their data:
the sha256 that goes into a model's manifest, and the project's own jsonl training folders."""

import hashlib
import json
from pathlib import Path


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_jsonl(path):
    """Every row of a jsonl file, blank lines skipped."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def jsonl_folder(folder, root):
    """(rows, files): every row of folder/*.jsonl in file order, and each file's sha256 by its
    path relative to root."""
    rows, files = [], {}
    for path in sorted(Path(folder).glob("*.jsonl")):
        files[str(path.relative_to(root))] = sha256_file(path)
        rows += read_jsonl(path)
    return rows, files
