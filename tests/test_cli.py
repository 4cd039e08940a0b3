"""The command line as people type it: short community ids, free-text settings without quoting,
mistyped settings, and which bundle rank.py uses."""

import os
import shutil
import time
from pathlib import Path

import pytest

from mmembed.cli.argv import UnknownSetting, prepare
from mmembed.cli.rank import bundles_with, resolve_bundle
from mmembed.communities.ids import community_ids, resolve_community, slug

ROOT = Path(__file__).resolve().parent.parent
RANK_CONFIG = ROOT / "conf" / "rank.yaml"
TRAIN_CONFIG = ROOT / "conf" / "train.yaml"

KINDS = {
    "crag_daily": "account",
    "#rockclimbing": "source",
    "neon · cocktails · party": "cluster",
    "Café Crème": "account",
    "account:natgeo": "account",
    "source:natgeo": "source",
}


# ------------------------------------------------------------------------------ ids
def test_ids_need_no_quoting_and_are_unique():
    ids = community_ids(KINDS)
    assert ids["crag_daily"] == "crag_daily"
    assert ids["#rockclimbing"] == "tag-rockclimbing"
    assert ids["neon · cocktails · party"] == "neon-cocktails-party"
    assert ids["Café Crème"] == "cafe-creme"
    assert ids["source:natgeo"] == "source-natgeo"
    assert len(set(ids.values())) == len(ids)
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-") for i in ids.values())


def test_colliding_ids_get_their_kind_and_do_not_depend_on_order():
    kinds = {"Neon Party": "cluster", "neon-party": "account", "neon party": "source"}
    ids = community_ids(kinds)
    assert len(set(ids.values())) == 3
    assert ids["Neon Party"].startswith("cluster-") and ids["neon-party"].startswith("account-")
    reversed_kinds = dict(reversed(list(kinds.items())))
    assert community_ids(reversed_kinds) == ids


@pytest.mark.parametrize("query, name", [
    ("#rockclimbing", "#rockclimbing"),
    ("tag-rockclimbing", "#rockclimbing"),
    ("rockclimbing", "#rockclimbing"),  # a hashtag's bare word
    ("ROCKCLIMBING", "#rockclimbing"),
    ("neon-cocktails-party", "neon · cocktails · party"),
    ("neon · cocktails · party", "neon · cocktails · party"),
    ("CRAG_DAILY", "crag_daily"),
    ("cafe-creme", "Café Crème"),
    ("source-natgeo", "source:natgeo"),
])
def test_resolve_by_name_id_or_bare_hashtag(query, name):
    assert resolve_community(query, KINDS) == name


def test_resolve_unknown_is_none():
    assert resolve_community("sailing", KINDS) is None
    assert slug("  !!! ") == "community"


def test_bare_word_prefers_an_account_with_that_id():
    kinds = {"rockclimbing": "account", "#rockclimbing": "source"}
    assert resolve_community("rockclimbing", kinds) == "rockclimbing"
    assert resolve_community("tag-rockclimbing", kinds) == "#rockclimbing"


# ------------------------------------------------------------------------------ argv
def test_free_text_values_are_quoted_only_when_hydra_needs_it():
    argv = ["community=#rockclimbing", "community=neon · cocktails · party", "community=plain",
            "images=shoot/#1", "rank.alpha=0.5", "--help", "+x=1"]
    out = prepare(argv, RANK_CONFIG)
    assert out[0] == "community='#rockclimbing'"
    assert out[1] == "community='neon · cocktails · party'"
    assert out[2:] == ["community=plain", "images='shoot/#1'", "rank.alpha=0.5", "--help", "+x=1"]


def test_quoting_keeps_quotes_in_the_value():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (arg,) = prepare(["community=#it's"], RANK_CONFIG)
    assert OverridesParser.create().parse_override(arg).value() == "#it's"


def test_a_mistyped_setting_suggests_the_real_one():
    with pytest.raises(UnknownSetting, match=r"did you mean community=\?"):
        prepare(["comunity=x"], RANK_CONFIG)
    with pytest.raises(UnknownSetting, match="trainer="):
        prepare(["trainr.max_epochs=3"], TRAIN_CONFIG)
    assert prepare(["refine.epochs=2"], TRAIN_CONFIG) == ["refine.epochs=2"]  # close to none


def test_rank_py_takes_a_hashtag_unquoted_and_answers_a_typo(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "160"}
    proc = subprocess.run([sys.executable, str(ROOT / "rank.py"), "comunity=x"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert "did you mean community=?" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, str(ROOT / "rank.py"), "community=#rockclimbing",
                           f"paths.index_dir={tmp_path / 'none'}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=env)
    assert "LexerNoViableAlt" not in proc.stderr
    assert "no bundle found" in proc.stderr  # got past Hydra's parser to the bundle lookup


# ------------------------------------------------------------------------------ bundles
def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    os.utime(dst / "manifest.json")
    return dst


def test_rank_says_which_bundle_and_why(tiny_bundle, tmp_path):
    index = tmp_path / "index"
    with pytest.raises(Exception, match="run `python train.py` first"):
        resolve_bundle(None, index)
    first = copy_bundle(tiny_bundle, index / "first")
    path, why = resolve_bundle(None, index)
    assert path == first and "the only bundle" in why
    time.sleep(0.05)
    second = copy_bundle(tiny_bundle, index / "second")
    path, why = resolve_bundle(None, index)
    assert path == second
    assert "newest of 2 bundles" in why and "first" in why and "bundle=NAME" in why
    assert resolve_bundle("first", index) == (first, "given by bundle=")


def test_bundles_with_lists_the_bundles_that_have_a_community(tiny_bundle, tmp_path):
    from mmembed.ranking.ranker import Ranker

    index = tmp_path / "index"
    other = copy_bundle(tiny_bundle, index / "other")
    ranker = Ranker.from_bundle(other)
    name = ranker.default_community()
    found = bundles_with(name, index)
    assert found == [f"other (community={ranker.community_ids[name]})"]
    assert bundles_with(name, index, but=other) == []
    assert bundles_with("no such community at all", index) == []


# ------------------------------------------------------------------------------ help
@pytest.mark.parametrize("app, must, must_not", [
    ("rank.py", ["community=ID", "images=PATH", "bundle=NAME"], ["trainer:", "model/image_tower"]),
    ("train.py", ["data=NAME", "+experiment=NAME", "model/image_tower:"], []),
])
def test_help_says_what_the_app_does_with_five_examples(app, must, must_not, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / app), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    examples = text.split("Examples:")[1].split("\n\n")[0]
    assert sum(line.strip().startswith(f"python {app}") for line in examples.splitlines()) == 5
    assert all(m in text for m in must) and not any(m in text for m in must_not)
    assert "Powered by Hydra" not in text and len(text.splitlines()) < 70
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


def test_a_hashtag_community_resolves_however_it_is_typed(tiny_bundle):
    from mmembed.ranking.ranker import Ranker

    ranker = Ranker.from_bundle(tiny_bundle, load_weights=False)
    for query in ("#rockclimbing", "tag-rockclimbing", "rockclimbing", "TAG-ROCKCLIMBING"):
        assert ranker.resolve_community(query) == "#rockclimbing"


@pytest.mark.slow  # a rank.py process (~16 s); the names' resolution is in the fast suite above
def test_rank_py_ranks_for_a_hashtag_community_named_as_typed(tiny_bundle, tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "rank.py"), f"bundle={tiny_bundle}",
                           "community=#rockclimbing", f"out={out}", "report=false"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "160"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "ranking.json").read_text())
    assert result["community"]["name"] == "#rockclimbing"
    assert result["community"]["id"] == "tag-rockclimbing"
    assert result["community"]["kind"] == "source"


# ------------------------------------------------------------------------------ output width
def test_piped_output_gets_wide_tables_unless_columns_says_otherwise(monkeypatch):
    import io

    from rich.table import Table

    from mmembed.cli.terminal import PIPED_WIDTH, make_console

    def render(console):
        table = Table()
        for name in ("image", "hashtags"):
            table.add_column(name)
        table.add_row("a-long-photo-name-from-the-shoot-0001.jpg",
                      "#sunset #beach #golden_hour #summer #travel #coast #waves #surf")
        console.print(table)
        return console.file.getvalue().splitlines()

    monkeypatch.delenv("COLUMNS", raising=False)
    wide = render(make_console(io.StringIO()))
    assert make_console(io.StringIO()).width == PIPED_WIDTH
    assert len(wide) == 5  # top rule, header, rule, one unwrapped row, bottom rule
    assert "#surf" in wide[3] and "0001.jpg" in wide[3]
    monkeypatch.setenv("COLUMNS", "50")
    narrow = render(make_console(io.StringIO()))
    assert max(len(line) for line in narrow) <= 50 and len(narrow) > 5
