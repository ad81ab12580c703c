"""Text side: `TextSpec` (stored in the manifest), `Preprocessor` (items -> graph inputs) and the recipe
presets (`l2v.text.presets`). Items are strings or `(instruction, text)` pairs; see docs/text.md."""
from l2v.text.batch import Batch
from l2v.text.preprocess import Preprocessor, check_items, check_texts, eol_normalize
from l2v.text.spec import TextSpec, check_template

__all__ = ["Batch", "Preprocessor", "TextSpec", "check_items", "check_template", "check_texts", "eol_normalize"]
