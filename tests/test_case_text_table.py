"""The training text table: every row holds the text it is named for, whichever way it was added (report, phrasing,
flipped report, flipped phrasing), and rows are loaded straight into the table's arrays."""
import numpy as np
import pytest

from nnunetv2_tevia.errors import MissingTextError
from nnunetv2_tevia.training.case_text import NO_REPORT_ROW, CaseTextTable, load_rows, training_choices

L, D = 3, 4


def text(value: float):
    f = np.full((L, D), value, np.float16)
    m = np.zeros(L, bool)
    m[: 1 + int(value) % L] = True
    return f, m


class FakeCache:
    """Texts are numbers: a report's features are filled with its number."""
    folder = "/fake/cache"
    no_report_text = ""
    reports = {"a": 1.0, "b": 2.0}
    phrasings = {"a": ["pa1", "pa2"], "b": ["pa2"]}          # "pa2" is shared: one row
    phrasing_value = {"pa1": 11.0, "pa2": 12.0, "fpa1": 21.0}
    flips = {"a": {"1": 101.0}}                               # case a's report flipped along map axis 1
    phrasing_flips = {"pa1": {"1": "fpa1"}}
    loaded = 0

    def no_report_features(self):
        self.loaded += 1
        return text(0.0)

    def has_case(self, k):
        return k in self.reports

    def text_sha256(self, k):
        return f"sha-{k}" if k in self.reports else None

    def features(self, k):
        self.loaded += 1
        return text(self.reports[k])

    def variant_shas(self, k):
        return self.phrasings.get(k, [])

    def features_of_text(self, sha, what):
        self.loaded += 1
        return text(self.phrasing_value[sha])

    def mirror_flips(self, k):
        return {key: f"flip-{k}-{key}" for key in self.flips.get(k, {})}

    def mirrored_features(self, k, axes):
        self.loaded += 1
        return text(self.flips[k][",".join(map(str, axes))])

    def variant_flips(self, sha):
        return dict(self.phrasing_flips.get(sha, {}))


def choices(cache, case_ids, text_dropout, case_text=True):
    return training_choices(cache, case_ids, text_dropout=text_dropout, case_text=case_text, dataset="Dataset1",
                            prompt_file="prompts.json")


def value(table, row):
    return float(table.features[row, 0, 0])


def test_every_row_holds_its_text():
    cache = FakeCache()
    table = CaseTextTable.from_cache(cache, choices(cache, ["a", "b", "c"], text_dropout=0.2))
    assert table.rows["c"] == NO_REPORT_ROW and value(table, NO_REPORT_ROW) == 0
    assert value(table, table.rows["a"]) == 1 and value(table, table.rows["b"]) == 2
    assert [value(table, r) for r in table.variant_rows["a"]] == [11, 12]
    assert table.variant_rows["b"] == [table.variant_rows["a"][1]]  # a shared phrasing is one row
    assert len(table.features) == 5 and cache.loaded == 5          # each distinct text loaded once
    table.add_mirror_rows(cache, map_axes=(1,), patch_to_map=(0, 1))
    assert value(table, table.flip_rows["a"][(1,)]) == 101
    pa1 = table.variant_rows["a"][0]
    assert value(table, table.variant_flip_rows[pa1][(1,)]) == 21
    assert len(table.features) == 7 and len(table.masks) == 7
    # the rows appended later keep the earlier ones, masks included
    for row, v in ((table.rows["a"], 1.0), (table.rows["b"], 2.0), (pa1, 11.0)):
        f, m = text(v)
        assert (table.features[row].numpy() == f).all() and (table.masks[row].numpy() == m).all()


def test_a_case_without_report_is_an_error_naming_the_fix_unless_allowed():
    with pytest.raises(MissingTextError, match=r"1 training case\(s\) of Dataset1.*: c\..*prompts.json.*embed -d "
                                               r"Dataset1"):
        choices(FakeCache(), ["a", "c"], text_dropout=0.0)


def test_load_rows_stacks_in_order():
    f, m = load_rows([lambda v=v: text(v) for v in (3.0, 1.0, 2.0)])
    assert f.shape == (3, L, D) and f.dtype == np.float16 and m.shape == (3, L)
    assert f[:, 0, 0].tolist() == [3.0, 1.0, 2.0]
    assert m.sum(1).tolist() == [1, 2, 3]


def test_no_text_table_reads_no_report_and_holds_only_the_no_report_row():
    cache = FakeCache()
    table = CaseTextTable.from_cache(cache, choices(cache, ["a", "c"], text_dropout=0.0, case_text=False))
    assert table.rows == {"a": NO_REPORT_ROW, "c": NO_REPORT_ROW} and len(table.features) == 1


def test_case_text_is_the_report_with_its_flips():
    cache = FakeCache()
    table = CaseTextTable.from_cache(cache, choices(cache, ["a", "c"], text_dropout=0.2))
    table.add_mirror_rows(cache, map_axes=(1,), patch_to_map=(0, 1))
    a, c = table.case_text("a"), table.case_text("c")
    assert a.features.shape == (1, L, D) and float(a.features[0, 0, 0]) == 1
    assert float(a.variant((1,))[0][0, 0, 0]) == 101 and float(a.variant((0,))[0][0, 0, 0]) == 1
    assert float(c.features[0, 0, 0]) == 0 and not c.flipped  # no report: the no-report row under every flip
