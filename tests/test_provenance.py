"""The records of what made each dataset, model and prediction of the demo and the benchmark (made_by.json)."""
import json


from nnunetv2_tevia.evaluation import provenance as pv


def test_record_names_what_differs(tmp_path):
    folder = str(tmp_path / "model")
    record = pv.start_record(folder, {"seed": 0, "epochs": 20, "trainer": "T"}, {"dataset": "abc"})
    assert record["complete"] is False and record["code"] and len(record["id"]) == 32
    assert pv.read_record(folder) == record
    assert pv.mismatch(record, {"seed": 0, "epochs": 20, "trainer": "T"}, {"dataset": "abc"}) is None
    assert pv.mismatch(record, {"seed": 1, "epochs": 20, "trainer": "T"}, {"dataset": "abc"}) == "seed was 0, now 1"
    assert "epochs" in pv.mismatch(record, {"seed": 0, "trainer": "T"}, {"dataset": "abc"})
    assert "dataset" in pv.mismatch(record, {"seed": 0, "epochs": 20, "trainer": "T"}, {"dataset": "new"})
    assert "no record" in pv.mismatch(None, {"seed": 0})
    # values compare as JSON, so a tuple given now equals the list read back
    tup = pv.start_record(str(tmp_path / "t"), {"ids": ("a", "b")})
    assert pv.mismatch(pv.read_record(str(tmp_path / "t")), {"ids": ("a", "b")}) is None and tup
    done = pv.finish_record(folder)
    assert done["complete"] is True and done["id"] == record["id"]


def test_reuse_or_clear(tmp_path):
    folder = tmp_path / "pred"
    args, inputs = {"prompts": "p.json"}, {"model": "m1"}
    assert "no record" in pv.reuse_or_clear(str(folder), args, inputs)  # nothing there yet
    pv.start_record(str(folder), args, inputs)
    (folder / "a.png").write_bytes(b"x")
    # interrupted (not complete): the folder goes, whatever it holds
    assert "interrupted" in pv.reuse_or_clear(str(folder), args, inputs, [str(folder / "a.png")])
    assert not folder.exists()
    pv.start_record(str(folder), args, inputs)
    (folder / "a.png").write_bytes(b"x")
    pv.finish_record(str(folder))
    assert pv.reuse_or_clear(str(folder), args, inputs, [str(folder / "a.png")]) is None
    assert folder.exists()
    # a file that should be there is missing: not what the record says
    assert "b.png" in pv.reuse_or_clear(str(folder), args, inputs, [str(folder / "a.png"), str(folder / "b.png")])
    assert not folder.exists()
    pv.start_record(str(folder), args, inputs)
    pv.finish_record(str(folder))
    assert "model" in pv.reuse_or_clear(str(folder), args, {"model": "m2"})  # made from another model
    assert not folder.exists()


def test_code_version_names_the_commit_of_this_checkout():
    code = pv.code_version()
    assert set(code) in ({"git_commit", "uncommitted_changes"}, {"package_version"})
    if "git_commit" in code:
        assert len(code["git_commit"]) == 40


def test_file_sha256(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"a": 1}))
    assert pv.file_sha256(str(f)) == pv.file_sha256(str(f)) and len(pv.file_sha256(str(f))) == 64
    assert pv.file_sha256(None) is None
