"""The word<TAB>tag reader: XTREME's layout and the edge cases of real files."""

import pytest

from stabletune_fairseq.data.errors import InputFormatError
from stabletune_fairseq.data.readers.tagged_words import read_tagged_sentences


def write(tmp_path, text: str, name="f.tsv", raw: bytes | None = None):
    path = tmp_path / name
    path.write_bytes(raw if raw is not None else text.encode("utf-8"))
    return path


def test_sentences_split_at_blank_lines_with_trailing_and_double_blanks(tmp_path):
    path = write(tmp_path, "\nThe\tDET\ncat\tNOUN\n\n\n\nsleeps\tVERB\n.\tPUNCT\n\n\n")
    read = read_tagged_sentences(path, tags_required=True)
    assert read.words == [["The", "cat"], ["sleeps", "."]]
    assert read.tags == [["DET", "NOUN"], ["VERB", "PUNCT"]]
    assert read.first_lines == [2, 7] and read.word_count == 4


def test_crlf_and_bom(tmp_path):
    path = write(tmp_path, "", raw=b"\xef\xbb\xbfBerlin\tB-LOC\r\nist\tO\r\n\r\nja\tO\r\n")
    read = read_tagged_sentences(path, tags_required=True)
    assert read.words == [["Berlin", "ist"], ["ja"]] and read.tags == [["B-LOC", "O"], ["O"]]


def test_a_tab_inside_a_word_is_kept(tmp_path):
    path = write(tmp_path, "New\tYork\tB-LOC\nis\tO\n")
    read = read_tagged_sentences(path, tags_required=True)
    assert read.words == [["New\tYork", "is"]] and read.tags == [["B-LOC", "O"]]


def test_a_missing_tag_column_is_an_error_at_its_line(tmp_path):
    path = write(tmp_path, "The\tDET\ncat\tNOUN\n\nsleeps\n.\tPUNCT\n")
    with pytest.raises(InputFormatError) as err:
        read_tagged_sentences(path, tags_required=True)
    assert err.value.line == 4 and "missing tag column" in err.value.reason and str(path) in str(err.value)


def test_training_and_dev_files_need_tags(tmp_path):
    path = write(tmp_path, "The\ncat\n")
    with pytest.raises(InputFormatError, match=r":1: missing tag column"):
        read_tagged_sentences(path, tags_required=True)


def test_untagged_test_file(tmp_path):
    path = write(tmp_path, "Der\nHund\n\nbellt\n")
    read = read_tagged_sentences(path, tags_required=False)
    assert not read.labelled and read.tags is None and read.words == [["Der", "Hund"], ["bellt"]]


def test_a_tag_column_in_an_untagged_file_is_an_error(tmp_path):
    path = write(tmp_path, "Der\nHund\tNOUN\n")
    with pytest.raises(InputFormatError) as err:
        read_tagged_sentences(path, tags_required=False)
    assert err.value.line == 2


@pytest.mark.parametrize(
    "text, line, reason",
    [
        ("The\tDET\ncat\t \n", 2, "empty tag"),
        ("The\tDET\n\tNOUN\n", 2, "empty word"),
        ("\n\n", None, "no sentences"),
    ],
)
def test_empty_parts_are_errors(tmp_path, text, line, reason):
    with pytest.raises(InputFormatError) as err:
        read_tagged_sentences(write(tmp_path, text), tags_required=True)
    assert err.value.line == line and reason in err.value.reason


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = write(tmp_path, "", raw=b"a\tO\nb\xff\tO\n")
    with pytest.raises(InputFormatError) as err:
        read_tagged_sentences(path, tags_required=True)
    assert err.value.line == 2 and "UTF-8" in err.value.reason
