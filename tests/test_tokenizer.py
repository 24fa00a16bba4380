import pytest

from showo_sdk.config import SPECIAL_TOKENS
from showo_sdk.errors import ConfigError, InputError
from showo_sdk.prompting import Prompting
from showo_sdk.tokenizer import TextTokenizer

CORPUS = ["a red circle left of a blue square", "how many circles are there?", "USER: what ASSISTANT: two"] * 20


@pytest.fixture(scope="module")
def tok():
    return TextTokenizer.train(CORPUS, vocab_size=300)


def test_special_tokens_appended_in_official_order(tok):
    base = tok.text_vocab_size
    assert [tok._tok.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(base, base + 10))
    assert tok.decode([tok.bos_id]) == "" and tok.decode([tok.bos_id], skip_special_tokens=False) == "<|endoftext|>"


def test_round_trip_and_save_load(tok, tmp_path):
    text = "a red circle left of a blue square"
    assert tok.decode(tok.encode(text)) == text
    tok.save(tmp_path / "tokenizer.json")
    again = TextTokenizer.from_file(tmp_path)
    assert again.encode(text) == tok.encode(text) and again.text_vocab_size == tok.text_vocab_size


def test_special_strings_in_text_are_single_tokens(tok):
    ids = tok.encode("x <|soi|> y")
    assert tok.text_vocab_size + 1 in ids


def test_layout_and_prompting(tok):
    lay = tok.layout(codebook_size=16)
    assert lay.text_vocab_size == tok.text_vocab_size and lay.bos_id == tok.bos_id
    tok.check_layout(lay)
    from showo_sdk.config import ShowoConfig, TransformerConfig
    cfg = ShowoConfig(layout=lay, transformer=TransformerConfig(vocab_size=lay.vocab_size, hidden_size=8,
                      num_layers=1, num_heads=2, intermediate_size=8), max_text_len=16, image_grid=(2, 2))
    ids = Prompting(cfg, tok).t2i(["a red circle"])
    assert ids.shape == (1, cfg.t2i_seq_len)
    q = Prompting(cfg, tok).mmu_question_ids("how many?")
    assert tok.decode(q) == "USER: \nhow many? ASSISTANT:"
    with pytest.raises(ConfigError, match="tokenizer has text vocabulary"):
        tok.check_layout(type(lay)(text_vocab_size=lay.text_vocab_size + 1, codebook_size=16, bos_id=lay.bos_id))


def test_errors(tmp_path, tok):
    with pytest.raises(ConfigError, match="no tokenizer file"):
        TextTokenizer.from_file(tmp_path)
    (tmp_path / "tokenizer.json").write_text("not json")
    with pytest.raises(ConfigError, match="cannot read tokenizer"):
        TextTokenizer.from_file(tmp_path)
    with pytest.raises(InputError):
        tok.encode(3)
