"""Text side: `TextSpec` (stored in the manifest) and `Preprocessor` (text -> graph inputs)."""
from l2v.text.preprocess import Preprocessor, check_texts
from l2v.text.spec import TextSpec

__all__ = ["Preprocessor", "TextSpec", "check_texts"]
