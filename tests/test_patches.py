"""The mutants are patches against the reference; the applier takes them exactly or not at all."""
import pytest

from mutation import MUTANTS, variants
from patches import PatchError, apply, make, reference_of

pytestmark = pytest.mark.fast

REFERENCE = "".join(f"line {i}\n" for i in range(1, 21))
BUGGY = REFERENCE.replace("line 10\n", "line ten\n")
HEADER = "# mistake: ten   (spelt out)\n"


def test_every_mutant_is_a_patch_that_applies_and_changes_its_reference():
    found = variants(MUTANTS)
    assert len(found) >= 90 and all(v.path.suffix == ".patch" for v in found)
    assert not list(MUTANTS.glob("*.py")), "a mutant stored as a whole file: convert it with tests/patches.py"
    for v in found:
        reference = reference_of(v.path.name).read_text()
        assert v.text.startswith("# mistake: ") or v.text.startswith("# uncatalogued: "), v.path.name
        body = v.text.split("\n", 1)[1]
        assert body != reference, f"{v.path.name} is the reference itself"


def test_make_then_apply_gives_the_file_back_byte_for_byte():
    patch = make(HEADER + BUGGY, REFERENCE, "05_softmax__ten.py")
    assert patch.startswith(HEADER + "--- solutions/05_softmax.py\n+++ tests/mutants/05_softmax__ten.py\n")
    assert apply(patch, REFERENCE, "05_softmax__ten.patch") == HEADER + BUGGY
    assert len(patch.splitlines()) == 12, "the header, two file lines, one hunk of 3 + 2 + 3 lines: not the file"


def test_a_reference_edited_under_the_patch_fails_loudly_naming_the_line():
    patch = make(HEADER + BUGGY, REFERENCE, "05_softmax__ten.py")
    edited = REFERENCE.replace("line 9\n", "line nine\n")
    with pytest.raises(PatchError, match=r"05_softmax__ten.patch: hunk 1 does not apply: 05_softmax.py line 9 "
                                         r"is 'line nine', the patch expects 'line 9'"):
        apply(patch, edited, "05_softmax__ten.patch")
    # Shifted by one line: no offset is tried, so it fails rather than apply elsewhere.
    with pytest.raises(PatchError, match="does not apply"):
        apply(patch, "line 0\n" + REFERENCE, "05_softmax__ten.patch")


def test_malformed_patches_are_refused_with_the_reason():
    patch = make(HEADER + BUGGY, REFERENCE, "05_softmax__ten.py")
    with pytest.raises(PatchError, match="not a unified diff"):
        apply(HEADER + "@@ -1 +1 @@\n", REFERENCE, "x.patch")
    with pytest.raises(PatchError, match="no hunk"):
        apply(patch.split("@@")[0], REFERENCE, "x.patch")
    with pytest.raises(PatchError, match="cut short"):
        apply(patch.rsplit("\n", 2)[0] + "\n", REFERENCE, "x.patch")
    with pytest.raises(PatchError, match="expected a hunk header"):
        apply(patch + "garbage\n", REFERENCE, "x.patch")
    with pytest.raises(PatchError, match="must start with"):
        apply(patch.replace("\n-line 10", "\n*line 10"), REFERENCE, "x.patch")


def test_an_insertion_and_a_second_hunk_apply_in_place():
    mutant = REFERENCE.replace("line 2\n", "line 2\nextra\n").replace("line 19\n", "")
    patch = make(mutant, REFERENCE, "01_project__two.py")
    assert patch.count("@@ -") == 2
    assert apply(patch, REFERENCE, "01_project__two.patch") == mutant
