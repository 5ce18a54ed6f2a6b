"""The Python peer of askmark (issue 14): the search service a user would otherwise write in an
afternoon, kept deliberately plain so that benches/compare.sh can measure askmark against it.

- the same ONNX model askmark serves (models/search: model.onnx + tokenizer.json) run
  through the PyPI `onnxruntime` and `tokenizers` packages: inputs input_ids, attention_mask,
  token_type_ids; output last_hidden_state, mean-pooled over the attention mask and
  L2-normalised; truncated at 256 tokens and padded to the longest text of a batch, as askmark
  does;
- BM25 (rank_bm25's BM25Okapi) over question + answer text, lower-cased \\w+ tokens;
- the question vectors in qdrant-client's local mode (in memory, one copy per worker);
- reciprocal-rank fusion (k = 60) of the two rankings, 50 candidates from each;
- everything embedded at start-up; the endpoints are plain `def`s, run in FastAPI's thread pool.

  GET  /v1/search?q=...&limit=10   -> {"results": [{"id", "question", "score"}], "total": n}
  POST /v1/review {"question_id", "answer"}
                                   -> {"question_id", "score"}: the cosine between the answer's
                                      embedding and the reference answer's (all a quick peer does)
  GET  /readyz                     -> {"status": "ready"}

Run:   benches/peer/.venv/bin/python benches/peer/app.py [PORT]     (benches/compare.sh does this)
Env:   PEER_PORT (8090 when no argument), PEER_HOST (127.0.0.1), PEER_WORKERS (uvicorn workers, 2),
       PEER_THREADS (ONNX Runtime intra-op threads per worker, 1), PEER_CORPUS (corpus/),
       PEER_MODEL (models/search; models/all-MiniLM-L6-v2 with askmark --embedding-model to match)
"""

import glob
import os
import re
import sys
import tomllib
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field
from qdrant_client import QdrantClient
from qdrant_client.models import Distance, PointStruct, VectorParams
from rank_bm25 import BM25Okapi
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("PEER_CORPUS", ROOT / "corpus"))
MODEL = Path(os.environ.get("PEER_MODEL", ROOT / "models" / "search"))
THREADS = int(os.environ.get("PEER_THREADS", "1"))
MAX_TOKENS = 256  # max_length in the model's manifest.json
RRF_K = 60
CANDIDATES = 50  # taken from each ranking before fusion
COLLECTION = "questions"


class Embedder:
    def __init__(self, model_dir: Path, threads: int):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json pads and truncates to a fixed 128; askmark truncates at 256 and pads
        # to the longest text of a batch, so do the same.
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")

    def embed(self, texts: list[str], batch: int = 16) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch):
            encodings = self.tokenizer.encode_batch(texts[start : start + batch])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            types = np.array([e.type_ids for e in encodings], dtype=np.int64)
            (hidden,) = self.session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
            )
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            out.append(pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None))
        return np.concatenate(out)


def tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class State:
    """Everything one worker serves from, built at start-up."""

    def __init__(self):
        self.questions = []
        for path in sorted(glob.glob(str(CORPUS / "*.toml"))):
            with open(path, "rb") as file:
                self.questions.extend(tomllib.load(file).get("questions", []))
        self.by_id = {q["id"]: n for n, q in enumerate(self.questions)}
        self.embedder = Embedder(MODEL, THREADS)
        self.bm25 = BM25Okapi([tokens(q["question"] + "\n" + q["answer"]) for q in self.questions])
        question_vectors = self.embedder.embed([q["question"] for q in self.questions])
        self.answer_vectors = self.embedder.embed([q["answer"] for q in self.questions])
        self.qdrant = QdrantClient(":memory:")
        self.qdrant.create_collection(
            COLLECTION, vectors_config=VectorParams(size=question_vectors.shape[1], distance=Distance.COSINE)
        )
        self.qdrant.upsert(
            COLLECTION,
            points=[PointStruct(id=n, vector=v.tolist()) for n, v in enumerate(question_vectors)],
        )

    def search(self, query: str, limit: int) -> dict:
        scores = self.bm25.get_scores(tokens(query))
        lexical = [int(n) for n in np.argsort(-scores)[:CANDIDATES] if scores[n] > 0]
        vector = self.embedder.embed([query])[0]
        semantic = [p.id for p in self.qdrant.query_points(COLLECTION, query=vector.tolist(), limit=CANDIDATES).points]
        fused: dict[int, float] = {}
        for ranking in (lexical, semantic):
            for rank, n in enumerate(ranking, start=1):
                fused[n] = fused.get(n, 0.0) + 1.0 / (RRF_K + rank)
        ranked = sorted(fused.items(), key=lambda item: -item[1])[:limit]
        return {
            "results": [
                {"id": self.questions[n]["id"], "question": self.questions[n]["question"], "score": score}
                for n, score in ranked
            ],
            "total": len(fused),
        }

    def review(self, question_id: str, answer: str) -> dict:
        n = self.by_id.get(question_id)
        if n is None:
            raise HTTPException(status_code=404, detail=f"no question {question_id!r}")
        vector = self.embedder.embed([answer])[0]
        return {"question_id": question_id, "score": float(vector @ self.answer_vectors[n])}


state: State | None = None


@asynccontextmanager
async def lifespan(_app: FastAPI):
    global state
    state = State()
    yield


app = FastAPI(title="askmark peer", lifespan=lifespan)


class ReviewRequest(BaseModel):
    question_id: str
    answer: str = Field(min_length=1, max_length=10_000)


@app.get("/v1/search")
def search(q: str = Query(min_length=1, max_length=1000), limit: int = Query(10, ge=1, le=100)):
    return state.search(q, limit)


@app.post("/v1/review")
def review(request: ReviewRequest):
    return state.review(request.question_id, request.answer)


@app.get("/readyz")
def readyz():
    return {"status": "ready"}


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("PEER_PORT", "8090"))
    uvicorn.run(
        "app:app",
        app_dir=str(Path(__file__).resolve().parent),
        host=os.environ.get("PEER_HOST", "127.0.0.1"),
        port=port,
        workers=int(os.environ.get("PEER_WORKERS", "2")),
        access_log=False,  # askmark writes no line per request either
    )
