"""Bad input to the sentence-pair reader fails with file, line and reason; good quirks are handled."""

import pytest

from stabletune_fairseq.data.errors import InputFormatError
from stabletune_fairseq.data.readers.xtreme_tsv import UNLABELLED, read_sentence_pairs

LABELS = ["contradiction", "entailment", "neutral"]


def write(tmp_path, content: bytes, name="dev-de.tsv"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_reads_labels_bom_and_crlf(tmp_path):
    path = write(tmp_path, "\ufeffA cat.\tAn animal.\tentailment\r\nB.\tC.\tneutral\r\n".encode())
    pairs = read_sentence_pairs(path, LABELS, labels_required=True)
    assert pairs.text_a == ["A cat.", "B."] and pairs.text_b == ["An animal.", "C."]
    assert pairs.labels == [1, 2] and pairs.labelled


def test_unlabelled_test_file_is_kept(tmp_path):
    path = write(tmp_path, b"A.\tB.\nC.\tD.\n", "test-de.tsv")
    pairs = read_sentence_pairs(path, LABELS, labels_required=False)
    assert pairs.labels == [UNLABELLED, UNLABELLED] and not pairs.labelled


@pytest.mark.parametrize(
    "content, line, reason",
    [
        (b"A.\tB.\tentailment\nC.\tD.\n", 2, "2 tab-separated columns, the file's first line has 3"),
        (b"A.\tB.\n", 1, "2 tab-separated columns, expected 3"),
        (b"A.\tB.\tentailment\nC.\tD.\tmaybe\n", 2, "unknown label 'maybe'"),
        (b"A.\t  \tentailment\n", 1, "empty text_b"),
        (b"A.\tB.\tentailment\n\nC.\tD.\tneutral\n", 2, "empty line"),
        (b"A.\tB.\tentailment\nC\xff.\tD.\tneutral\n", 2, "not valid UTF-8"),
        (b"A.\tB\tC\tentailment\n", 1, "4 tab-separated columns"),
    ],
)
def test_malformed_rows_name_file_line_and_reason(tmp_path, content, line, reason):
    path = write(tmp_path, content)
    with pytest.raises(InputFormatError) as err:
        read_sentence_pairs(path, LABELS, labels_required=True)
    assert err.value.line == line and reason in err.value.reason
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputFormatError, match="file not found"):
        read_sentence_pairs(tmp_path / "nope.tsv", LABELS, labels_required=True)
    with pytest.raises(InputFormatError, match="no examples"):
        read_sentence_pairs(write(tmp_path, b""), LABELS, labels_required=True)
